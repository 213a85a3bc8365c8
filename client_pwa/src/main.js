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
import { loginView, projectsView } from "./views/projects.js";

registerSW({ immediate: true });

const LAZY = {
  task: () => import("./views/task.js").then((m) => m.taskView),
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
};

let renderId = 0;

async function render() {
  clearView();
  const id = ++renderId;
  const parts = location.hash.replace(/^#\/?/, "").split("?")[0].split("/");
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

setRenderer(render);
window.addEventListener("hashchange", render);
render();
// Once the first view is up, fetch the other views' code while idle: a page opened before
// the service worker took control still has them if the network goes away.
const warm = () => Object.values(LAZY).forEach((load) => load().catch(() => {}));
if ("requestIdleCallback" in window) requestIdleCallback(warm, { timeout: 3000 });
else setTimeout(warm, 2000);
