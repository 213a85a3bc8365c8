import { cachedGet } from "../api.js";
import { on, onCleanup } from "../app.js";
import { colorFor, h, initials, fill } from "../dom.js";
import { shell } from "../shell.js";
import { statusLabel, timeAgo } from "../ui/format.js";

// -- activity -------------------------------------------------------------------------------------

// "alice moved “Design checkout” to Done": the task named (and linked) when this client
// still has it, "a task" otherwise
function describe(project, entry) {
  const d = entry.detail || {};
  const task = entry.task ? project.task(entry.task) : null;
  const name = task || d.title ? `“${task ? task.title : d.title}”` : "a task";
  const link = (text) => (task ? h("a", { href: `#/p/${project.projectId}/task/${task.id}` }, text) : text);
  switch (entry.action) {
    case "task.created":
      return ["created ", link(name)];
    case "task.status":
      return ["moved ", link(name), ` to ${statusLabel(d.status)}`];
    case "task.assigned":
      return ["assigned ", link(name), ` to ${(d.assignees || []).join(", ") || "nobody"}`];
    case "task.updated":
      return [`edited ${(d.fields || []).join(", ")} of `, link(name)];
    case "task.deleted":
      return ["deleted ", name];
    case "chat.message":
      return task ? ["commented on ", link(name)] : ["wrote in the chat"];
    default:
      return [entry.action.replace(".", " ")];
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
            h("span", {}, h("strong", {}, e.actor), " ", describe(project, e)),
            timeAgo(h, e.at),
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
