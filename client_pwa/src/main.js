// Tandem in the browser: login, projects, board, task, list, timeline, chat, activity.
// Routes are hashes (#/p/<id>/board ...) so the precached app shell serves every view offline.
import "./style.css";
import { registerSW } from "virtual:pwa-register";
import { api, ApiError, cachedGet, session } from "./api.js";
import { attachmentsList } from "./attachments.js";
import { bindText, colorFor, h, initials, toast } from "./dom.js";
import { ProjectSession } from "./model.js";

registerSW({ immediate: true });

const app = document.getElementById("app");
let current = null; // the open ProjectSession
let cleanup = []; // listeners of the current view

const VIEWS = [
  { key: "board", label: "Home", icon: "▦" },
  { key: "list", label: "Tasks", icon: "☰" },
  { key: "add", label: "Add", icon: "+" },
  { key: "chat", label: "Chat", icon: "✉" },
  { key: "activity", label: "Activity", icon: "↻" },
];

function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function clearView() {
  for (const fn of cleanup) fn();
  cleanup = [];
}

function on(target, event, fn) {
  target.addEventListener(event, fn);
  cleanup.push(() => target.removeEventListener(event, fn));
}

// -- login and projects ---------------------------------------------------------

function loginView() {
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card login" },
    h("h1", {}, "Tandem"),
    h("label", {}, "User name", h("input", { name: "username", autocomplete: "username", required: true })),
    h(
      "label",
      {},
      "Password",
      h("input", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    ),
    h("button", { type: "submit", class: "primary" }, "Log in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const result = await api("POST", "/login", {
        username: data.get("username"),
        password: data.get("password"),
      });
      session.save(data.get("username"), result.token);
      go("#/projects");
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.message : "cannot reach the server";
    }
  });
  app.replaceChildren(form);
}

async function projectsView() {
  const list = h("ul", { class: "projects" }, h("li", {}, "Loading…"));
  app.replaceChildren(
    h(
      "main",
      { class: "page" },
      h("header", { class: "top" }, h("h1", {}, "Projects"), h("button", { onclick: logout }, "Log out")),
      list,
    ),
  );
  try {
    const page = await cachedGet("/projects/?limit=200");
    list.replaceChildren(
      ...page.items.map((p) =>
        h(
          "li",
          {},
          h("a", { href: `#/p/${p.id}/board`, class: "project" }, h("strong", {}, p.name), h("span", {}, p.role || "")),
        ),
      ),
    );
    if (!page.items.length) list.replaceChildren(h("li", {}, "No projects yet."));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout();
    list.replaceChildren(h("li", { class: "error" }, `Could not load projects: ${e.message}`));
  }
}

function logout() {
  api("POST", "/logout").catch(() => {});
  if (current) current.destroy();
  current = null;
  session.clear();
  go("#/login");
}

// -- the project shell ----------------------------------------------------------------

async function openProject(projectId) {
  if (current && current.projectId === projectId) return current;
  if (current) current.destroy();
  let permissions = [];
  try {
    permissions = (await cachedGet(`/me/permissions?project=${encodeURIComponent(projectId)}`)).permissions;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      logout();
      throw e;
    }
  }
  current = new ProjectSession({ projectId, user: session.user, token: session.token, permissions });
  window.tandem = current; // for the console (and the tests)
  current.addEventListener("rejected", (e) => showRefusal(current, e.detail));
  document.getElementById("refusals")?.replaceChildren();
  for (const refusal of current.refusals) showRefusal(current, refusal); // kept from before a reload
  current.addEventListener("fatal", (e) => toast(`Disconnected: ${e.detail.reason}`, "error"));
  await current.ready;
  return current;
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
    bar.replaceChildren(
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

// -- notifications: the in-app list, and Web Push on request ------------------------------------

function urlBase64ToBytes(text) {
  const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
  const raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function enablePush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    toast("This browser cannot receive push notifications; they stay in the bell.");
    return;
  }
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    toast("Notifications stay in the bell (permission not given).");
    return;
  }
  const { public_key: key } = await api("GET", "/push/key");
  const registration = await navigator.serviceWorker.ready;
  const subscription =
    (await registration.pushManager.getSubscription()) ||
    (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: urlBase64ToBytes(key) }));
  await api("POST", "/me/push-subscriptions", subscription.toJSON());
  toast("Push notifications are on for this device.");
}

function bellIcon() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "22");
  svg.setAttribute("height", "22");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1z");
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

