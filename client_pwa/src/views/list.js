// Every task in a table: search over all fields, filters (status, assignee, label, priority,
// mine), sortable column headers; the filters are kept in the address (#/p/ID/list?...).
import { go, on, state as appState } from "../app.js";
import { h, fill } from "../dom.js";
import { shell } from "../shell.js";
import { shortDate, statusLabel } from "../ui/format.js";
import { labelOptions, memberOptions } from "../ui/pickers.js";

const RANK = { low: 0, medium: 1, high: 2, urgent: 3 };
const COLUMNS = [
  ["title", "Task"],
  ["status", "Status"],
  ["priority", "Priority"],
  ["due", "Due"],
  ["assignees", "Assignees"],
];

function readQuery() {
  const query = location.hash.split("?")[1] || "";
  const p = new URLSearchParams(query);
  return { q: p.get("q") || "", status: p.get("status") || "", assignee: p.get("assignee") || "", label: p.get("label") || "", priority: p.get("priority") || "", sort: p.get("sort") || "due", desc: p.get("desc") === "1" };
}

function writeQuery(project, state) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v && v !== "due" && k !== "desc") p.set(k, v);
  if (state.sort === "due") p.delete("sort");
  if (state.desc) p.set("desc", "1");
  const hash = `#/p/${project.projectId}/list${p.toString() ? `?${p}` : ""}`;
  history.replaceState(null, "", hash); // no re-render: the view is already here
}

export function listView(project) {
  const state = readQuery();
  const rows = h("tbody");
  const count = h("p", { class: "muted", role: "status" });
  const text = (t) => [t.key || "", t.title, t.description, t.status, t.priority, ...(t.assignees || []), ...(t.labels || []), t.due || ""].join(" ").toLowerCase();
  const sorter = (a, b) => {
    let r;
    if (state.sort === "priority") r = RANK[b.priority] - RANK[a.priority];
    else if (state.sort === "title") r = a.title.localeCompare(b.title);
    else if (state.sort === "status") r = project.columns.indexOf(a.status) - project.columns.indexOf(b.status);
    else if (state.sort === "assignees") r = (a.assignees || []).join().localeCompare((b.assignees || []).join());
    else r = (a.due || "9999").localeCompare(b.due || "9999");
    return state.desc ? -r : r;
  };
  const draw = () => {
    const words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    const me = project.user;
    const tasks = project
      .tasks()
      .filter((t) => !state.status || t.status === state.status)
      .filter((t) => !state.priority || t.priority === state.priority)
      .filter((t) => !state.assignee || (t.assignees || []).includes(state.assignee === "me" ? me : state.assignee))
      .filter((t) => !state.label || (t.labels || []).includes(state.label))
      .filter((t) => {
        if (!words.length) return true;
        const all = text(t);
        return words.every((w) => all.includes(w));
      })
      .sort(sorter);
    fill(rows, 
      ...tasks.map((t) =>
        h(
          "tr",
          { onclick: (e) => e.target.tagName !== "A" && go(`#/p/${project.projectId}/task/${t.id}`) },
          h("td", { "data-label": "Task" }, t.key ? h("span", { class: "task-key" }, t.key, " ") : null, h("a", { href: `#/p/${project.projectId}/task/${t.id}` }, t.title)),
          h("td", { "data-label": "Status" }, statusLabel(t.status)),
          h("td", { "data-label": "Priority" }, statusLabel(t.priority)),
          h("td", { "data-label": "Due" }, shortDate(t.due)),
          h("td", { "data-label": "Assignees" }, (t.assignees || []).join(", ")),
        ),
      ),
    );
    count.textContent = `${tasks.length} of ${project.tasks().length} tasks`;
    for (const th of head.querySelectorAll("th")) {
      const key = th.dataset.key;
      th.setAttribute("aria-sort", key === state.sort ? (state.desc ? "descending" : "ascending") : "none");
    }
    writeQuery(project, state);
  };
  const set = (key) => (e) => {
    state[key] = e.target.value;
    draw();
  };
  const head = h(
    "tr",
    {},
    ...COLUMNS.map(([key, label]) =>
      h(
        "th",
        { dataset: { key }, scope: "col" },
        h(
          "button",
          {
            type: "button",
            class: "sort",
            onclick: () => {
              state.desc = state.sort === key ? !state.desc : false;
              state.sort = key;
              draw();
            },
          },
          label,
        ),
      ),
    ),
  );
  const option = (value, label, current) => h("option", { value, selected: value === current }, label);
  const search = h("input", { type: "search", name: "q", value: state.q, placeholder: "Search all fields", "aria-label": "Search", "aria-keyshortcuts": "/", oninput: set("q") });
  const controls = h(
    "div",
    { class: "filters" },
    search,
    h("select", { "aria-label": "Status", name: "status", onchange: set("status") }, option("", "All statuses", state.status), ...project.columns.map((c) => option(c, statusLabel(c), state.status))),
    h(
      "select",
      { "aria-label": "Assignee", name: "assignee", onchange: set("assignee") },
      option("", "Anyone", state.assignee),
      option("me", "Assigned to me", state.assignee),
      ...memberOptions(project).map((m) => option(m.value, m.label, state.assignee)),
    ),
    h("select", { "aria-label": "Label", name: "label", onchange: set("label") }, option("", "Any label", state.label), ...labelOptions(project).map((l) => option(l.value, l.label, state.label))),
    h("select", { "aria-label": "Priority", name: "priority", onchange: set("priority") }, option("", "Any priority", state.priority), ...["urgent", "high", "medium", "low"].map((p) => option(p, statusLabel(p), state.priority))),
  );
  on(project, "change", draw);
  draw();
  shell(
    project,
    "list",
    h("div", { class: "list" }, h("h2", { class: "sr-only" }, "Tasks"), controls, count, h("table", { class: "task-table" }, h("caption", { class: "sr-only" }, "Tasks"), h("thead", {}, head), rows)),
  );
  if (appState.focus === "search") {
    appState.focus = null;
    search.focus();
  }
}
