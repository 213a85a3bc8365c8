import { go, on } from "../app.js";
import { h } from "../dom.js";
import { shell } from "../shell.js";

// -- list -------------------------------------------------------------------------------------

export function listView(project) {
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