function bell() {
  const count = h("span", { class: "badge", hidden: true });
  const panel = h("div", { class: "notifications card", hidden: true, role: "dialog", "aria-label": "Notifications" });
  const button = h("button", { class: "bell icon-button", "aria-label": "Notifications", "aria-expanded": "false" }, bellIcon(), count);
  const refresh = async () => {
    try {
      const data = await api("GET", "/me/notifications?limit=20");
      count.textContent = data.unread;
      count.hidden = data.unread === 0;
      const pushable = "PushManager" in window && "Notification" in window && Notification.permission !== "granted";
      panel.replaceChildren(
        h("h2", {}, "Notifications"),
        pushable
          ? h(
              "div",
              { class: "push-offer" },
              h("p", {}, "Get a notification on this device when someone assigns you a task or mentions you."),
              h("button", { class: "primary", onclick: () => enablePush().catch((e) => toast(e.message, "error")) }, "Turn on push notifications"),
            )
          : null,
        data.items.length
          ? h(
              "ul",
              {},
              ...data.items.map((n) =>
                h("li", { class: n.read_at ? "" : "unread" }, h("a", { href: n.url.replace(/^\//, "") }, h("strong", {}, n.title), h("span", {}, n.body))),
              ),
            )
          : h("p", { class: "empty" }, "Nothing new."),
        data.unread
          ? h("button", { onclick: () => api("POST", "/me/notifications/read", {}).then(refresh) }, "Mark all read")
          : null,
      );
    } catch {
      // offline: keep what is shown
    }
  };
  button.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) refresh();
  });
  const timer = setInterval(() => document.visibilityState === "visible" && refresh(), 30000);
  cleanup.push(() => clearInterval(timer));
  if (current) {
    let soon = null;
    on(current, "change", () => {
      clearTimeout(soon);
      soon = setTimeout(refresh, 1000);
    });
    on(current, "chat", () => {
      clearTimeout(soon);
      soon = setTimeout(refresh, 1000);
    });
  }
  refresh();
  return h("div", { class: "bell-box" }, button, panel);
}

function shell(project, active, content) {
  const nav = h(
    "nav",
    { class: "bottom-nav", "aria-label": "Project" },
    ...VIEWS.filter((v) => v.key !== "add" || project.can("create_tasks")).map((v) =>
      h(
        "a",
        {
          href: v.key === "add" ? "#" : `#/p/${project.projectId}/${v.key}`,
          class: v.key === active ? "active" : "",
          "data-view": v.key,
          onclick: v.key === "add" ? (e) => (e.preventDefault(), quickAdd(project)) : null,
        },
        h("span", { class: "icon", "aria-hidden": "true" }, v.icon),
        h("span", {}, v.label),
      ),
    ),
    h(
      "a",
      { href: `#/p/${project.projectId}/timeline`, class: active === "timeline" ? "active" : "", "data-view": "timeline" },
      h("span", { class: "icon", "aria-hidden": "true" }, "═"),
      h("span", {}, "Timeline"),
    ),
  );
  const name = project.meta.name || project.projectId;
  const title = h("h1", {}, name);
  on(project, "change", () => (title.textContent = project.meta.name || project.projectId));
  app.replaceChildren(
    h(
      "div",
      { class: "shell" },
      h(
        "header",
        { class: "top" },
        h("a", { href: "#/projects", class: "back", "aria-label": "All projects" }, "‹"),
        title,
        presenceBar(project),
        bell(),
        project.can("manage_team")
          ? h("a", { href: `#/p/${project.projectId}/team`, class: "team-link", "aria-label": "Team and roles" }, "Team")
          : null,
        statusPill(project),
      ),
      h("main", { class: `content view-${active}` }, content),
      nav,
    ),
  );
}

function quickAdd(project, status) {
  const input = h("input", { name: "title", placeholder: "What needs doing?", required: true, maxlength: 500 });
  const dialog = h(
    "dialog",
    { class: "sheet" },
    h(
      "form",
      { method: "dialog" },
      h("h2", {}, "New task"),
      input,
      h(
        "div",
        { class: "actions" },
        h("button", { value: "cancel", formnovalidate: true }, "Cancel"),
        h("button", { value: "add", class: "primary" }, "Add"),
      ),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "add" && input.value.trim()) {
      project.createTask(input.value.trim(), status || project.columns[0]);
    }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

// -- board -------------------------------------------------------------------------------

function card(project, task, editable) {
  const el = h(
    "article",
    {
      class: `task-card priority-${task.priority}`,
      draggable: editable,
      dataset: { id: task.id },
      tabindex: 0,
    },
    h("h3", {}, task.title),
    h(
      "div",
      { class: "meta" },
      task.due ? h("span", { class: "due" }, task.due) : null,
      ...(task.labels || []).map((l) => h("span", { class: "label" }, l)),
      ...(task.assignees || []).map((a) =>
        h("span", { class: "avatar small", style: { background: colorFor(a) }, title: a }, initials(a)),
      ),
    ),
  );
  el.addEventListener("click", () => go(`#/p/${project.projectId}/task/${task.id}`));
  el.addEventListener("keydown", (e) => e.key === "Enter" && el.click());
  if (editable) {
    el.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData("text/plain", task.id);
      el.classList.add("dragging");
    });
    el.addEventListener("dragend", () => el.classList.remove("dragging"));
    touchDrag(project, el, task);
  }
  return el;
}

// Touch: a horizontal swipe moves the card to the next (right) or previous (left) column;
// a long press then drag drops it where the finger is lifted.
function touchDrag(project, el, task) {
  let start = null;
  let pressTimer = null;
  let dragging = false;
  el.addEventListener(
    "touchstart",
    (e) => {
      const t = e.touches[0];
      start = { x: t.clientX, y: t.clientY, time: Date.now() };
      pressTimer = setTimeout(() => {
        dragging = true;
        el.classList.add("dragging");
      }, 450);
    },
    { passive: true },
  );
  el.addEventListener(
    "touchmove",
    (e) => {
      const t = e.touches[0];
      if (!start) return;
      if (Math.abs(t.clientX - start.x) > 10 || Math.abs(t.clientY - start.y) > 10) clearTimeout(pressTimer);
      if (dragging) {
        e.preventDefault();
        el.style.transform = `translate(${t.clientX - start.x}px, ${t.clientY - start.y}px)`;
      } else if (Math.abs(t.clientX - start.x) > Math.abs(t.clientY - start.y)) {
        el.style.transform = `translateX(${(t.clientX - start.x) / 2}px)`;
      }
    },
    { passive: false },
  );
  el.addEventListener("touchend", (e) => {
    clearTimeout(pressTimer);
    const t = e.changedTouches[0];
    el.style.transform = "";
    el.classList.remove("dragging");
    if (!start) return;
    const dx = t.clientX - start.x;
    const dy = t.clientY - start.y;
    const columns = project.columns;
    const index = columns.indexOf(task.status);
    if (dragging) {
      dragging = false;
      const target = document.elementFromPoint(t.clientX, t.clientY)?.closest("[data-column]");
      if (target) project.moveTask(task.id, target.dataset.column);
      e.preventDefault();
    } else if (Math.abs(dx) > 60 && Math.abs(dx) > 2 * Math.abs(dy)) {
      e.preventDefault(); // a swipe, not a tap
      const next = columns[index + (dx > 0 ? 1 : -1)];
      if (next) {
        project.moveTask(task.id, next);
        toast(`Moved to ${next.replace("_", " ")}`);
      }
    }
    start = null;
  });
}

function boardView(project) {
  const editable = project.can("edit_all_tasks") || project.can("edit_own_tasks");
  const board = h("div", { class: "board" });
  const draw = () => {
    board.replaceChildren(
      ...project.columns.map((status) => {
        const tasks = project.columnTasks(status);
        const column = h(
          "section",
          { class: "column", dataset: { column: status } },
          h(
            "header",
            {},
            h("h2", {}, status.replace("_", " ")),
            h("span", { class: "count" }, tasks.length),
            project.can("create_tasks")
              ? h("button", { class: "icon-button", "aria-label": `Add to ${status}`, onclick: () => quickAdd(project, status) }, "+")
              : null,
          ),
          h("div", { class: "cards" }, ...tasks.map((t) => card(project, t, editable))),
        );
        column.addEventListener("dragover", (e) => {
          e.preventDefault();
          column.classList.add("over");
        });
        column.addEventListener("dragleave", () => column.classList.remove("over"));
        column.addEventListener("drop", (e) => {
          e.preventDefault();
          column.classList.remove("over");
          const id = e.dataTransfer.getData("text/plain");
          const before = e.target.closest("[data-id]");
          if (id) project.moveTask(id, status, before && before.dataset.id !== id ? before.dataset.id : null);
        });
        return column;
      }),
    );
  };
  let scheduled = false;
  on(project, "change", () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const scroll = board.scrollLeft;
      draw();
      board.scrollLeft = scroll;
    });
  });
  draw();
  pullToRefresh(board, project);
  shell(project, "board", board);
}

