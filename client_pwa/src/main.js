// Tandem in the browser: login, projects, board, task, list, timeline, chat, activity, team.
// Routes are hashes (#/p/<id>/board ...) so the precached app shell serves every view offline.
// The board is in the start bundle; the other views load on demand (import()), and the
// service worker precaches every chunk, so they open offline too.
import "./style.css";
import { registerSW } from "virtual:pwa-register";
import { session } from "./api.js";
import { clearView, go, setRenderer } from "./app.js";
import { mayOpen, notFound, openProject } from "./shell.js";
import { boardView } from "./views/board.js";
import { taskView } from "./views/task.js"; // opened from the board all the time: no wait
import { loginView, projectsView } from "./views/projects.js";

registerSW({ immediate: true });

const LAZY = {
  task: () => Promise.resolve(taskView),
  list: () => import("./views/list.js").then((m) => m.listView),
  timeline: () => import("./views/timeline.js").then((m) => m.timelineView),
  chat: () => import("./views/chat.js").then((m) => m.chatView),
  activity: () => import("./views/activity.js").then((m) => m.activityView),
  team: () => import("./views/team.js").then((m) => m.teamView),
  settings: () => import("./views/settings.js").then((m) => m.settingsView),
  budget: () => import("./views/budget.js").then((m) => m.budgetView),
  resources: () => import("./views/resources.js").then((m) => m.resourcesView),
  analytics: () => import("./views/analytics.js").then((m) => m.analyticsView),
  automations: () => import("./views/automations.js").then((m) => m.automationsView),
  integrations: () => import("./views/integrations.js").then((m) => m.integrationsView),
};

let renderId = 0;

async function render() {
  clearView();
  const id = ++renderId;
  const parts = location.hash.replace(/^#\/?/, "").split("?")[0].split("/");
  if (!session.token) return loginView();
  if (parts[0] === "login") return go("#/projects");
  if (parts[0] !== "p" || !parts[1]) {
    setTimeout(warm, 3000);
    return projectsView();
  }
  let project;
  try {
    project = await openProject(decodeURIComponent(parts[1]));
  } catch (e) {
    return;
  }
  warmWhenSynced(project);
  const view = parts[2] || "board";
  if (view === "board" && !parts[3]) return boardView(project);
  // sub-pages: task/<id>, automations/new, automations/<rule id>
  const depth = view === "task" || view === "automations" ? 4 : 3;
  if (!LAZY[view] || parts.length > depth) return notFound(project);
  if (!mayOpen(project, view)) return notFound(project, "You may not open this page in this project.");
  const show = await LAZY[view]();
  if (id !== renderId) return; // the user went elsewhere meanwhile
  if (view === "task") return parts[3] ? show(project, decodeURIComponent(parts[3])) : notFound(project);
  if (view === "automations") return show(project, parts.slice(3));
  return show(project);
}

// Once a project's board is synced, fetch the other views' code while idle: a page opened
// before the service worker took control still has them if the network then goes away, and
// the board's first paint does not wait for them.
let warmed = false;
const warm = () => {
  if (warmed) return;
  warmed = true;
  const load = () => Object.values(LAZY).forEach((get) => get().catch(() => (warmed = false)));
  // a moment after the sync, when the browser is idle
  setTimeout(() => ("requestIdleCallback" in window ? requestIdleCallback(load, { timeout: 2000 }) : load()), 1000);
};
export function warmWhenSynced(project) {
  if (warmed) return;
  const check = () => {
    if (!project.provider.synced) return;
    project.removeEventListener("status", check);
    warm();
  };
  project.addEventListener("status", check);
  check();
}

setRenderer(render);
window.addEventListener("hashchange", render);
render(); // last: everything above is defined by now
