// Automations: the project's rules, read from the project document (so the list works
// offline), each with an enabled switch (a document write, so it works offline too and is
// checked by the server's gate like any edit), its last run and failures, and the delivery
// log. Creating and editing a rule goes through REST (#/p/<id>/automations/new and
// .../automations/<rule id>): the server validates it, keeps webhook / Slack / Teams URLs
// out of the document, and answers with problem details shown at the field they name.
// Offline, the editor says that saving needs a connection (see docs/pwa.md).
import "../automation/automation.css";
import { api, ApiError, cachedGet } from "../api.js";
import { go, on, onCleanup } from "../app.js";
import { h, toast } from "../dom.js";
import { dateTime, plural } from "../ui/format.js";
import { shell } from "../shell.js";
import { emptyRule, ruleEditor } from "../automation/editor.js";
import { OPERATORS, describeAction, describeRule } from "../automation/vocabulary.js";

// run outcomes (sync_server/extensions/automation.py): ran | failed | paused | skipped
const FAILED = new Set(["failed", "paused"]);

const allRules = (project) => ({ href: `#/p/${project.projectId}/automations`, label: "All rules" });
const base = (project) => `/projects/${encodeURIComponent(project.projectId)}`;
const online = (project) => project.provider.connected && navigator.onLine !== false;

// The rules of the document: [{id, ...rule}] by name.
export function documentRules(project) {
  const out = [];
  project.doc.getMap("rules").forEach((value, id) => {
    const rule = value && typeof value.toJSON === "function" ? value.toJSON() : value;
    if (rule && typeof rule === "object") out.push({ id, ...rule });
  });
  return out.sort((a, b) => String(a.name).localeCompare(String(b.name)) || a.id.localeCompare(b.id));
}

// Switch a rule on or off in the document (offline too; the gate checks edit_project).
// A rule acts as the person who last changed it, and the server pauses one changed by
// somebody it does not name as its owner: so the switch also makes `created_by` this user
// (the gate lets a user write only their own name there).
export function setRuleEnabled(project, id, enabled) {
  const rules = project.doc.getMap("rules");
  const rule = rules.get(id);
  if (!rule) return;
  const name = (typeof rule.get === "function" ? rule.get("name") : rule.name) || "rule";
  project._transact(`${enabled ? "enable" : "disable"} rule “${name}”`, () => {
    if (typeof rule.set === "function") {
      rule.set("enabled", enabled);
      if (rule.get("created_by") !== project.user) rule.set("created_by", project.user);
    } else rules.set(id, { ...rule, enabled, created_by: project.user });
  });
}

const items = (data) => (Array.isArray(data) ? data : data?.items || data?.runs || data?.deliveries || []);

function when(at) {
  if (at === null || at === undefined || at === "") return "";
  return dateTime(typeof at === "number" && at >= 1e12 ? at / 1000 : at);
}

function outcomeClass(outcome) {
  return FAILED.has(String(outcome)) ? "bad" : outcome === "skipped" ? "muted" : "good";
}

const words = (s) => String(s ?? "").replaceAll("_", " ");

// -- the list ----------------------------------------------------------------------------------