function pullToRefresh(el, project) {
  let startY = null;
  el.addEventListener(
    "touchstart",
    (e) => {
      startY = window.scrollY === 0 ? e.touches[0].clientY : null;
    },
    { passive: true },
  );
  el.addEventListener("touchend", (e) => {
    if (startY !== null && e.changedTouches[0].clientY - startY > 120) {
      project.provider.resync();
      project.chatProvider.resync();
      toast("Refreshing…");
    }
    startY = null;
  });
}

// -- task detail ---------------------------------------------------------------------------

// ["Ann"] -> "Ann"; ["Ann", "Ben"] -> "Ann and Ben"; ["Ann", "Ben", "Cy"] -> "Ann, Ben and Cy"
function listNames(names) {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

function taskView(project, taskId) {
  const task = project.task(taskId);
  if (!task) {
    shell(project, "board", h("p", { class: "empty" }, "This task no longer exists."));
    return;
  }
  const mine = (task.assignees || []).includes(project.user);
  const editable = project.can("edit_all_tasks") || (mine && project.can("edit_own_tasks"));
  project.setViewing(taskId, false);
  cleanup.push(() => project.setViewing(null));
  const title = h("textarea", { class: "title-input", rows: 1, "aria-label": "Title", maxlength: 500 });
  const description = h("textarea", { class: "description", rows: 8, "aria-label": "Description" });
  cleanup.push(bindText(title, project.text(taskId, "title"), editable));
  cleanup.push(bindText(description, project.text(taskId, "description"), editable));
  // who else is typing in each text, said beside it (their characters arrive live)
  const coEditing = {};
  let shown = true; // a field removed with its view must not announce a blur afterwards
  cleanup.push(() => (shown = false));
  for (const [name, field] of [["title", title], ["description", description]]) {
    field.addEventListener("focus", () => shown && project.setViewing(taskId, true, name));
    field.addEventListener("blur", () => shown && project.setViewing(taskId, false));
    coEditing[name] = h("p", { class: "co-editing", "data-testid": `editing-${name}`, role: "status", hidden: true });
  }
  const showEditors = () => {
    for (const [name, field] of [["title", title], ["description", description]]) {
      const names = project.editors(taskId, name);
      const note = coEditing[name];
      const text = names.length ? `${listNames(names)} ${names.length === 1 ? "is" : "are"} editing the ${name}` : "";
      if (note.textContent !== text) note.textContent = text;
      note.hidden = !names.length;
      note.style.color = names.length ? colorFor(names[0]) : "";
      field.classList.toggle("co-edited", names.length > 0);
    }
  };
  on(project, "presence", showEditors);
  showEditors();
  const select = (name, options, value) =>
    h(
      "select",
      { name, disabled: !editable, onchange: (e) => project.setField(taskId, name, e.target.value) },
      ...options.map((o) => h("option", { value: o, selected: o === value }, o.replace("_", " "))),
    );
  const listInput = (name, value, permission) =>
    h("input", {
      name,
      value: (value || []).join(", "),
      disabled: !(permission ? project.can(permission) : editable),
      onchange: (e) =>
        project.setField(
          taskId,
          name,
          e.target.value.split(",").map((s) => s.trim()).filter(Boolean),
        ),
    });
  const date = (name, value) =>
    h("input", { type: "date", name, value: value || "", disabled: !editable, onchange: (e) => project.setField(taskId, name, e.target.value || null) });
  const milestoneSelect = () =>
    h(
      "select",
      {
        name: "milestone",
        disabled: !editable,
        onchange: (e) => project.setField(taskId, "milestone", e.target.value || null),
      },
      h("option", { value: "" }, "none"),
      ...project.milestones().map((m) => h("option", { value: m.id, selected: m.id === task.milestone }, m.name)),
    );
  const attachments = attachmentsList({ projectId: project.projectId, taskId, editable }); // Drive / Dropbox / OneDrive files
  attachments.draw(task);
  const form = h(
    "div",
    { class: "task-detail card" },
    title,
    coEditing.title,
    h(
      "div",
      { class: "fields" },
      h("label", {}, "Status", select("status", project.columns, task.status)),
      h("label", {}, "Priority", select("priority", ["low", "medium", "high", "urgent"], task.priority)),
      h("label", {}, "Assignees", listInput("assignees", task.assignees, "assign_tasks")),
      h("label", {}, "Labels", listInput("labels", task.labels)),
      h("label", {}, "Start", date("start", task.start)),
      h("label", {}, "Due", date("due", task.due)),
      h("label", {}, "Milestone", milestoneSelect()),
    ),
    h("label", { class: "wide" }, "Description", description, coEditing.description),
    attachments.el,
    project.can("delete_tasks")
      ? h(
          "button",
          {
            class: "danger",
            onclick: () => {
              if (confirm("Delete this task?")) {
                project.deleteTask(taskId);
                go(`#/p/${project.projectId}/board`);
              }
            },
          },
          "Delete task",
        )
      : null,
  );
  on(project, "change", () => {
    const now = project.task(taskId);
    if (!now) return go(`#/p/${project.projectId}/board`);
    attachments.draw(now);
    for (const name of ["status", "priority"]) {
      const el = form.querySelector(`select[name=${name}]`);
      if (el && document.activeElement !== el) el.value = now[name];
    }
    for (const name of ["assignees", "labels"]) {
      const el = form.querySelector(`input[name=${name}]`);
      if (el && document.activeElement !== el) el.value = (now[name] || []).join(", ");
    }
    for (const name of ["start", "due"]) {
      const el = form.querySelector(`input[name=${name}]`);
      if (el && document.activeElement !== el) el.value = now[name] || "";
    }
    const milestone = form.querySelector("select[name=milestone]");
    if (milestone && document.activeElement !== milestone) milestone.replaceWith(milestoneSelect());
  });
  shell(project, "board", form);
}

// -- list -------------------------------------------------------------------------------------

function listView(project) {
  const state = { q: "", status: "", sort: "due" };
  const rows = h("tbody");
  const draw = () => {
    const rank = { low: 0, medium: 1, high: 2, urgent: 3 };
    const words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    const tasks = project
      .tasks()
      .filter((t) => !state.status || t.status === state.status)
      .filter((t) => words.every((w) => `${t.title} ${t.description}`.toLowerCase().includes(w)))
      .sort((a, b) => {
        if (state.sort === "priority") return rank[b.priority] - rank[a.priority];
        if (state.sort === "title") return a.title.localeCompare(b.title);
        return (a.due || "9999").localeCompare(b.due || "9999");
      });
    rows.replaceChildren(
      ...tasks.map((t) =>
        h(
          "tr",
          { onclick: () => go(`#/p/${project.projectId}/task/${t.id}`) },
          h("td", {}, t.title),
          h("td", {}, t.status.replace("_", " ")),
          h("td", {}, t.priority),
          h("td", {}, t.due || ""),
          h("td", {}, (t.assignees || []).join(", ")),
        ),
      ),
    );
  };
  const controls = h(
    "div",
    { class: "filters" },
    h("input", { type: "search", placeholder: "Search", "aria-label": "Search", oninput: (e) => ((state.q = e.target.value), draw()) }),
    h(
      "select",
      { "aria-label": "Status", onchange: (e) => ((state.status = e.target.value), draw()) },
      h("option", { value: "" }, "All statuses"),
      ...project.columns.map((c) => h("option", { value: c }, c.replace("_", " "))),
    ),
    h(
      "select",
      { "aria-label": "Sort by", onchange: (e) => ((state.sort = e.target.value), draw()) },
      h("option", { value: "due" }, "Due date"),
      h("option", { value: "priority" }, "Priority"),
      h("option", { value: "title" }, "Title"),
    ),
  );
  on(project, "change", draw);
  draw();
  shell(
    project,
    "list",
    h(
      "div",
      { class: "list" },
      controls,
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ...["Task", "Status", "Priority", "Due", "Assignees"].map((c) => h("th", {}, c)))),
        rows,
      ),
    ),
  );
}

