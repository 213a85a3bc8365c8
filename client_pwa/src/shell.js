// The project shell: header (presence, bell, sync status), bottom navigation, refusals.
import { api, ApiError, cachedGet, session } from "./api.js";
import { app, go, on, state } from "./app.js";
import { colorFor, h, initials, toast, fill } from "./dom.js";
import { ProjectSession } from "./model.js";
import { bell, forgetPush } from "./bell.js";
import { quickAdd } from "./ui/dialogs.js";

// the views of a project; the first four stay in the phone's bottom bar, the rest are
// under "More" there (the side bar on wide screens shows them all)
const VIEWS = [
  { key: "board", label: "Board", icon: "▦" },
  { key: "list", label: "Tasks", icon: "☰" },
  { key: "add", label: "New task", icon: "+", may: "create_tasks" },
  { key: "chat", label: "Chat", icon: "✉" },
  { key: "timeline", label: "Timeline", icon: "═", more: true },
  { key: "activity", label: "Activity", icon: "↻", more: true },
  { key: "budget", label: "Budget", icon: "¤", more: true, may: ["view_budget", "view_costs"] },
  { key: "resources", label: "Resources", icon: "⚇", more: true, may: "view_resources" },
  { key: "analytics", label: "Analytics", icon: "▤", more: true, may: "view_analytics" },
  { key: "team", label: "Team", icon: "☺", more: true, may: "manage_team" },
  { key: "settings", label: "Settings", icon: "⚙", more: true },
  // listed for those who may change rules; others can open it by its address (read-only)
  { key: "automations", label: "Automations", icon: "⚡", more: true, nav: "edit_project" },
  { key: "integrations", label: "Integrations", icon: "⇄", more: true, may: "manage_team" },
];

export function mayOpen(project, view) {
  const v = VIEWS.find((x) => x.key === view);
  if (!v || !v.may) return true;
  return [].concat(v.may).some((p) => project.can(p));
}

export function canEditTask(project, task) {
  return project.can("edit_all_tasks") || (project.can("edit_own_tasks") && (task.assignees || []).includes(project.user));
}

export function viewOnly(project) {
  return !project.can("edit_all_tasks") && !project.can("edit_own_tasks") && !project.can("create_tasks");
}

export function logout() {
  // the push subscription first, while the login still works; then the login itself
  const token = session.token;
  forgetPush(token).finally(() => api("POST", "/logout", undefined, token).catch(() => {}));
  if (state.current) state.current.destroy();
  state.current = null;
  session.clear();
  go("#/login");
}

// -- the project shell ----------------------------------------------------------------

export async function openProject(projectId) {
  if (state.current && state.current.projectId === projectId) return state.current;
  if (state.current) state.current.destroy();
  let permissions = [];
  try {
    permissions = (await cachedGet(`/me/permissions?project=${encodeURIComponent(projectId)}`)).permissions;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      logout();
      throw e;
    }
  }
  state.current = new ProjectSession({ projectId, user: session.user, token: session.token, permissions });
  window.tandem = state.current; // for the console (and the tests)
  state.current.addEventListener("rejected", (e) => showRefusal(state.current, e.detail));
  document.getElementById("refusals")?.replaceChildren();
  for (const refusal of state.current.refusals) showRefusal(state.current, refusal); // kept from before a reload
  state.current.addEventListener("fatal", (e) => toast(`Disconnected: ${e.detail.reason}`, "error"));
  await state.current.ready;
  return state.current;
}

// A refusal stays on screen until the user says they have seen it: work that was not
// saved must never vanish with a timed toast.
function showRefusal(project, refusal) {
  let box = document.getElementById("refusals");
  if (!box) {
    box = h("div", { id: "refusals", role: "alert" });
    document.body.append(box);
  }
  const notice = h(
    "div",
    { class: "refusal", "data-testid": "refusal" },
    h("span", {}, refusal.text),
    h(
      "button",
      {
        onclick: () => {
          notice.remove();
          project.dismissRefusal(refusal.id);
        },
      },
      "OK",
    ),
  );
  box.append(notice);
}

function statusPill(project) {
  const pill = h("span", { class: "pill", "data-testid": "sync-status" });
  const update = () => {
    const pending = project.provider.pending + project.chatProvider.pending;
    const refused = project.refusals.length;
    const cannotStore = project.provider.closeReason?.code === 1013; // e.g. its disk is full
    pill.title = cannotStore ? project.provider.closeReason.reason : "";
    if (!project.provider.connected && cannotStore) {
      pill.textContent = pending ? `Server cannot save now · ${pending} kept here` : "Server cannot save now";
      pill.className = "pill offline";
    } else if (!project.provider.connected) {
      pill.textContent = pending ? `Offline · ${pending} to sync` : "Offline";
      pill.className = "pill offline";
    } else if (refused) {
      pill.textContent = refused === 1 ? "1 change not saved" : `${refused} changes not saved`;
      pill.className = "pill refused";
    } else if (pending) {
      pill.textContent = `Saving ${pending}…`;
      pill.className = "pill pending";
    } else if (!project.provider.synced || !project.chatProvider.synced) {
      // connected, and the server has not yet said what it lacks: not "Saved" yet
      pill.textContent = "Syncing…";
      pill.className = "pill pending";
    } else {
      pill.textContent = "Saved";
      pill.className = "pill saved";
    }
  };
  on(project, "status", update);
  on(window, "online", update);
  on(window, "offline", update);
  update();
  return pill;
}