// `state`: the server's summary of the rule's runs ({last_run_at, last_outcome, failures,
// paused_reason}); undefined while loading, null when it cannot be had (offline, never seen).
function ruleItem(project, rule, state, editable) {
  const id = `rule-${rule.id}`;
  const paused = state && state.paused_reason;
  let runs;
  if (state === undefined) runs = "Runs: loading…";
  else if (state === null) runs = "Runs are shown when online.";
  else if (!state.last_run_at) runs = "Not run yet.";
  else {
    runs = [
      "Last run ",
      h("time", {}, when(state.last_run_at)),
      ": ",
      h("span", { class: `outcome ${outcomeClass(state.last_outcome)}` }, words(state.last_outcome)),
      state.failures ? h("span", { class: "outcome bad" }, ` · ${plural(state.failures, "failure")}`) : null,
    ];
  }
  return h(
    "li",
    { class: `rule ${rule.enabled === false ? "off" : ""}`, dataset: { rule: rule.id } },
    h(
      "div",
      { class: "rule-head" },
      h("a", { href: `#/p/${project.projectId}/automations/${encodeURIComponent(rule.id)}`, id, class: "rule-name" }, rule.name || "(unnamed)"),
      h(
        "label",
        { class: "switch" },
        h("input", {
          type: "checkbox",
          role: "switch",
          checked: rule.enabled !== false,
          disabled: !editable,
          "aria-describedby": id,
          onchange: (e) => setRuleEnabled(project, rule.id, e.target.checked),
        }),
        h("span", {}, "Enabled"),
      ),
    ),
    h("p", { class: "rule-summary" }, describeRule(rule)),
    rule.created_by ? h("p", { class: "muted rule-owner" }, `Acts as ${rule.created_by === project.user ? "you" : rule.created_by}`) : null,
    paused
      ? h(
          "div",
          { class: "paused", "data-testid": "rule-paused" },
          h("p", { class: "error" }, `Paused: ${paused}`),
          // a change over REST makes the rule act for whoever made it (the server's rule)
          editable
            ? h(
                "button",
                {
                  type: "button",
                  onclick: (e) => resume(project, rule, e.target),
                },
                "Resume, acting as me",
              )
            : null,
        )
      : null,
    h("p", { class: "rule-runs muted", "data-testid": "rule-runs" }, runs),
  );
}

// A read that failed: offline (the fetch itself failed), or the server's reason.
const unavailable = (error) => (error instanceof ApiError ? { error: error.message } : null);

async function resume(project, rule, button) {
  if (!online(project)) return toast("Resuming a rule needs a connection.", "error");
  button.disabled = true;
  try {
    await api("PATCH", `${base(project)}/rules/${encodeURIComponent(rule.id)}/`, { enabled: true });
    toast(`“${rule.name}” runs again, as you.`);
    // the server rewrites the rule in the document: that change reloads the states
  } catch (e) {
    toast(`Not resumed: ${e.message}`, "error");
    button.disabled = false;
  }
}

// The key webhook receivers check X-Tandem-Signature-256 with. Fetched only when asked
// for, never cached (api(), not cachedGet()), and gone when the page goes.
function signingKey(project) {
  const output = h("input", {
    id: "signing-key",
    readonly: true,
    autocomplete: "off",
    spellcheck: false,
    placeholder: "hidden",
    "data-testid": "signing-key",
  });
  const status = h("p", { class: "muted", role: "status" });
  const fetchKey = async (rotate) => {
    if (!online(project)) return (status.textContent = "The key is shown when online.");
    if (rotate && !confirm("Make a new key? Receivers must be given it: messages are signed with it from now on.")) return;
    try {
      const data = await api(rotate ? "POST" : "GET", `${base(project)}/webhook-secret/`);
      output.value = data.secret;
      status.textContent = rotate ? "A new key: webhooks are signed with it from now on." : "";
    } catch (e) {
      status.textContent = `The key is not available: ${e.message}`;
    }
  };
  return h(
    "section",
    { class: "card signing" },
    h("h2", {}, "Webhook signing key"),
    h(
      "p",
      { class: "muted" },
      "Every webhook carries X-Tandem-Signature-256: sha256= and the HMAC-SHA256 of its body made with this key; a receiver checks it to know the message is from this project.",
    ),
    h("label", { for: "signing-key" }, "Key"),
    output,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => fetchKey(false) }, "Show key"),
      h("button", { type: "button", onclick: () => fetchKey(true) }, "New key"),
    ),
    status,
  );
}

function deliveryList(deliveries) {
  if (deliveries === undefined) return h("p", { class: "muted" }, "Loading…");
  if (deliveries === null) return h("p", { class: "muted" }, "The delivery log is shown when online.");
  if (deliveries.error) return h("p", { class: "error" }, `The delivery log is not available: ${deliveries.error}`);
  if (!deliveries.length) return h("p", { class: "muted" }, "Nothing sent yet.");
  return h(
    "ul",
    { class: "deliveries" },
    ...deliveries.map((d) =>
      h(
        "li",
        { dataset: { delivery: d.id } },
        h(
          "div",
          { class: "rule-head" },
          h("strong", {}, words(d.channel)),
          h("span", { class: `outcome ${d.status === "dead" ? "bad" : d.status === "delivered" ? "good" : "muted"}` }, words(d.status)),
        ),
        h("p", { class: "muted target" }, d.target_hint || d.target || ""),
        h(
          "p",
          { class: "muted" },
          `${d.attempts ?? 0} attempt${d.attempts === 1 ? "" : "s"}`,
          d.created ? ` · queued ${when(d.created)}` : "",
          d.delivered_at ? ` · delivered ${when(d.delivered_at)}` : "",
          d.next_attempt_at ? ` · next try ${when(d.next_attempt_at)}` : "",
        ),
        d.last_error
          ? h("p", { class: "error" }, `Last error: ${d.last_status ? `HTTP ${d.last_status}: ` : ""}${d.last_error}`)
          : null,
      ),
    ),
  );
}