// -- timeline ------------------------------------------------------------------------------------

function timelineView(project) {
  const box = h("div", { class: "timeline" });
  const DAY = 86400000;
  const draw = () => {
    const tasks = project.tasks().filter((t) => t.start || t.due);
    const milestones = project.milestones().filter((m) => m.due);
    const dates = [
      ...tasks.flatMap((t) => [t.start, t.due].filter(Boolean)),
      ...milestones.map((m) => m.due),
    ].map((d) => Date.parse(d));
    if (!dates.length) {
      box.replaceChildren(h("p", { class: "empty" }, "No task has a start or due date yet."));
      return;
    }
    const first = Math.min(...dates);
    const span = Math.max(...dates) - first + DAY;
    const pos = (d) => `${(((Date.parse(d) - first) / span) * 100).toFixed(2)}%`;
    const width = (a, b) => `${Math.max(((Date.parse(b) - Date.parse(a) + DAY) / span) * 100, 1).toFixed(2)}%`;
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    box.replaceChildren(
      h(
        "div",
        { class: "axis" },
        h("span", {}, day(first)),
        h("span", {}, day(first + span / 2)),
        h("span", {}, day(first + span - DAY)),
      ),
      h(
        "div",
        { class: "milestones" },
        ...milestones.map((m) =>
          h("span", { class: "milestone", style: { left: pos(m.due) }, title: `${m.name} · ${m.due}` }, "◆ ", m.name),
        ),
      ),
      ...tasks
        .sort((a, b) => (a.start || a.due).localeCompare(b.start || b.due))
        .map((t) => {
          const start = t.start || t.due;
          const end = t.due || t.start;
          const deps = (t.depends_on || []).map((d) => byId.get(d)?.title).filter(Boolean);
          return h(
            "div",
            { class: "row", onclick: () => go(`#/p/${project.projectId}/task/${t.id}`) },
            h("span", { class: "name" }, t.title, deps.length ? h("small", {}, ` after ${deps.join(", ")}`) : null),
            h(
              "span",
              { class: "track" },
              h("span", {
                class: `bar status-${t.status}`,
                dataset: { task: t.id, after: (t.depends_on || []).filter((d) => byId.has(d)).join(" ") },
                style: { left: pos(start), width: width(start, end) },
                title: `${start} → ${end}`,
              }),
            ),
          );
        }),
    );
    requestAnimationFrame(drawDependencies);
  };
  // dependencies: an elbow line from the end of each prerequisite's bar to the start of the
  // task that waits for it
  const drawDependencies = () => {
    box.querySelector("svg.deps")?.remove();
    const origin = box.getBoundingClientRect();
    const bars = new Map([...box.querySelectorAll(".bar")].map((b) => [b.dataset.task, b.getBoundingClientRect()]));
    const paths = [];
    for (const bar of box.querySelectorAll(".bar[data-after]")) {
      const to = bars.get(bar.dataset.task);
      for (const dep of bar.dataset.after.split(" ").filter(Boolean)) {
        const from = bars.get(dep);
        if (!from || !to) continue;
        const x1 = from.right - origin.left;
        const y1 = from.top + from.height / 2 - origin.top;
        const x2 = to.left - origin.left;
        const y2 = to.top + to.height / 2 - origin.top;
        const mid = Math.max(x1 + 6, Math.min(x2 - 6, (x1 + x2) / 2));
        paths.push(`M${x1},${y1} H${mid} V${y2} H${x2}`);
      }
    }
    if (!paths.length) return;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "deps");
    svg.setAttribute("aria-hidden", "true");
    for (const d of paths) {
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    box.append(svg);
  };
  on(project, "change", draw);
  on(window, "resize", () => requestAnimationFrame(drawDependencies));
  draw();
  shell(project, "timeline", h("div", { class: "timeline-page" }, box, milestonePanel(project)));
}

