import { go, on } from "../app.js";
import { h, fill } from "../dom.js";
import { shell } from "../shell.js";
import { plural, today } from "../ui/format.js";

// -- timeline ------------------------------------------------------------------------------------

export function timelineView(project) {
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
      fill(box, h("p", { class: "empty" }, "No task has a start or due date yet."));
      return;
    }
    const first = Math.min(...dates);
    const span = Math.max(...dates) - first + DAY;
    const pos = (d) => `${(((Date.parse(d) - first) / span) * 100).toFixed(2)}%`;
    const width = (a, b) => `${Math.max(((Date.parse(b) - Date.parse(a) + DAY) / span) * 100, 1).toFixed(2)}%`;
    const byId = new Map(tasks.map((t) => [t.id, t]));
    // today, as a line across the rows (when it falls inside the shown dates)
    const now = Date.parse(today());
    const frac = (now - first) / span;
    const todayLine =
      frac >= 0 && frac <= 1
        ? h("div", { class: "today-line", style: { left: `calc(8px + (100% - 16px) * ${(0.35 + 0.65 * frac).toFixed(4)})` }, title: "Today" }, h("span", {}, "Today"))
        : null;
    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    fill(box, 
      todayLine,
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
    fill(list, 
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
