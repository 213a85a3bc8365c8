"""The Automations page in Debian's Chromium against a real server (issue 20, item 8).

A rule built in the editor at 390 px runs when a card moves on the board, and its run
shows on the page; the enabled switch (online, and offline through the document); the
server's validation message shown at the field it names; a dry run; the delivery log of
a webhook to a real local receiver; what a viewer sees; no horizontal scroll at 390 px.
Screenshots go to test-output/screenshots/automations-*.png.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import ServerProcess, start_server
from .test_pwa import (
    PHONE,
    SHOTS,
    account,
    axe_violations,
    browser,  # noqa: F401 (fixture)
    open_board,
    project_with_tasks,
    pw,  # noqa: F401 (fixture)
    rest,
    signed_in,
)


@pytest.fixture(scope="module")
def auto_server(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("pwa-auto")
    # the webhook receiver of the delivery-log test listens on 127.0.0.1
    server = start_server(tmp, TANDEM_API_RATE_LIMIT="0", TANDEM_OUTBOUND_ALLOW_PRIVATE="true")
    try:
        yield server
    finally:
        server.stop()


class Receiver:
    """A local HTTP receiver: counts POSTs, answers with the status it is told."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.bodies: list[bytes] = []
        self.signatures: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                outer.signatures.append(self.headers.get("X-Tandem-Signature-256", ""))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def open_automations(page: Page) -> None:
    """From a project page, through the navigation (under "More" on a phone)."""
    nav = page.locator(".bottom-nav")
    more = nav.get_by_role("button", name="More")
    if more.is_visible():
        more.click()
    nav.get_by_role("link", name="Automations").click()
    expect(page.get_by_role("heading", name="Automations")).to_be_visible()


def no_horizontal_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    assert width <= inner, f"the page is {width} px wide in a {inner} px window"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"automations-{name}.png", full_page=True)


def control(page: Page, path: str):
    """The editor's control for a JSON path of the rule (``actions[0].label``)."""
    return page.locator(f".rule-form :is(input, select, textarea)[data-path='{path}']")


def task_labels(server: ServerProcess, user: str, task: str) -> list[str]:
    r = rest(server, user, "GET", f"/tasks/{task}/")
    assert r.status_code == 200, r.text
    return r.json().get("labels") or []


def rules_of(server: ServerProcess, user: str, project: str) -> list[dict]:
    r = rest(server, user, "GET", f"/projects/{project}/rules/")
    assert r.status_code == 200, r.text
    data = r.json()
    return data["items"] if isinstance(data, dict) else data


def move_to_done(page: Page, task: str) -> None:
    """Move a card column by column to done from the board with the keyboard (Alt+Right),
    as a phone's user with a keyboard or a screen reader would."""
    card = page.locator(f"[data-id='{task}']")
    columns = page.eval_on_selector_all("[data-column]", "els => els.map(e => e.dataset.column)")
    where = "id => document.querySelector(`[data-id='${id}']`)?.closest('[data-column]')?.dataset.column"
    while True:
        # one evaluation in the page: a card redrawn between finding and reading it (its key
        # or a label arriving) is never read detached
        here = page.wait_for_function(where, arg=task).json_value()
        if here == "done":
            break
        after = columns[columns.index(here) + 1]
        card.focus()
        page.keyboard.press("Alt+ArrowRight")
        expect(page.locator(f"[data-column='{after}'] [data-id='{task}']")).to_be_attached()
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=15000)


def create_label_rule(page: Page, project: str, name: str, label: str) -> None:
    """In the editor: when a task moves to done, add ``label`` (menus only, no JSON)."""
    page.goto(f"/#/p/{project}/automations")
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name", exact=True).fill(name)
    control(page, "trigger.type").select_option("task_status_changed")
    control(page, "trigger.to").select_option("done")
    control(page, "actions[0].type").select_option("add_label")
    control(page, "actions[0].label").fill(label)
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("li.rule", has_text=name)).to_be_visible(timeout=15000)