const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

// Milestones: listed under the timeline; people with edit_project add, rename, date, close
// and delete them (each edit is one transaction, checked by the server's gate like any other).
function milestonePanel(project) {
  const editable = project.can("edit_project");
  const list = h("ul", { class: "milestone-list" });
  // Not while someone types a name or a date in a row: rebuilding it would take their focus
  // and what they typed. The list catches up when focus leaves that field.
  let stale = false;
  list.addEventListener("focusout", () => setTimeout(() => stale && draw()));
  const draw = () => {
    const el = document.activeElement;
    stale = list.contains(el) && el.matches("input.name, input[type=date]");
    if (stale) return;
    const items = project.milestones();
    const counts = new Map();
    for (const t of project.tasks()) if (t.milestone) counts.set(t.milestone, (counts.get(t.milestone) || 0) + 1);
    list.replaceChildren(
      ...items.map((m) =>
        h(
          "li",
          { class: m.done ? "done" : "", dataset: { milestone: m.id } },
          h("input", {
            type: "checkbox",
            checked: !!m.done,
            disabled: !editable,
            "aria-label": `${m.name} done`,
            onchange: (e) => project.setMilestoneField(m.id, "done", e.target.checked),
          }),
          h("input", {
            class: "name",
            value: m.name,
            disabled: !editable,
            "aria-label": "Milestone name",
            maxlength: 200,
            onchange: (e) => e.target.value.trim() && project.setMilestoneField(m.id, "name", e.target.value.trim()),
          }),
          h("input", {
            type: "date",
            value: m.due || "",
            disabled: !editable,
            "aria-label": `${m.name} due`,
            onchange: (e) => project.setMilestoneField(m.id, "due", e.target.value || null),
          }),
          h("small", {}, plural(counts.get(m.id) || 0, "task")),
          editable
            ? h(
                "button",
                {
                  class: "icon-button danger",
                  "aria-label": `Delete ${m.name}`,
                  onclick: () => confirm(`Delete milestone “${m.name}”?`) && project.deleteMilestone(m.id),
                },
                "✕",
              )
            : null,
        ),
      ),
    );
    if (!items.length) list.append(h("li", { class: "empty" }, "No milestones yet."));
  };
  const name = h("input", {
    name: "milestone-name",
    "aria-label": "New milestone name",
    placeholder: "New milestone",
    maxlength: 200,
    required: true,
  });
  const due = h("input", { type: "date", name: "milestone-due", "aria-label": "Due" });
  const form = editable
    ? h(
        "form",
        {
          class: "milestone-form",
          onsubmit: (e) => {
            e.preventDefault();
            if (!name.value.trim()) return;
            project.createMilestone(name.value.trim(), due.value || null);
            name.value = "";
            due.value = "";
          },
        },
        name,
        due,
        h("button", { type: "submit" }, "Add"),
      )
    : null;
  on(project, "change", draw);
  draw();
  return h("section", { class: "milestone-panel card" }, h("h2", {}, "Milestones"), list, form);
}

