// Integrations: a project's links to code hosts (GitHub, GitLab, Bitbucket inbound webhooks),
// for people who may manage the team (others get "not found": the navigation entry and the
// route both need manage_team). One card per provider: its endpoints with their status, last
// event and last error, the recent deliveries, and Test / Pause / Resume / Delete. "Connect a
// repository" creates an endpoint and shows its webhook URL (absolute, this server's origin)
// and its secret ONCE, with copy buttons and the provider's settings steps in words. The
// secret is never cached or stored by the page; it goes when the panel is closed or the page
// left. A last card lists the project's connections to cloud files and time trackers
// (sync_server/api/connectors.py): connect one (OAuth2: off to the provider and back here;
// Toggl / Clockify: an API token), test it (one authorized call), pause / resume it (while
// paused nothing is fetched or sent), delete it (revoked where the provider can). Everything
// here needs a connection (REST, nothing in the documents).
import "./integrations.css";
import { api } from "../api.js";
import { onCleanup } from "../app.js";
import { h, toast } from "../dom.js";
import { dateTime } from "../ui/format.js";
import { shell } from "../shell.js";

const PROVIDERS = [
  {
    key: "github",
    name: "GitHub",
    blurb: "Commits and pull requests that name a task key (TDM-42) are linked on the task; “fixes TDM-42” on the default branch, or a merged pull request naming it, moves the task to done.",
    steps: [
      "On GitHub, open the repository, then Settings, then Webhooks, and choose Add webhook.",
      "Paste the webhook URL below into Payload URL.",
      "Set Content type to application/json.",
      "Paste the secret below into Secret.",
      "Under “Which events”, choose Let me select individual events and tick Pushes, Pull requests and Issue comments (or Send me everything).",
      "Keep Active ticked and choose Add webhook. GitHub sends a ping, which shows below as an event.",
    ],
  },
  {
    key: "gitlab",
    name: "GitLab",
    blurb: "Pushes and merge requests that name a task key are linked on the task; closing words on the default branch and merged requests move it to done.",
    steps: [
      "On GitLab, open the project, then Settings, then Webhooks, and choose Add new webhook.",
      "Paste the webhook URL below into URL.",
      "Paste the secret below into Secret token.",
      "Under Trigger, tick Push events, Tag push events, Comments and Merge request events.",
      "Choose Add webhook. “Test” there sends a push event, which shows below.",
    ],
  },
  {
    key: "bitbucket",
    name: "Bitbucket",
    blurb: "Pushes and pull requests that name a task key are linked on the task; closing words on the default branch and merged pull requests move it to done.",
    steps: [
      "On Bitbucket, open the repository, then Repository settings, then Webhooks, and choose Add webhook.",
      "Give it a title (Tandem) and paste the webhook URL below into URL.",
      "Paste the secret below into Secret.",
      "Under Triggers, choose Choose from a full list of triggers and tick Repository Push, and Pull Request Created, Updated, Merged and Comment created.",
      "Choose Save.",
    ],
  },
];

const STATUS_TEXT = { active: "Active", paused: "Paused", error: "Error" };
const base = (project) => `/projects/${encodeURIComponent(project.projectId)}`;
const online = (project) => project.provider.connected && navigator.onLine !== false;

function when(at) {
  if (at === null || at === undefined || at === "") return "";
  return dateTime(at);
}

// Copy a value: the Clipboard API, else select the field and execCommand (older browsers).
async function copyValue(input, what, announce) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    if (!document.execCommand || !document.execCommand("copy")) {
      announce(`Could not copy: select the ${what} and copy it.`);
      return;
    }
  }
  announce(`${what[0].toUpperCase()}${what.slice(1)} copied.`);
}

// A read-only field with its label and a copy button.
function copyField(id, label, what, value, announce, testid) {
  const input = h("input", { id, readonly: true, value, autocomplete: "off", spellcheck: false, "data-testid": testid });
  return h(
    "div",
    { class: "copy-field" },
    h("label", { for: id }, label),
    h(
      "div",
      { class: "copy-row" },
      input,
      h(
        "button",
        { type: "button", "aria-label": `Copy the ${what}`, onclick: () => copyValue(input, what, announce) },
        "Copy",
      ),
    ),
  );
}