def test_a_rule_made_in_the_editor_at_390px_runs_when_a_card_moves_and_its_run_shows(
    browser: Browser,  # noqa: F811
    auto_server,
) -> None:
    project, (task, other) = project_with_tasks(auto_server, "rita", ["Release notes", "Docs"])
    context = signed_in(browser, auto_server, "rita", **PHONE)
    page = context.new_page()
    open_board(page, project)
    open_automations(page)
    expect(page.locator(".rules .empty")).to_be_visible()

    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name", exact=True).fill("Ship what is done")
    control(page, "trigger.type").select_option("task_status_changed")
    control(page, "trigger.to").select_option("done")
    page.get_by_role("button", name="Add condition").click()
    expect(control(page, "conditions.all[0].field")).to_be_focused()  # the new row's first menu
    control(page, "conditions.all[0].field").select_option("priority")
    control(page, "conditions.all[0].op").select_option("in")
    # "in" takes several values: one checkbox per priority
    for value in ("medium", "high"):
        page.locator(".rule-form fieldset[data-path='conditions.all[0].value']").get_by_label(
            value
        ).check()
    control(page, "actions[0].type").select_option("add_label")
    control(page, "actions[0].label").fill("shipped")
    page.get_by_role("button", name="Add action").click()
    control(page, "actions[1].type").select_option("set_field")
    control(page, "actions[1].field").select_option("priority")
    control(page, "actions[1].value").select_option("low")
    no_horizontal_scroll(page)
    assert axe_violations(page) == []
    shot(page, "editor-390")
    page.get_by_role("button", name="Create rule").click()

    rule = page.locator("li.rule", has_text="Ship what is done")
    expect(rule).to_be_visible(timeout=15000)
    expect(rule.locator(".rule-summary")).to_contain_text("When a task moves to done")
    expect(rule.get_by_test_id("rule-runs")).to_have_text("Not run yet.", timeout=15000)
    (stored,) = rules_of(auto_server, "rita", project)
    assert stored["name"] == "Ship what is done" and stored["enabled"] is True
    assert stored["trigger"]["type"] == "task_status_changed"
    assert stored["trigger"]["to"] == "done"
    assert stored["conditions"] == {
        "all": [{"field": "priority", "op": "in", "value": ["medium", "high"]}]
    }
    assert [a["type"] for a in stored["actions"]] == ["add_label", "set_field"]

    # trigger it from the board
    page.locator(".bottom-nav [data-view=board]").click()
    move_to_done(page, task)
    card = page.locator(f"[data-id='{task}']")
    expect(card.locator(".label")).to_have_text(["shipped"], timeout=15000)
    assert task_labels(auto_server, "rita", task) == ["shipped"]
    assert rest(auto_server, "rita", "GET", f"/tasks/{task}/").json()["priority"] == "low"
    assert task_labels(auto_server, "rita", other) == []  # the one that did not move

    # its run, on the page
    open_automations(page)
    runs = page.locator("li.rule", has_text="Ship what is done").get_by_test_id("rule-runs")
    expect(runs).to_contain_text("Last run", timeout=15000)
    expect(runs.locator(".outcome.good")).to_be_visible()
    no_horizontal_scroll(page)
    assert axe_violations(page) == []
    shot(page, "list-390")
    page.locator("li.rule a.rule-name").click()
    expect(page.locator(".runs li")).to_have_count(1, timeout=15000)
    no_horizontal_scroll(page)
    context.close()


