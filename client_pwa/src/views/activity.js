import { cachedGet } from "../api.js";
import { on, onCleanup } from "../app.js";
import { colorFor, h, initials, fill } from "../dom.js";
import { shell } from "../shell.js";

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

export function activityView(project) {
  const list = h("ol", { class: "activity" }, h("li", {}, "Loading…"));
  const load = async () => {
    try {
      const page = await cachedGet(`/projects/${project.projectId}/activity/?limit=50`);
      fill(list, 
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
      if (!page.items.length) fill(list, h("li", {}, "Nothing yet."));
    } catch (e) {
      fill(list, h("li", { class: "error" }, `Activity is not available: ${e.message}`));
    }
  };
  let timer = null;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(load, 400); // the stream is written just after each change lands
  };
  on(project, "change", soon);
  on(project, "chat", soon);
  onCleanup(() => clearTimeout(timer));
  load();
  shell(project, "activity", list);
}