// What a new endpoint needs on the provider's side: the URL, the secret (shown this once) and
// the steps. Closing it forgets the secret.
function setupPanel(provider, created, announce, onClose) {
  const url = location.origin + created.path;
  const heading = h("h4", { tabindex: "-1" }, `Add this webhook on ${provider.name}`);
  const panel = h(
    "section",
    { class: "setup", "aria-label": `New ${provider.name} webhook`, "data-testid": "webhook-setup" },
    heading,
    copyField(`url-${created.id}`, "Webhook URL", "webhook URL", url, announce, "webhook-url"),
    copyField(`secret-${created.id}`, "Secret", "secret", created.secret, announce, "webhook-secret"),
    h("p", { class: "notice" }, "The secret is shown only now: copy it into the provider's settings before closing this. If it is lost, delete the endpoint and connect again."),
    h("ol", { class: "steps" }, ...provider.steps.map((s) => h("li", {}, s))),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          class: "primary",
          onclick: () => {
            panel.remove();
            onClose();
          },
        },
        "Done, hide the secret",
      ),
    ),
  );
  setTimeout(() => heading.focus(), 0);
  return panel;
}

function eventList(deliveries) {
  if (deliveries === undefined) return h("p", { class: "muted" }, "Loading events…");
  if (deliveries && deliveries.error) return h("p", { class: "error" }, `Events are not available: ${deliveries.error}`);
  if (!deliveries.length) return h("p", { class: "muted" }, "No event received yet.");
  return h(
    "ul",
    { class: "events", "data-testid": "events" },
    ...deliveries.slice(0, 10).map((d) =>
      h(
        "li",
        { dataset: { status: d.status } },
        h("div", { class: "event-head" }, h("strong", {}, d.event || "event"), h("span", { class: `outcome ${d.status}` }, d.status)),
        d.detail ? h("p", {}, d.detail) : null,
        h("p", { class: "muted" }, h("time", {}, when(d.received_at))),
      ),
    ),
  );
}

// One endpoint: kept on screen across refreshes (its buttons keep focus), its texts updated.
function endpointItem(project, item, actions) {
  const name = `${item.name} ${item.id}`;
  const status = h("span", { class: "status-pill" });
  const last = h("p", { class: "muted" });
  const error = h("p", { class: "error" });
  const events = h("div", { class: "event-log" });
  const result = h("div", { class: "test-result", role: "status" });
  const pause = h("button", { type: "button" });
  const li = h(
    "li",
    { class: "endpoint", dataset: { endpoint: item.id }, "aria-label": name },
    h("div", { class: "endpoint-head" }, h("strong", { class: "endpoint-name" }, `Endpoint ${item.id}`), status),
    h("p", { class: "endpoint-url" }, h("span", { class: "muted" }, "URL "), h("code", {}, location.origin + item.path)),
    last,
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => actions.test(item, result) }, "Test"),
      pause,
      h("button", { type: "button", class: "danger", onclick: () => actions.remove(item) }, "Delete"),
    ),
    result,
    h("h4", {}, "Recent events"),
    events,
  );
  pause.addEventListener("click", () => actions.pause(li.item));
  li.update = (fresh, deliveries) => {
    li.item = fresh;
    status.textContent = STATUS_TEXT[fresh.status] || fresh.status;
    status.className = `status-pill ${fresh.status}`;
    status.setAttribute("data-testid", "endpoint-status");
    last.textContent = fresh.last_event ? `Last event ${when(fresh.last_event.at)}: ${fresh.last_event.summary}` : "No event yet.";
    error.textContent = fresh.last_error ? `Last error: ${fresh.last_error}` : "";
    error.hidden = !fresh.last_error;
    const paused = fresh.status === "paused";
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-label", `${paused ? "Resume" : "Pause"} endpoint ${fresh.id}`);
    events.replaceChildren(eventList(deliveries));
  };
  li.update(item, undefined);
  return li;
}

// One connection: status, last use, last error, Test, Pause / Resume and Delete.
function connectionItem(item, actions) {
  const status = h("span", { class: "status-pill", "data-testid": "endpoint-status" });
  const last = h("p", { class: "muted" });
  const error = h("p", { class: "error" });
  const result = h("div", { class: "test-result", role: "status" });
  const pause = h("button", { type: "button", onclick: () => actions.pause(li.item) });
  const li = h(
    "li",
    { class: "endpoint connection", dataset: { connection: item.id }, "aria-label": item.name },
    h("div", { class: "endpoint-head" }, h("strong", { class: "endpoint-name" }, item.name), status),
    last,
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => actions.test(li.item, result) }, "Test"),
      pause,
      h("button", { type: "button", class: "danger", onclick: () => actions.remove(li.item) }, "Delete"),
    ),
    result,
  );
  li.update = (fresh) => {
    li.item = fresh;
    status.textContent = STATUS_TEXT[fresh.status] || fresh.status;
    status.className = `status-pill ${fresh.status}`;
    last.textContent = fresh.last_event ? `Last used ${when(fresh.last_event.at)}: ${fresh.last_event.summary}` : "Not used yet.";
    error.textContent = fresh.last_error ? `Last error: ${fresh.last_error}` : "";
    error.hidden = !fresh.last_error;
    const paused = fresh.status === "paused";
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-label", `${paused ? "Resume" : "Pause"} the ${fresh.name}`);
  };
  li.update(item);
  return li;
}