function offlineNotice(project, editable) {
  const note = h("p", { class: "notice", role: "status", "data-testid": "automation-offline" });
  const update = () => {
    note.hidden = online(project);
    note.textContent = editable
      ? "Offline: this list is this device's copy. Switching a rule on or off is saved when you reconnect; creating or editing rules needs a connection."
      : "Offline: this list is this device's copy.";
  };
  on(project, "status", update);
  on(window, "online", update);
  on(window, "offline", update);
  update();
  return note;
}

export function automationsView(project, rest = []) {
  if (rest[0] === "new") {
    const page = project.can("edit_project")
      ? editorPage(project, null)
      : h("p", { class: "muted" }, "Only people who may edit the project create rules.");
    return shell(project, "automations", h("div", { class: "automations" }, page), { back: allRules(project) });
  }
  if (rest[0]) return rulePage(project, decodeURIComponent(rest[0]));
  const editable = project.can("edit_project");
  const list = h("ul", { class: "rules" });
  const deliveries = h("div", { class: "delivery-log" });
  let states; // rule id -> the server's run summary (undefined: loading, null: offline)
  let log; // deliveries (undefined: loading, null: offline)

  const draw = () => {
    const rules = documentRules(project);
    list.replaceChildren(
      ...rules.map((r) => ruleItem(project, r, states === undefined || states === null ? states : states.get(r.id) || {}, editable)),
    );
    if (!rules.length) {
      list.append(h("li", { class: "empty" }, editable ? "No rules yet. A rule does routine work for the team: “when a task moves to done, add the label shipped”." : "No rules yet."));
    }
    deliveries.replaceChildren(deliveryList(log));
  };

  const load = async () => {
    await Promise.all([
      (async () => {
        try {
          const data = await cachedGet(`${base(project)}/rules/`);
          states = new Map(items(data).map((r) => [r.id, r.state || {}]));
        } catch {
          states = null;
        }
      })(),
      editable
        ? (async () => {
            try {
              log = items(await cachedGet(`${base(project)}/deliveries/`));
            } catch (error) {
              log = unavailable(error);
            }
          })()
        : null,
    ]);
    draw();
  };

  // runs come from the server after the changes that trigger them: load again shortly after
  // each change, and every few seconds while the page is visible
  let soon = null;
  on(project, "change", () => {
    draw();
    clearTimeout(soon);
    soon = setTimeout(load, 600);
  });
  // back online: load again (status events come with every ack too, hence only on the edge)
  let wasOnline = online(project);
  on(project, "status", () => {
    const now = online(project);
    if (now && !wasOnline) load();
    wasOnline = now;
  });
  const timer = setInterval(() => document.visibilityState === "visible" && online(project) && load(), 4000);
  onCleanup(() => {
    clearInterval(timer);
    clearTimeout(soon);
  });

  draw();
  load();
  shell(
    project,
    "automations",
    h(
      "div",
      { class: "automations" },
      h(
        "header",
        { class: "page-head" },
        h("h2", {}, "Automations"),
        editable ? h("a", { class: "button primary", href: `#/p/${project.projectId}/automations/new` }, "New rule") : null,
      ),
      offlineNotice(project, editable),
      editable ? null : h("p", { class: "muted" }, "Only people who may edit the project change rules."),
      list,
      // the outbox's log needs edit_project (it names where messages go)
      editable ? h("section", { class: "card" }, h("h2", {}, "Delivery log"), deliveries) : null,
      editable ? signingKey(project) : null,
    ),
  );
}

function sortRuns(list) {
  const t = (r) => {
    const at = r.at ?? r.created ?? r.time;
    return typeof at === "number" ? at : Date.parse(at) / 1000 || 0;
  };
  return [...list].sort((a, b) => t(b) - t(a));
}