// -- chat ------------------------------------------------------------------------------------------

function chatView(project) {
  const list = h("ol", { class: "messages" });
  const draw = () => {
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
    list.replaceChildren(
      ...project.messages().map((m) =>
        h(
          "li",
          { class: m.author === project.user ? "mine" : "" },
          h("span", { class: "avatar small", style: { background: colorFor(m.author) } }, initials(m.author)),
          h("div", {}, h("strong", {}, m.author), " ", h("time", {}, new Date(m.at).toLocaleTimeString()), h("p", {}, m.text)),
        ),
      ),
    );
    if (stick) list.scrollTop = list.scrollHeight;
  };
  const input = h("input", { name: "message", placeholder: "Message", autocomplete: "off", maxlength: 10000 });
  const form = h("form", { class: "composer" }, input, h("button", { class: "primary" }, "Send"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) project.postMessage(input.value.trim());
    input.value = "";
  });
  on(project, "chat", draw);
  draw();
  shell(project, "chat", h("div", { class: "chat" }, list, form));
  list.scrollTop = list.scrollHeight;
}

// -- activity -------------------------------------------------------------------------------------

function describe(entry) {
  const d = entry.detail || {};
  switch (entry.action) {
    case "task.created":
      return `created “${d.title}”`;
    case "task.status":
      return `moved a task to ${String(d.status).replace("_", " ")}`;
    case "task.assigned":
      return `assigned a task to ${(d.assignees || []).join(", ") || "nobody"}`;
    case "task.updated":
      return `edited ${(d.fields || []).join(", ")} of a task`;
    case "task.deleted":
      return "deleted a task";
    case "chat.message":
      return "wrote in the chat";
    default:
      return entry.action.replace(".", " ");
  }
}