def test_the_enabled_switch_stops_a_rule_online_and_offline(
    browser: Browser,  # noqa: F811
    auto_server,
) -> None:
    project, (a, b, c) = project_with_tasks(auto_server, "otto", ["one", "two", "three"])
    context = signed_in(browser, auto_server, "otto", **PHONE)
    page = context.new_page()
    open_board(page, project)
    page.evaluate("() => navigator.serviceWorker.ready")
    page.reload()  # now controlled by the service worker: the app opens offline
    open_board(page, project)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    create_label_rule(page, project, "Label done work", "done-label")
    switch = page.locator("li.rule", has_text="Label done work").get_by_role("switch")
    expect(switch).to_be_checked()
    expect(switch).to_have_accessible_name("Enabled")

    # off while online: the document changes, the server's rule says so
    switch.uncheck()
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=15000)
    deadline = time.monotonic() + 10
    while rules_of(auto_server, "otto", project)[0]["enabled"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rules_of(auto_server, "otto", project)[0]["enabled"] is False
    page.goto(f"/#/p/{project}/board")
    move_to_done(page, a)

    # on again while offline: kept on this device, saved on reconnect
    page.goto(f"/#/p/{project}/automations")
    context.set_offline(True)
    expect(page.get_by_test_id("automation-offline")).to_be_visible(timeout=10000)
    expect(page.get_by_test_id("automation-offline")).to_contain_text("needs a connection")
    switch = page.locator("li.rule", has_text="Label done work").get_by_role("switch")
    switch.check()
    expect(page.get_by_test_id("sync-status")).to_contain_text("to sync")
    # reloaded offline: the page, its rules and the switch's change come from this device
    page.reload()
    rule = page.locator("li.rule", has_text="Label done work")
    expect(rule.get_by_role("switch")).to_be_checked(timeout=15000)
    expect(rule.get_by_test_id("rule-runs")).to_have_text("Not run yet.")  # the last answer
    expect(page.get_by_test_id("automation-offline")).to_be_visible()
    expect(page.get_by_test_id("sync-status")).to_contain_text("to sync")
    no_horizontal_scroll(page)
    shot(page, "offline-390")
    # the editor says saving needs a connection
    page.locator("li.rule a.rule-name").click()
    expect(page.get_by_role("button", name="Save rule")).to_be_disabled(timeout=10000)
    expect(page.locator(".offline-note")).to_be_visible()
    context.set_offline(False)
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=20000)
    expect(page.get_by_role("button", name="Save rule")).to_be_enabled()
    deadline = time.monotonic() + 10
    while not rules_of(auto_server, "otto", project)[0]["enabled"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rules_of(auto_server, "otto", project)[0]["enabled"] is True

    page.goto(f"/#/p/{project}/board")
    move_to_done(page, b)
    expect(page.locator(f"[data-id='{b}'] .label")).to_have_text(["done-label"], timeout=15000)
    # the runner works through events in order: b has run, so a's move (rule off) is done too
    assert task_labels(auto_server, "otto", a) == []
    assert task_labels(auto_server, "otto", c) == []
    context.close()

    # another manager switches otto's rule off: it now acts as her (the server would pause
    # a rule changed by someone it does not name), and it is off, not paused
    account(auto_server, "mia")
    auto_server.grant("mia", project, "manager")
    other = signed_in(browser, auto_server, "mia", **PHONE)
    page = other.new_page()
    open_board(page, project)
    page.goto(f"/#/p/{project}/automations")
    rule = page.locator("li.rule", has_text="Label done work")
    expect(rule.locator(".rule-owner")).to_have_text("Acts as otto")
    rule.get_by_role("switch").uncheck()
    expect(rule.locator(".rule-owner")).to_have_text("Acts as you")
    expect(page.get_by_test_id("sync-status")).to_have_text("Saved", timeout=15000)
    deadline = time.monotonic() + 10
    while rules_of(auto_server, "otto", project)[0]["enabled"] and time.monotonic() < deadline:
        time.sleep(0.2)
    (stored,) = rules_of(auto_server, "otto", project)
    assert stored["enabled"] is False and stored["created_by"] == "mia"
    assert stored["state"]["paused_reason"] is None
    expect(rule.get_by_test_id("rule-paused")).to_have_count(0)
    other.close()


def test_the_servers_validation_message_is_shown_at_the_field_it_names(
    browser: Browser,  # noqa: F811
    auto_server,
) -> None:
    project, _ = project_with_tasks(auto_server, "vera", ["a task"])
    context = signed_in(browser, auto_server, "vera", **PHONE)
    page = context.new_page()
    open_board(page, project)
    page.goto(f"/#/p/{project}/automations/new")
    page.get_by_label("Name", exact=True).fill("Monday review")
    control(page, "trigger.type").select_option("schedule")
    control(page, "trigger.timezone").select_option("Europe/Paris")
    cron = control(page, "trigger.cron")
    cron.fill("every monday")  # not five cron fields: only the server's model knows
    control(page, "actions[0].type").select_option("add_comment")
    control(page, "actions[0].text").fill("Time to review {project.name}")
    page.get_by_role("button", name="Create rule").click()
    expect(cron).to_have_attribute("aria-invalid", "true", timeout=10000)
    error = page.locator(".rule-form .field[data-path='trigger.cron'] .field-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    # the message is tied to the field for screen readers, and focus went to it
    described = (cron.get_attribute("aria-describedby") or "").split()
    assert error.get_attribute("id") in described
    expect(cron).to_be_focused()
    expect(page.get_by_test_id("form-error")).to_contain_text("not saved")
    assert rules_of(auto_server, "vera", project) == []
    no_horizontal_scroll(page)
    assert axe_violations(page) == []
    shot(page, "validation-390")

    # fixed, it saves, and the mark goes
    cron.fill("0 9 * * 1")
    page.get_by_role("button", name="Create rule").click()
    rule = page.locator("li.rule", has_text="Monday review")
    expect(rule).to_be_visible(timeout=15000)
    expect(rule.locator(".rule-summary")).to_contain_text("On schedule 0 9 * * 1 (Europe/Paris)")
    (stored,) = rules_of(auto_server, "vera", project)
    assert stored["trigger"] == {
        "type": "schedule",
        "cron": "0 9 * * 1",
        "timezone": "Europe/Paris",
    }
    assert stored["actions"] == [{"type": "add_comment", "text": "Time to review {project.name}"}]

    # editing it again: the same form, filled in; a bad edit is refused at its field
    rule.locator("a.rule-name").click()
    expect(control(page, "trigger.cron")).to_have_value("0 9 * * 1", timeout=10000)
    expect(control(page, "trigger.timezone")).to_have_value("Europe/Paris")
    expect(control(page, "actions[0].text")).to_have_value("Time to review {project.name}")
    control(page, "actions[0].text").fill("")
    page.get_by_role("button", name="Save rule").click()
    text = control(page, "actions[0].text")
    expect(text).to_have_attribute("aria-invalid", "true", timeout=10000)
    expect(page.locator(".field[data-path='actions[0].text'] .field-error")).not_to_be_empty()
    assert rules_of(auto_server, "vera", project)[0]["actions"][0]["text"] == (
        "Time to review {project.name}"
    )

    # and deleted
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete rule").click()
    expect(page.locator(".rules .empty")).to_be_visible(timeout=10000)
    assert rules_of(auto_server, "vera", project) == []
    context.close()


def test_a_dry_run_shows_which_conditions_hold_and_what_each_action_would_do(
    browser: Browser,  # noqa: F811
    auto_server,
) -> None:
    project, (hot, cold) = project_with_tasks(auto_server, "dora", ["urgent thing", "later"])
    rest(auto_server, "dora", "PATCH", f"/tasks/{hot}/", json={"priority": "urgent"})
    context = signed_in(browser, auto_server, "dora", **PHONE)
    page = context.new_page()
    open_board(page, project)
    page.goto(f"/#/p/{project}/automations/new")
    page.get_by_label("Name", exact=True).fill("Urgent work done")
    control(page, "trigger.to").select_option("done")
    page.get_by_role("button", name="Add condition").click()
    control(page, "conditions.all[0].field").select_option("priority")
    control(page, "conditions.all[0].op").select_option("eq")
    control(page, "conditions.all[0].value").select_option("urgent")
    control(page, "actions[0].type").select_option("add_label")
    control(page, "actions[0].label").fill("hot")
    page.get_by_role("button", name="Create rule").click()
    page.locator("li.rule", has_text="Urgent work done").locator("a.rule-name").click()

    picker = page.get_by_label("Task", exact=True)
    picker.select_option(label="urgent thing")
    page.get_by_role("button", name="Try it (dry run)").click()
    result = page.get_by_test_id("dry-run-result")
    expect(result).to_contain_text("The rule would run", timeout=10000)
    expect(result.locator(".checks-result li.good")).to_have_text(
        ["✓ holds: priority is urgent (it is urgent)"]
    )
    expect(result.locator(".intents li")).to_have_text(["Action 1: would add label “hot”"])
    no_horizontal_scroll(page)
    assert axe_violations(page) == []
    shot(page, "dry-run-390")
    picker.select_option(label="later")
    page.get_by_role("button", name="Try it (dry run)").click()
    expect(result).to_contain_text("do not hold", timeout=10000)
    expect(result.locator(".checks-result li.bad")).to_contain_text("(it is medium)")
    expect(result.locator(".intents li")).to_have_count(0)
    # a dry run changes nothing
    assert task_labels(auto_server, "dora", hot) == task_labels(auto_server, "dora", cold) == []
    expect(page.locator(".runs li")).to_have_count(0)
    # an action that would change nothing says so
    rest(auto_server, "dora", "PATCH", f"/tasks/{hot}/", json={"labels": ["hot"]})
    picker.select_option(label="urgent thing")
    page.get_by_role("button", name="Try it (dry run)").click()
    expect(result.locator(".skipped li")).to_contain_text(
        "Action 1: would do nothing", timeout=10000
    )
    expect(result.locator(".intents li")).to_have_count(0)
    context.close()


def test_a_webhook_rule_keeps_its_url_secret_and_its_delivery_shows_in_the_log(
    browser: Browser,  # noqa: F811
    auto_server,
) -> None:
    receiver = Receiver(status=200)
    try:
        project, (task, other) = project_with_tasks(auto_server, "hugo", ["ship it", "other"])
        context = signed_in(browser, auto_server, "hugo", **PHONE)
        page = context.new_page()
        open_board(page, project)
        page.goto(f"/#/p/{project}/automations/new")
        page.get_by_label("Name", exact=True).fill("Tell the hook")
        control(page, "trigger.to").select_option("done")
        control(page, "actions[0].type").select_option("webhook")
        url = control(page, "actions[0].url")
        url.fill("ftp://127.0.0.1/hook")
        page.get_by_role("button", name="Create rule").click()
        expect(url).to_have_attribute("aria-invalid", "true", timeout=10000)
        expect(page.locator(".field[data-path='actions[0].url'] .field-error")).to_contain_text(
            "http"
        )
        url.fill(receiver.url)
        page.get_by_role("button", name="Create rule").click()
        rule = page.locator("li.rule", has_text="Tell the hook")
        expect(rule).to_be_visible(timeout=15000)
        # the URL is a secret: not in the document, masked on the page and over REST
        expect(rule.locator(".rule-summary")).to_contain_text("call a webhook (http://127.0.0.1/…)")
        doc_rules = page.evaluate(
            "() => JSON.stringify(window.tandem.doc.getMap('rules').toJSON())"
        )
        assert receiver.url not in doc_rules and "/hook" not in doc_rules
        (stored,) = rules_of(auto_server, "hugo", project)
        assert stored["actions"][0]["url"] != receiver.url

        # renamed in the editor without touching the action: the URL stays as it was
        rule.locator("a.rule-name").click()
        expect(control(page, "actions[0].url")).to_have_value("", timeout=10000)
        expect(control(page, "actions[0].url")).to_have_attribute(
            "placeholder", "http://127.0.0.1/… (kept unless you type a new one)"
        )
        page.get_by_label("Name", exact=True).fill("Tell the hook, renamed")
        page.get_by_role("button", name="Save rule").click()
        expect(page.locator("li.rule", has_text="Tell the hook, renamed")).to_be_visible(
            timeout=15000
        )
        # changing the actions sends them whole: the kept URL must be typed again, at its field
        page.locator("li.rule a.rule-name").click()
        page.get_by_role("button", name="Add action").click()
        control(page, "actions[1].type").select_option("add_label")
        control(page, "actions[1].label").fill("announced")
        page.get_by_role("button", name="Save rule").click()
        kept = control(page, "actions[0].url")
        expect(kept).to_have_attribute("aria-invalid", "true")
        expect(page.locator(".field[data-path='actions[0].url'] .field-error")).to_contain_text(
            "type this URL again"
        )
        assert [a["type"] for a in rules_of(auto_server, "hugo", project)[0]["actions"]] == [
            "webhook"
        ]
        kept.fill(receiver.url)
        page.get_by_role("button", name="Save rule").click()
        expect(page.locator("li.rule .rule-summary")).to_contain_text(
            "add label “announced”", timeout=15000
        )

        page.goto(f"/#/p/{project}/board")
        move_to_done(page, task)
        page.goto(f"/#/p/{project}/automations")
        log = page.locator(".deliveries li")
        expect(log).to_have_count(1, timeout=20000)
        expect(log.first).to_contain_text("delivered", timeout=20000)
        expect(log.first).to_contain_text("1 attempt")
        expect(log.first).not_to_contain_text(receiver.url)
        assert len(receiver.bodies) == 1 and task.encode() in receiver.bodies[0]
        assert task_labels(auto_server, "hugo", task) == ["announced"]
        # the key a receiver checks the signature with, shown on request
        page.get_by_role("button", name="Show key").click()
        key = page.get_by_test_id("signing-key")
        expect(key).not_to_have_value("", timeout=10000)
        mac = hmac.new(key.input_value().encode(), receiver.bodies[0], hashlib.sha256)
        assert receiver.signatures[0] == f"sha256={mac.hexdigest()}"
        assert key.input_value() not in json.dumps(dict(page.evaluate("() => ({...localStorage})")))
        runs = page.locator("li.rule").get_by_test_id("rule-runs")
        expect(runs.locator(".outcome.good")).to_have_text("ran", timeout=15000)
        no_horizontal_scroll(page)
        shot(page, "deliveries-390")

        # a receiver that fails: the log says so, with the attempts and the last error
        receiver.status = 500
        page.goto(f"/#/p/{project}/board")
        move_to_done(page, other)
        page.goto(f"/#/p/{project}/automations")
        failing = page.locator(".deliveries li").first
        expect(failing).to_contain_text("Last error", timeout=20000)
        expect(failing).to_contain_text("500")
        shot(page, "delivery-error-390")
        context.close()
    finally:
        receiver.close()


def test_a_paused_rule_says_why_and_resumes_acting_as_whoever_resumes_it(
    browser: Browser,  # noqa: F811
    auto_server,
) -> None:
    project, (first,) = project_with_tasks(auto_server, "pam", ["first"])
    account(auto_server, "carl")
    assert rest(
        auto_server, "pam", "PUT", f"/projects/{project}/grants/carl", json={"role": "manager"}
    ).status_code in (200, 201)
    time.sleep(1.2)  # the permission cache
    r = rest(
        auto_server,
        "carl",
        "POST",
        f"/projects/{project}/rules/",
        json={
            "name": "Triage new tasks",
            "trigger": {"type": "task_created"},
            "actions": [{"type": "add_label", "label": "triage"}],
        },
    )
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    # carl is demoted: his rule may no longer write, so it pauses instead
    assert rest(
        auto_server, "pam", "PUT", f"/projects/{project}/grants/carl", json={"role": "viewer"}
    ).status_code in (200, 201)
    time.sleep(1.2)
    second = rest(
        auto_server, "pam", "POST", f"/projects/{project}/tasks/", json={"title": "second"}
    ).json()["id"]

    context = signed_in(browser, auto_server, "pam", **PHONE)
    page = context.new_page()
    open_board(page, project)
    open_automations(page)
    rule = page.locator("li.rule", has_text="Triage new tasks")
    paused = rule.get_by_test_id("rule-paused")
    expect(paused).to_contain_text("Paused:", timeout=20000)
    expect(paused).to_contain_text("carl")
    expect(rule.get_by_test_id("rule-runs").locator(".outcome.bad")).to_have_text("paused")
    assert task_labels(auto_server, "pam", second) == []
    no_horizontal_scroll(page)
    assert axe_violations(page) == []
    shot(page, "paused-390")

    rule.get_by_role("button", name="Resume, acting as me").click()
    expect(paused).to_have_count(0, timeout=15000)
    got = rest(auto_server, "pam", "GET", f"/projects/{project}/rules/{rule_id}/").json()
    assert got["created_by"] == "pam" and got["state"]["paused_reason"] is None
    third = rest(
        auto_server, "pam", "POST", f"/projects/{project}/tasks/", json={"title": "third"}
    ).json()["id"]
    deadline = time.monotonic() + 15
    while "triage" not in task_labels(auto_server, "pam", third) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert task_labels(auto_server, "pam", third) == ["triage"]
    assert task_labels(auto_server, "pam", first) == []  # made before the rule
    context.close()


def test_a_viewer_sees_the_rules_read_only(browser: Browser, auto_server) -> None:  # noqa: F811
    project, _ = project_with_tasks(auto_server, "mona", ["a task"])
    r = rest(
        auto_server,
        "mona",
        "POST",
        f"/projects/{project}/rules/",
        json={
            "name": "Label done work",
            "enabled": True,
            "trigger": {"type": "task_status_changed", "to": "done"},
            "conditions": {"all": []},
            "actions": [{"type": "add_label", "label": "shipped"}],
        },
    )
    assert r.status_code == 201, r.text
    account(auto_server, "vic")
    auto_server.grant("vic", project, "viewer")
    context = signed_in(browser, auto_server, "vic", **PHONE)
    page = context.new_page()
    open_board(page, project)
    expect(page.locator(".bottom-nav [data-view=automations]")).to_have_count(0)
    page.goto(f"/#/p/{project}/automations")
    rule = page.locator("li.rule", has_text="Label done work")
    expect(rule).to_be_visible()
    expect(rule.get_by_role("switch")).to_be_disabled()
    expect(page.get_by_role("link", name="New rule")).to_have_count(0)
    # a switch flipped in the document anyway (an old or forged client) is refused by the
    # server, said so in plain words, and the rule is on again
    page.evaluate(
        "() => { const r = [...window.tandem.doc.getMap('rules').values()][0];"
        " window.tandem.doc.transact(() => r.set('enabled', false)); }"
    )
    expect(page.get_by_test_id("refusal")).to_contain_text(
        "not saved: only a manager can switch or change automation rules", timeout=10000
    )
    expect(rule.get_by_role("switch")).to_be_checked(timeout=10000)
    assert rules_of(auto_server, "mona", project)[0]["enabled"] is True
    rule.locator("a.rule-name").click()
    expect(page.locator(".rule-form")).to_have_count(0)
    expect(page.locator(".automations")).to_contain_text("add label “shipped”")
    expect(page.locator(".run-log")).to_contain_text("Not run yet.")
    no_horizontal_scroll(page)
    assert axe_violations(page) == []
    context.close()

    # the owner's page on a wide screen
    wide = signed_in(browser, auto_server, "mona", viewport={"width": 1280, "height": 800})
    page = wide.new_page()
    open_board(page, project)
    open_automations(page)
    expect(page.locator("li.rule")).to_have_count(1)
    expect(page.locator(".deliveries, .delivery-log p")).not_to_have_count(0)
    shot(page, "list-1280")
    page.get_by_role("link", name="New rule").click()
    expect(page.locator(".rule-form")).to_be_visible()
    shot(page, "editor-1280")
    wide.close()


def test_a_rule_is_made_with_the_keyboard_alone(browser: Browser, auto_server) -> None:  # noqa: F811
    project, _ = project_with_tasks(auto_server, "kai", ["a task"])
    context = signed_in(browser, auto_server, "kai", **PHONE)
    page = context.new_page()
    open_board(page, project)
    page.goto(f"/#/p/{project}/automations/new")
    page.get_by_label("Name", exact=True).focus()
    keys = page.keyboard
    keys.type("Keyboard rule")
    keys.press("Tab")  # the enabled switch
    expect(page.get_by_role("switch")).to_be_focused()
    keys.press("Tab")  # trigger
    expect(control(page, "trigger.type")).to_be_focused()
    keys.press("Tab")  # from
    keys.press("Tab")  # to
    expect(control(page, "trigger.to")).to_be_focused()
    keys.type("review")  # type-ahead picks the column
    expect(control(page, "trigger.to")).to_have_value("review")
    keys.press("Tab")
    expect(page.get_by_role("button", name="Add condition")).to_be_focused()
    keys.press("Enter")
    expect(control(page, "conditions.all[0].field")).to_be_focused()
    for _ in range(2):  # from the field: the test, then the value
        keys.press("Tab")
    expect(control(page, "conditions.all[0].value")).to_be_focused()
    keys.type("urgent")
    expect(control(page, "conditions.all[0].value")).to_have_value("urgent")
    keys.press("Tab")  # remove condition
    keys.press("Tab")  # add condition
    keys.press("Tab")  # the action's type
    expect(control(page, "actions[0].type")).to_be_focused()
    keys.press("Tab")
    expect(control(page, "actions[0].label")).to_be_focused()
    keys.type("look")
    keys.press("Enter")  # submits the form
    expect(page.locator("li.rule", has_text="Keyboard rule")).to_be_visible(timeout=15000)
    (stored,) = rules_of(auto_server, "kai", project)
    assert stored["trigger"] == {"type": "task_status_changed", "to": "review"}
    assert stored["conditions"] == {"all": [{"field": "priority", "op": "eq", "value": "urgent"}]}
    assert stored["actions"] == [{"type": "add_label", "label": "look"}]
    context.close()