// Cloud files and time trackers: the providers this server is set up for, a way to connect
// each, and the project's connections.
function connectionsCard(project, announce, reload) {
  const list = h("ul", { class: "endpoints" });
  const empty = h("p", { class: "muted" }, "No connection yet.");
  const form = h("div", { class: "connect-form" });
  const headingId = "provider-connections";
  const section = h(
    "section",
    { class: "card provider", "aria-labelledby": headingId, "data-provider": "connections" },
    h("h3", { id: headingId }, "Cloud files and time trackers"),
    h("p", { class: "muted" }, "Google Drive, Dropbox and OneDrive files attached to tasks; Toggl, Harvest and Clockify time imported into the budget."),
    form,
    empty,
    list,
  );
  const items = new Map();
  const connect = async (provider, token) => {
    try {
      const body = { provider: provider.name, return_to: `/#/p/${project.projectId}/integrations` };
      if (token !== undefined) body.api_token = token;
      const answer = await api("POST", `${base(project)}/connections/`, body);
      if (answer.authorize_url) location.assign(answer.authorize_url); // back here afterwards
      else {
        announce(`${provider.title} connected.`);
        reload();
      }
    } catch (e) {
      toast(`${provider.title} not connected: ${e.message}`, "error");
    }
  };
  api("GET", "/providers/")
    .then((data) => {
      const providers = (data.providers || []).filter((p) => p.configured);
      if (!providers.length) return form.replaceChildren(h("p", { class: "muted" }, "No provider is set up on this server."));
      form.replaceChildren(
        ...providers.map((p) => {
          if (p.auth !== "api_token") return h("button", { type: "button", onclick: () => connect(p) }, `Connect ${p.title}`);
          const id = `token-${p.name}`;
          const input = h("input", { id, type: "password", autocomplete: "off" });
          return h(
            "form",
            {
              class: "copy-field",
              onsubmit: (e) => {
                e.preventDefault();
                connect(p, input.value).then(() => (input.value = ""));
              },
            },
            h("label", { for: id }, `${p.title} API token`),
            h("div", { class: "copy-row" }, input, h("button", { type: "submit", "aria-label": `Connect ${p.title}` }, "Connect")),
          );
        }),
      );
    })
    .catch(() => form.replaceChildren());
  section.draw = (connections, actions) => {
    for (const [id, li] of items) {
      if (!connections.some((c) => c.id === id)) {
        li.remove();
        items.delete(id);
      }
    }
    for (const c of connections) {
      let li = items.get(c.id);
      if (!li) {
        li = connectionItem(c, actions);
        items.set(c.id, li);
        list.append(li);
      }
      li.update(c);
    }
    empty.hidden = connections.length > 0;
  };
  return section;
}