// -- one rule: the editor, a dry run, its runs ------------------------------------------------

async function loadRule(project, id) {
  if (online(project)) {
    try {
      return await api("GET", `${base(project)}/rules/${encodeURIComponent(id)}/`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
    }
  }
  return documentRules(project).find((r) => r.id === id) || null;
}

function editorPage(project, id, rule = null) {
  const back = () => go(`#/p/${project.projectId}/automations`);
  const editor = ruleEditor({
    project,
    rule: rule || emptyRule(project),
    ruleId: id,
    canSave: () => online(project),
    // an edit is a PATCH: without "actions" it keeps the rule's own (and their secret URLs)
    save: (draft) =>
      id
        ? api("PATCH", `${base(project)}/rules/${encodeURIComponent(id)}/`, draft)
        : api("POST", `${base(project)}/rules/`, draft),
    onDone: () => {
      toast(id ? "Rule saved." : "Rule created.");
      back();
    },
    onCancel: back,
  });
  on(project, "status", editor.updateOnline);
  on(window, "online", editor.updateOnline);
  on(window, "offline", editor.updateOnline);
  return editor.element;
}

async function rulePage(project, id) {
  const editable = project.can("edit_project");
  const box = h("div", { class: "automations" }, h("p", { class: "muted" }, "Loading…"));
  shell(project, "automations", box, { back: allRules(project) });
  const rule = await loadRule(project, id);
  if (!box.isConnected) return; // the user went elsewhere meanwhile
  if (!rule) {
    box.replaceChildren(h("p", { class: "error" }, "This rule no longer exists."), h("a", { href: `#/p/${project.projectId}/automations` }, "All rules"));
    return;
  }
  const runs = h("div", { class: "run-log" }, h("p", { class: "muted" }, "Loading…"));
  const loadRuns = async () => {
    try {
      const data = sortRuns(items(await cachedGet(`${base(project)}/rules/${encodeURIComponent(id)}/runs/?limit=50`)));
      runs.replaceChildren(
        data.length
          ? h(
              "ol",
              { class: "runs" },
              ...data.map((r) =>
                h(
                  "li",
                  {},
                  h("span", { class: `outcome ${outcomeClass(r.outcome)}` }, words(r.outcome)),
                  " ",
                  h("time", {}, when(r.at)),
                  h("p", {}, eventText(project, r.event || {})),
                  r.detail ? h("p", { class: FAILED.has(r.outcome) ? "error" : "muted" }, r.detail) : null,
                ),
              ),
            )
          : h("p", { class: "muted" }, "Not run yet."),
      );
    } catch {
      runs.replaceChildren(h("p", { class: "muted" }, "Runs are shown when online."));
    }
  };
  const timer = setInterval(() => document.visibilityState === "visible" && online(project) && loadRuns(), 5000);
  onCleanup(() => clearInterval(timer));
  loadRuns();

  box.replaceChildren(
    editable
      ? editorPage(project, id, rule)
      : h("section", { class: "card" }, h("h2", {}, rule.name), h("p", {}, describeRule(rule))),
    editable ? dryRun(project, id) : null,
    h("section", { class: "card" }, h("h2", {}, "Runs"), runs),
    editable ? deleteButton(project, id, rule.name) : null,
  );
}

function deleteButton(project, id, name) {
  const button = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        if (!online(project)) return toast("Deleting a rule needs a connection.", "error");
        if (!confirm(`Delete the rule “${name}”? Its runs stay in the log.`)) return;
        try {
          await api("DELETE", `${base(project)}/rules/${encodeURIComponent(id)}/`);
          toast("Rule deleted.");
          go(`#/p/${project.projectId}/automations`);
        } catch (e) {
          toast(`Not deleted: ${e.message}`, "error");
        }
      },
    },
    "Delete rule",
  );
  return h("div", { class: "delete-rule" }, button);
}

