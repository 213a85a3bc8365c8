// Tandem in the browser: login, projects, board, task, list, timeline, chat, activity, team.
// Routes are hashes (#/p/<id>/board ...) so the precached app shell serves every view offline.
// The board is in the start bundle; the other views load on demand (import()), and the
// service worker precaches every chunk, so they open offline too.
import "./style.css";
import { registerSW } from "virtual:pwa-register";
import { session } from "./api.js";
import { clearView, go, setRenderer } from "./app.js";
import { openProject } from "./shell.js";
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
  automations: () => import("./views/automations.js").then((m) => m.automationsView),
};

let renderId = 0;

async function render() {
  clearView();
  const id = ++renderId;
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
  if (view === "board" || (view === "team" && !project.can("manage_team")) || !LAZY[view]) {
    return boardView(project);
  }
  const show = await LAZY[view]();
  if (id !== renderId) return; // the user went elsewhere meanwhile
  if (view === "task") return parts[3] ? show(project, decodeURIComponent(parts[3])) : boardView(project);
  if (view === "automations") return show(project, parts.slice(3));
  return show(project);
}

setRenderer(render);
window.addEventListener("hashchange", render);
render();