function activityView(project) {
  const list = h("ol", { class: "activity" }, h("li", {}, "Loading…"));
  const load = async () => {
    try {
      const page = await cachedGet(`/projects/${project.projectId}/activity/?limit=50`);
      list.replaceChildren(
        ...page.items.map((e) =>
          h(
            "li",
            {},
            h("span", { class: "avatar small", style: { background: colorFor(e.actor) } }, initials(e.actor)),
            h("span", {}, h("strong", {}, e.actor), " ", describe(e)),
            h("time", {}, new Date(e.at * 1000).toLocaleString()),
          ),
        ),
      );
      if (!page.items.length) list.replaceChildren(h("li", {}, "Nothing yet."));
    } catch (e) {
      list.replaceChildren(h("li", { class: "error" }, `Activity is not available: ${e.message}`));
    }
  };
  let timer = null;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 400); // the stream is written just after each change lands
  };
  on(project, "change", soon);
  on(project, "chat", soon);
  cleanup.push(() => clearTimeout(timer));
  load();
  shell(project, "activity", list);
}

// -- team: members' roles and the project's custom roles (manage_team) ------------------------

const PERMISSIONS = [
  "view_project", "edit_project", "delete_project", "manage_team", "view_tasks", "create_tasks",
  "edit_own_tasks", "edit_all_tasks", "delete_tasks", "assign_tasks", "view_resources",
  "manage_resources", "view_budget", "edit_budget", "view_costs", "edit_costs",
  "view_analytics", "export_data",
];