function presenceBar(project) {
  const bar = h("div", { class: "presence", "aria-label": "Who is online" });
  const update = () => {
    const tasks = new Map(project.tasks().map((t) => [t.id, t.title]));
    fill(bar, 
      ...project.people().map((p) => {
        const viewing = p.viewing && p.viewing.task ? tasks.get(p.viewing.task) : null;
        const what = p.viewing && p.viewing.editing && p.viewing.field ? `the ${p.viewing.field} of ` : "";
        const title = viewing
          ? `${p.user.name} is ${p.viewing.editing ? "editing" : "viewing"} ${what}“${viewing}”`
          : `${p.user.name} is online`;
        return h(
          "span",
          { class: "avatar", title, style: { background: colorFor(p.user.name) } },
          initials(p.user.name),
          h("i", { class: `dot ${p.viewing && p.viewing.editing ? "editing" : "online"}` }),
        );
      }),
    );
  };
  on(project, "presence", update);
  update();
  return bar;
}

const seenKey = (project) => `tandem.chatSeen:${project.user}:${project.projectId}`;

export function unreadChat(project) {
  const seen = localStorage.getItem(seenKey(project)) || "";
  return project.messages().filter((m) => m.author !== project.user && String(m.at) > seen).length;
}

export function markChatSeen(project) {
  const last = project.messages().at(-1);
  if (last) localStorage.setItem(seenKey(project), String(last.at));
}

function navigation(project, active) {
  const link = (v) =>
    h(
      v.key === "add" ? "button" : "a",
      v.key === "add"
        ? { type: "button", class: "nav-item", "data-view": v.key, onclick: () => quickAdd(project), "aria-keyshortcuts": "n" }
        : {
            href: `#/p/${project.projectId}/${v.key}`,
            class: `nav-item${v.key === active ? " active" : ""}`,
            "data-view": v.key,
            "aria-current": v.key === active ? "page" : null,
          },
      h("span", { class: "icon", "aria-hidden": "true" }, v.icon),
      h("span", {}, v.label),
    );
  const shown = VIEWS.filter((v) => (!v.may || mayOpen(project, v.key)) && (!v.nav || project.can(v.nav)));
  const items = shown.filter((v) => !v.more).map(link);
  // chat: a count of messages from others since this user last had the chat open
  const chat = items.find((el) => el.dataset.view === "chat");
  if (chat) {
    const badge = h("span", { class: "badge nav-badge", hidden: true });
    chat.append(badge);
    const update = () => {
      const n = active === "chat" ? 0 : unreadChat(project);
      // the name holds the visible text, "Chat 2" (the space does not show at the badge's start)
      badge.textContent = n ? ` ${n}` : "";
      badge.hidden = !n;
      chat.setAttribute("aria-label", n ? `Chat ${n} unread` : "Chat");
    };
    on(project, "chat", update);
    update();
  }
  const more = h("div", { class: "nav-more", id: "nav-more" }, ...shown.filter((v) => v.more).map(link));
  const activeMore = shown.some((v) => v.more && v.key === active);
  const toggle = h(
    "button",
    {
      type: "button",
      class: `nav-item more-toggle${activeMore ? " active" : ""}`,
      "aria-expanded": "false",
      "aria-controls": "nav-more",
      onclick: () => {
        const open = !more.classList.contains("open");
        more.classList.toggle("open", open);
        toggle.setAttribute("aria-expanded", String(open));
        if (open) more.querySelector("a")?.focus();
      },
    },
    h("span", { class: "icon", "aria-hidden": "true" }, "⋯"),
    h("span", {}, "More"),
  );
  more.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && more.classList.contains("open")) {
      more.classList.remove("open");
      toggle.setAttribute("aria-expanded", "false");
      toggle.focus();
    }
  });
  return h("nav", { class: "bottom-nav", "aria-label": "Project" }, ...items, toggle, more);
}

// Keyboard shortcuts of a project: n = new task, / = search the tasks, g then b = board.
function shortcuts(project) {
  const onKey = (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog")) return;
    if (e.key === "n" && project.can("create_tasks")) {
      e.preventDefault();
      quickAdd(project);
    } else if (e.key === "/") {
      e.preventDefault();
      const search = document.querySelector("input[type=search]");
      if (search) search.focus();
      else {
        state.focus = "search";
        go(`#/p/${project.projectId}/list`);
      }
    }
  };
  on(document, "keydown", onKey);
}

// The page of a project: header, skip link, navigation before the content (so it is a few
// Tab presses away), the view's content in <main>.
// options.back: where "‹" goes (a hash) and its label; the board's by default goes to all projects.
export function shell(project, active, content, options = {}) {
  const back = options.back || { href: "#/projects", label: "All projects" };
  const name = project.meta.name || project.projectId;
  const title = h("h1", {}, name);
  on(project, "change", () => (title.textContent = project.meta.name || project.projectId));
  const main = h("main", { class: `content view-${active}`, id: "main", tabindex: "-1" }, content);
  const skip = h(
    "a",
    {
      href: "#main",
      class: "skip-link",
      onclick: (e) => {
        e.preventDefault(); // a hash route would change the view
        main.focus();
      },
    },
    "Skip to content",
  );
  shortcuts(project);
  fill(app, 
    skip,
    h(
      "div",
      { class: "shell" },
      h(
        "header",
        { class: "top" },
        h("a", { href: back.href, class: "back", "aria-label": back.label }, "‹"),
        title,
        viewOnly(project) ? h("span", { class: "pill view-only", "data-testid": "view-only" }, "View only") : null,
        presenceBar(project),
        bell(),
        statusPill(project),
      ),
      navigation(project, active),
      main,
    ),
  );
}

// A view that does not exist (or that this user may not open): said so, not the board.
export function notFound(project, what = "This page does not exist.") {
  shell(
    project,
    "",
    h(
      "section",
      { class: "not-found card", "data-testid": "not-found" },
      h("h2", {}, "Not found"),
      h("p", {}, what),
      h("a", { href: `#/p/${project.projectId}/board` }, "Go to the board"),
    ),
  );
}