// A dry run against a chosen task: which conditions hold, what each action would do.
function dryRun(project, id) {
  const tasks = project.tasks().sort((a, b) => String(a.title).localeCompare(String(b.title)));
  const picker = h(
    "select",
    { id: "dry-run-task", name: "task" },
    ...tasks.map((t) => h("option", { value: t.id }, t.title)),
  );
  const result = h("div", { class: "dry-run-result", "aria-live": "polite", "data-testid": "dry-run-result" });
  const button = h("button", { type: "submit", disabled: !tasks.length }, "Try it (dry run)");
  const form = h(
    "form",
    { class: "card dry-run" },
    h("h2", {}, "Try it on a task"),
    h("p", { class: "muted" }, "Nothing is changed or sent: this shows what the saved rule would do."),
    h("label", { for: "dry-run-task" }, "Task"),
    picker,
    button,
    result,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!online(project)) {
      result.replaceChildren(h("p", { class: "muted" }, "A dry run needs a connection."));
      return;
    }
    button.disabled = true;
    try {
      const data = await api("POST", `${base(project)}/rules/${encodeURIComponent(id)}/test/`, { task: picker.value });
      result.replaceChildren(...dryRunResult(data));
    } catch (error) {
      result.replaceChildren(h("p", { class: "error" }, `Dry run failed: ${error.message}`));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// What set a run off: "task “Docs” moved from todo to done".
function eventText(project, event) {
  const task = event.entity ? project.task(event.entity) : null;
  const title = task ? task.title : event.detail?.title;
  const what = title ? `task “${title}”` : event.entity ? "a task" : "";
  if (event.field === "status") return `${what} moved from ${words(event.before)} to ${words(event.after)}`;
  if (event.field) return `${what}: ${words(event.field)} changed`;
  return `${words(event.kind)}${what ? ` (${what})` : ""}`;
}

// One intent of a dry run (rules/automation/intents.py, "type": edit | notify | outbound).
function intentText(i) {
  if (i.type === "edit") return describeAction({ type: i.action, ...(i.params || {}) });
  if (i.type === "notify") {
    const who = [i.assignees ? "the assignees" : null, ...(i.users || []), i.role ? `everyone who is ${i.role}` : null].filter(Boolean);
    return `notify ${who.join(", ") || "nobody"}: “${i.title}”`;
  }
  if (i.type === "outbound") {
    const names = { webhook: "call the webhook", slack: "post to Slack", teams: "post to Teams", email: "send an email" };
    return names[i.channel] || `send a ${words(i.channel)} message`;
  }
  return words(i.type);
}

const shown = (v) => (v === null || v === undefined || v === "" ? "empty" : Array.isArray(v) ? `[${v.map(words).join(", ")}]` : words(v));

function opText(op, expected) {
  if (op === "is_empty") return expected === false ? "is not empty" : "is empty";
  const o = OPERATORS.find((x) => x.op === op);
  return `${o ? o.label : words(op)} ${shown(expected)}`;
}

export function dryRunResult(data) {
  const conditions = data.conditions || [];
  const intents = data.intents || data.actions || [];
  const verdict = data.skipped
    ? `Would not run: ${data.skipped}.`
    : data.matched
      ? "The rule would run."
      : data.triggered === false
        ? "The trigger does not fire for this task."
        : "The conditions do not hold: the rule would not run.";
  return [
    h("p", { class: data.matched ? "outcome good" : "outcome muted" }, verdict),
    conditions.length
      ? h(
          "ul",
          { class: "checks-result" },
          ...conditions.map((c) =>
            h(
              "li",
              { class: c.matched ? "good" : "bad" },
              h("span", { "aria-hidden": "true" }, c.matched ? "✓ " : "✗ "),
              h("span", { class: "sr-only" }, c.matched ? "holds: " : "does not hold: "),
              `${words(c.field)} ${opText(c.op, c.expected)} (it is ${shown(c.actual)})`,
            ),
          ),
        )
      : null,
    (data.actions_skipped || []).length
      ? h(
          "ul",
          { class: "skipped" },
          ...data.actions_skipped.map((a) => h("li", { class: "muted" }, `Action ${a.action + 1}: would do nothing (${a.why})`)),
        )
      : null,
    intents.length
      ? h("ol", { class: "intents" }, ...intents.map((i) => h("li", {}, `Action ${(i.action_index ?? 0) + 1}: would ${intentText(i)}`)))
      : data.matched && !(data.actions_skipped || []).length
        ? h("p", { class: "muted" }, "No action would change anything (for example, the label is already there).")
      : null,
  ];
}
