// The project shell: header (presence, bell, sync status), bottom navigation, refusals.
import { api, ApiError, cachedGet, session } from "./api.js";
import { app, go, on, state } from "./app.js";
import { colorFor, h, initials, toast } from "./dom.js";
import { ProjectSession } from "./model.js";
import { bell } from "./bell.js";
import { quickAdd } from "./ui/dialogs.js";

const VIEWS = [
  { key: "board", label: "Home", icon: "▦" },
  { key: "list", label: "Tasks", icon: "☰" },
  { key: "add", label: "Add", icon: "+" },
  { key: "chat", label: "Chat", icon: "✉" },
  { key: "activity", label: "Activity", icon: "↻" },
];
export function logout() {
  api("POST", "/logout").catch(() => {});
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

export function shell(project, active, content) {
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
    // automation rules: for those who may change them (others can open the page by its address)
    project.can("edit_project")
      ? h(
          "a",
          { href: `#/p/${project.projectId}/automations`, class: active === "automations" ? "active" : "", "data-view": "automations" },
          h("span", { class: "icon", "aria-hidden": "true" }, "⚡"),
          h("span", {}, "Rules"),
        )
      : null,
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