export function integrationsView(project) {
  const announcer = h("p", { class: "sr-only", role: "status", "aria-live": "polite", "data-testid": "announce" });
  const announce = (text) => {
    announcer.textContent = "";
    setTimeout(() => (announcer.textContent = text), 50);
  };
  const offline = h("p", { class: "notice", role: "status" });
  const failure = h("p", { class: "error", role: "alert", hidden: true });
  const cards = new Map(); // provider key -> {list, setup, items: Map(id -> li)}
  let loading = false;

  const actions = {
    async test(item, out) {
      out.replaceChildren(h("p", { class: "muted" }, "Testing…"));
      try {
        const report = await api("POST", `${base(project)}/integrations/${encodeURIComponent(item.id)}/test/`);
        out.replaceChildren(
          h("p", { class: report.ok ? "outcome done" : "outcome failed" }, report.ok ? "Test passed." : "Test found a problem."),
          h("ul", { class: "checks" }, ...report.checks.map((c) => h("li", {}, h("span", { class: c.ok ? "outcome done" : "outcome failed" }, c.ok ? "OK " : "Problem "), c.detail))),
        );
      } catch (e) {
        out.replaceChildren(h("p", { class: "error" }, `Not tested: ${e.message}`));
      }
    },
    async pause(item) {
      const resume = item.status === "paused";
      const connection = item.kind === "connection";
      const question = connection
        ? `Pause the ${item.name}? Nothing is fetched from or sent to the provider (no file search, no time import or export, no token refresh) until you resume it.`
        : "Pause this endpoint? Deliveries are still answered (so the provider does not give up), but they are recorded as ignored and change no task until you resume it.";
      if (!resume && !confirm(question)) return;
      try {
        await api("POST", `${base(project)}/integrations/${encodeURIComponent(item.id)}/${resume ? "resume" : "pause"}/`);
        const what = connection ? "Connection" : "Endpoint";
        const paused = connection ? "nothing is fetched or sent." : "deliveries are recorded as ignored.";
        announce(resume ? `${what} resumed.` : `${what} paused: ${paused}`);
      } catch (e) {
        toast(`Not ${resume ? "resumed" : "paused"}: ${e.message}`, "error");
      }
      load();
    },
    async remove(item) {
      const question =
        item.kind === "connection"
          ? `Delete the ${item.name}? Its token is revoked where the provider allows it; attached files stay on the tasks.`
          : `Delete this ${item.name}? The provider's deliveries to it will be refused from now on; remove the webhook on the provider's side too.`;
      if (!confirm(question)) return;
      try {
        await api("DELETE", `${base(project)}/integrations/${encodeURIComponent(item.id)}/`);
        announce("Endpoint deleted.");
      } catch (e) {
        toast(`Not deleted: ${e.message}`, "error");
      }
      load();
    },
  };

  const card = (provider) => {
    const list = h("ul", { class: "endpoints" });
    const empty = h("p", { class: "muted" }, "No repository connected.");
    const setup = h("div", { class: "setup-slot" });
    const connect = h(
      "button",
      {
        type: "button",
        class: "primary",
        onclick: async () => {
          if (!online(project)) return announce("Connecting a repository needs a connection.");
          connect.disabled = true;
          try {
            const created = await api("POST", `${base(project)}/webhooks/`, { provider: provider.key });
            setup.replaceChildren(setupPanel(provider, created, announce, () => connect.focus()));
            load();
          } catch (e) {
            toast(`Not connected: ${e.message}`, "error");
          } finally {
            connect.disabled = false;
          }
        },
      },
      "Connect a repository",
    );
    const headingId = `provider-${provider.key}`;
    const section = h(
      "section",
      { class: "card provider", "aria-labelledby": headingId, "data-provider": provider.key },
      h("h3", { id: headingId }, provider.name),
      h("p", { class: "muted" }, provider.blurb),
      connect,
      setup,
      empty,
      list,
    );
    cards.set(provider.key, { list, empty, items: new Map() });
    return section;
  };

  const connections = connectionsCard(project, announce, () => load());
  const draw = async (all) => {
    connections.draw(all.filter((i) => i.kind === "connection"), actions);
    const items = all.filter((i) => i.kind === "webhook");
    const deliveries = new Map(
      await Promise.all(
        items.map(async (item) => {
          try {
            const data = await api("GET", `${base(project)}/webhooks/${encodeURIComponent(item.id)}/deliveries/`);
            return [item.id, data.items || []];
          } catch (e) {
            return [item.id, { error: e.message }];
          }
        }),
      ),
    );
    for (const [key, c] of cards) {
      const mine = items.filter((i) => i.provider === key);
      for (const [id, li] of c.items) {
        if (!mine.some((i) => i.id === id)) {
          li.remove();
          c.items.delete(id);
        }
      }
      for (const item of mine) {
        let li = c.items.get(item.id);
        if (!li) {
          li = endpointItem(project, item, actions);
          c.items.set(item.id, li);
          c.list.append(li);
        }
        li.update(item, deliveries.get(item.id));
      }
      c.empty.hidden = mine.length > 0;
    }
  };

  const load = async () => {
    offline.hidden = online(project);
    offline.textContent = "Offline: integrations are shown and changed when online.";
    if (loading || !online(project)) return;
    loading = true;
    try {
      const data = await api("GET", `${base(project)}/integrations/`);
      failure.hidden = true;
      await draw(data.items || []);
    } catch (e) {
      failure.hidden = false;
      failure.textContent = `Integrations are not available: ${e.message}`;
    } finally {
      loading = false;
    }
  };

  const timer = setInterval(() => document.visibilityState === "visible" && load(), 3000);
  onCleanup(() => clearInterval(timer));

  const page = h(
    "div",
    { class: "integrations" },
    h("header", { class: "page-head" }, h("h2", {}, "Integrations")),
    h("p", { class: "muted" }, "Link the project's repositories: each gets its own webhook endpoint and secret. Events arrive below as they come."),
    offline,
    failure,
    ...PROVIDERS.map(card),
    connections,
    announcer,
  );
  shell(project, "integrations", page);
  load();
}