function teamView(project) {
  const base = `/projects/${encodeURIComponent(project.projectId)}`;
  const members = h("tbody");
  const roleList = h("ul", { class: "roles" });
  let roles = [];
  const fail = (e) => toast(e.message, "error");
  const load = async () => {
    try {
      const [grants, roleData] = await Promise.all([api("GET", `${base}/grants`), api("GET", `${base}/roles`)]);
      roles = roleData.roles;
      members.replaceChildren(
        ...grants.grants.map((g) =>
          h(
            "tr",
            { dataset: { member: g.user } },
            h("td", {}, g.user),
            h(
              "td",
              {},
              h(
                "select",
                {
                  "aria-label": `Role of ${g.user}`,
                  disabled: g.user === project.user,
                  onchange: (e) =>
                    api("PUT", `${base}/grants/${encodeURIComponent(g.user)}`, { role: e.target.value })
                      .then(() => toast(`${g.user} is now ${e.target.value}`))
                      .catch(fail)
                      .finally(load),
                },
                ...roles.map((r) => h("option", { value: r.name, selected: r.name === g.role }, r.name)),
              ),
            ),
            h(
              "td",
              {},
              g.user === project.user
                ? null
                : h(
                    "button",
                    {
                      class: "danger",
                      onclick: () =>
                        confirm(`Remove ${g.user} from the project?`) &&
                        api("DELETE", `${base}/grants/${encodeURIComponent(g.user)}`).catch(fail).finally(load),
                    },
                    "Remove",
                  ),
            ),
          ),
        ),
      );
      roleList.replaceChildren(
        ...roles.map((r) =>
          h(
            "li",
            {},
            h("strong", {}, r.name),
            r.builtin ? h("span", { class: "muted" }, " built-in") : null,
            h("p", {}, r.description || ""),
            h("p", { class: "muted" }, r.permissions.join(", ")),
            r.builtin
              ? null
              : h(
                  "button",
                  { onclick: () => api("DELETE", `${base}/roles/${encodeURIComponent(r.name)}`).catch(fail).finally(load) },
                  "Delete role",
                ),
          ),
        ),
      );
      addRole.replaceChildren(...roles.map((r) => h("option", { value: r.name }, r.name)));
    } catch (e) {
      fail(e);
    }
  };
  const addRole = h("select", { name: "role", "aria-label": "Role" });
  const addForm = h(
    "form",
    { class: "inline-form" },
    h("input", { name: "user", placeholder: "User name", required: true, "aria-label": "User name" }),
    addRole,
    h("button", { class: "primary" }, "Add member"),
  );
  addForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(addForm);
    api("PUT", `${base}/grants/${encodeURIComponent(data.get("user"))}`, { role: data.get("role") })
      .then(() => addForm.reset())
      .catch(fail)
      .finally(load);
  });
  const roleForm = h(
    "form",
    { class: "role-form" },
    h("input", { name: "name", placeholder: "new-role-name", pattern: "[a-z][a-z0-9_-]{0,39}", required: true, "aria-label": "Role name" }),
    h("input", { name: "description", placeholder: "What it is for", "aria-label": "Description" }),
    h(
      "fieldset",
      {},
      h("legend", {}, "Permissions"),
      ...PERMISSIONS.map((p) => h("label", {}, h("input", { type: "checkbox", name: "permissions", value: p }), p.replaceAll("_", " "))),
    ),
    h("button", { class: "primary" }, "Create role"),
  );
  roleForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(roleForm);
    api("POST", `${base}/roles`, {
      name: data.get("name"),
      description: data.get("description") || "",
      permissions: data.getAll("permissions"),
      project: project.projectId,
    })
      .then(() => roleForm.reset())
      .catch(fail)
      .finally(load);
  });
  load();
  shell(
    project,
    "team",
    h(
      "div",
      { class: "team" },
      h("section", { class: "card" }, h("h2", {}, "Members"), h("table", {}, members), addForm),
      h("section", { class: "card" }, h("h2", {}, "Roles"), roleList, roleForm),
    ),
  );
}

// -- router -------------------------------------------------------------------------------------------

async function render() {
  clearView();
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (!session.token) return loginView();
  if (parts[0] === "login") return go("#/projects");
  if (parts[0] !== "p" || !parts[1]) return projectsView();
  let project;
  try {
    project = await openProject(decodeURIComponent(parts[1]));
  } catch (e) {
    return;
  }
  const view = parts[2] || "board";
  if (view === "task" && parts[3]) return taskView(project, decodeURIComponent(parts[3]));
  if (view === "list") return listView(project);
  if (view === "timeline") return timelineView(project);
  if (view === "chat") return chatView(project);
  if (view === "activity") return activityView(project);
  if (view === "team" && project.can("manage_team")) return teamView(project);
  return boardView(project);
}

window.addEventListener("hashchange", render);
render();
