// Resources: who works on what, at what share of their time, when (REST: /allocations).
// A person whose allocations overlapping on any day add up to more than 100 % is flagged.
import { api } from "../api.js";
import { h, toast, fill } from "../dom.js";
import { shell } from "../shell.js";
import { dayRange, percent, shortDate } from "../ui/format.js";
import { memberOptions } from "../ui/pickers.js";

// the highest total percent of one person's allocations on any single day
export function peakLoad(items) {
  const points = new Set();
  for (const a of items) points.add(a.start || "0000-01-01");
  let peak = 0;
  for (const day of points) {
    const load = items.filter((a) => (a.start || "0000-01-01") <= day && (!a.end || a.end >= day)).reduce((s, a) => s + a.percent, 0);
    peak = Math.max(peak, load);
  }
  return peak;
}

export function resourcesView(project) {
  const base = `/projects/${encodeURIComponent(project.projectId)}/allocations/`;
  const fail = (e) => toast(e.message, "error");
  const people = h("div", { class: "page-grid" });
  const editable = project.can("manage_resources");
  const load = async () => {
    const data = await api("GET", base);
    const byUser = new Map();
    for (const a of data.items) byUser.set(a.user, [...(byUser.get(a.user) || []), a]);
    fill(people, 
      ...[...byUser].map(([user, items]) => {
        const peak = peakLoad(items);
        return h(
          "section",
          { class: "card", dataset: { user }, "aria-label": user },
          h("h3", {}, user, " ", h("span", { class: peak > 100 ? "overload" : "muted", "data-testid": "load" }, peak > 100 ? `over-allocated: ${percent(peak)}` : `peak ${percent(peak)}`)),
          h("div", { class: `bar-meter${peak > 100 ? " overload" : ""}`, role: "meter", "aria-label": `${user}'s peak load`, "aria-valuemin": 0, "aria-valuemax": 200, "aria-valuenow": peak }, h("span", { style: { width: `${Math.min(100, peak / 2)}%` } })),
          h(
            "ul",
            {},
            ...items.map((a) =>
              h(
                "li",
                {},
                `${percent(a.percent)} · ${a.task ? project.task(a.task)?.title || "a task" : "the project"} · ${a.start && a.end ? dayRange(a.start, a.end) : `${a.start ? shortDate(a.start) : "…"} – ${a.end ? shortDate(a.end) : "…"}`} `,
                editable ? h("button", { type: "button", class: "icon-button", "aria-label": `Remove allocation of ${user}`, onclick: () => api("DELETE", `${base}${a.id}/`).then(load, fail) }, "✕") : null,
              ),
            ),
          ),
        );
      }),
    );
    if (!byUser.size) fill(people, h("p", { class: "empty" }, "Nobody is allocated yet."));
  };
  const form = h(
    "form",
    {
      class: "form-grid card",
      onsubmit: (e) => {
        e.preventDefault();
        const d = new FormData(form);
        const body = { user: d.get("user"), percent: Number(d.get("percent")) };
        for (const k of ["start", "end", "task"]) if (d.get(k)) body[k] = d.get(k);
        if (body.start && body.end && body.start > body.end) return toast("The start must be on or before the end.", "error");
        api("POST", base, body).then(() => (form.reset(), load()), fail);
      },
    },
    h("label", {}, "Person", h("select", { name: "user", required: true }, ...memberOptions(project).map((m) => h("option", { value: m.value }, m.label)))),
    h("label", {}, "Share of time (%)", h("input", { name: "percent", type: "number", min: 0, max: 100, value: 50, required: true })),
    h("label", {}, "Start", h("input", { name: "start", type: "date" })),
    h("label", {}, "End", h("input", { name: "end", type: "date" })),
    h("label", {}, "Task", h("select", { name: "task" }, h("option", { value: "" }, "The whole project"), ...project.tasks().map((t) => h("option", { value: t.id }, t.title)))),
    h("button", { type: "submit", class: "primary" }, "Allocate"),
  );
  load().catch(fail);
  shell(project, "resources", h("div", { class: "page-grid" }, h("h2", {}, "Resources"), editable ? form : null, people));
}
