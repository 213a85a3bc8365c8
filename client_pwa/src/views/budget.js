// Budget, costs and time entries (REST: /budget, /costs, /time-entries), with a timer that
// keeps running across reloads (its start is kept in localStorage) and logs an entry when stopped.
import { api } from "../api.js";
import { onCleanup } from "../app.js";
import { h, toast, fill } from "../dom.js";
import { shell } from "../shell.js";
import { money, number, shortDate, today } from "../ui/format.js";

export function budgetView(project) {
  const base = `/projects/${encodeURIComponent(project.projectId)}`;
  const fail = (e) => toast(e.message, "error");
  const summary = h("div", { class: "stat-row" });
  const costRows = h("tbody");
  const timeRows = h("tbody");
  let currency = "EUR";
  const taskName = (id) => (id ? project.task(id)?.title || "" : "");
  const taskSelect = (name) =>
    h("select", { name, id: name, "aria-label": "Task" }, h("option", { value: "" }, "No task"), ...project.tasks().map((t) => h("option", { value: t.id }, t.title)));
  const load = async () => {
    const [budget, costs, time] = await Promise.all([
      project.can("view_budget") ? api("GET", `${base}/budget/`).catch(() => null) : null,
      project.can("view_costs") ? api("GET", `${base}/costs/`).catch(() => null) : null,
      project.can("view_costs") ? api("GET", `${base}/time-entries/`).catch(() => null) : null,
    ]);
    currency = budget?.currency || Object.keys(costs?.sum || {})[0] || "EUR";
    const spent = costs ? Object.values(costs.sum || {}).reduce((a, b) => a + b, 0) : 0;
    const total = budget?.total ?? null;
    const hours = time ? time.items.reduce((a, t) => a + t.hours, 0) : 0;
    const over = total !== null && spent > total;
    fill(summary, 
      h("div", { class: "stat" }, "Budget", h("strong", {}, total === null ? "not set" : money(total, currency))),
      h("div", { class: "stat" }, "Spent", h("strong", { class: over ? "overload" : "" }, money(spent, currency))),
      h("div", { class: "stat" }, "Remaining", h("strong", { class: over ? "overload" : "" }, total === null ? "–" : money(total - spent, currency))),
      h("div", { class: "stat" }, "Hours logged", h("strong", {}, number(hours, { minimumFractionDigits: 1, maximumFractionDigits: 1 }))),
      total
        ? h(
            "div",
            { class: `bar-meter${over ? " overload" : ""}`, role: "meter", "aria-label": "Budget used", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round((spent / total) * 100), style: { gridColumn: "1 / -1" } },
            h("span", { style: { width: `${Math.min(100, (spent / total) * 100)}%` } }),
          )
        : null,
    );
    if (budget) {
      budgetForm.elements.namedItem("total").value = budget.total ?? "";
      budgetForm.elements.namedItem("currency").value = budget.currency || "EUR";
    }
    fill(costRows, 
      ...(costs?.items || []).map((c) =>
        h(
          "tr",
          {},
          h("td", { "data-label": "Date" }, shortDate(c.date)),
          h("td", { "data-label": "Amount" }, money(c.amount, c.currency)),
          h("td", { "data-label": "Category" }, c.category),
          h("td", { "data-label": "What" }, c.description, c.task ? h("small", {}, ` · ${taskName(c.task)}`) : null),
          h("td", {}, project.can("edit_costs") ? h("button", { type: "button", class: "icon-button", "aria-label": `Delete cost ${c.description || c.amount}`, onclick: () => api("DELETE", `${base}/costs/${c.id}/`).then(load, fail) }, "✕") : null),
        ),
      ),
    );
    fill(timeRows, 
      ...(time?.items || []).map((t) =>
        h(
          "tr",
          {},
          h("td", { "data-label": "Date" }, shortDate(t.date)),
          h("td", { "data-label": "Who" }, t.user),
          h("td", { "data-label": "Hours" }, number(t.hours)),
          h("td", { "data-label": "Task" }, [taskName(t.task), t.note].filter(Boolean).join(" · ")),
          h("td", {}, project.can("edit_costs") ? h("button", { type: "button", class: "icon-button", "aria-label": `Delete time entry of ${t.date}`, onclick: () => api("DELETE", `${base}/time-entries/${t.id}/`).then(load, fail) }, "✕") : null),
        ),
      ),
    );
  };
  const budgetForm = h(
    "form",
    { class: "form-grid", onsubmit: (e) => {
      e.preventDefault();
      const d = new FormData(budgetForm);
      api("PUT", `${base}/budget/`, { total: Number(d.get("total")), currency: String(d.get("currency")).toUpperCase() }).then(() => (toast("Budget saved"), load()), fail);
    } },
    h("label", {}, "Total", h("input", { name: "total", type: "number", min: 0, step: "0.01", required: true })),
    h("label", {}, "Currency", h("input", { name: "currency", pattern: "[A-Za-z]{3}", maxlength: 3, value: "EUR", required: true })),
    h("button", { type: "submit", class: "primary" }, "Save budget"),
  );
  const costForm = h(
    "form",
    { class: "form-grid", onsubmit: (e) => {
      e.preventDefault();
      const d = new FormData(costForm);
      const body = { amount: Number(d.get("amount")), currency, category: String(d.get("category") || ""), description: String(d.get("description") || ""), date: d.get("date") || today() };
      if (d.get("task")) body.task = d.get("task");
      api("POST", `${base}/costs/`, body).then(() => (costForm.reset(), load()), fail);
    } },
    h("label", {}, "Amount", h("input", { name: "amount", type: "number", step: "0.01", required: true })),
    h("label", {}, "Category", h("input", { name: "category", maxlength: 100 })),
    h("label", {}, "What", h("input", { name: "description" })),
    h("label", {}, "Date", h("input", { name: "date", type: "date", value: today() })),
    h("label", {}, "Task", taskSelect("task")),
    h("button", { type: "submit", class: "primary" }, "Add cost"),
  );
  const timeForm = h(
    "form",
    { class: "form-grid", onsubmit: (e) => {
      e.preventDefault();
      const d = new FormData(timeForm);
      logTime(Number(d.get("hours")), String(d.get("date") || today()), d.get("task"), String(d.get("note") || "")).then(() => timeForm.reset());
    } },
    h("label", {}, "Hours", h("input", { name: "hours", type: "number", min: 0.01, max: 24, step: "0.01", required: true })),
    h("label", {}, "Date", h("input", { name: "date", type: "date", value: today(), max: today() })),
    h("label", {}, "Task", taskSelect("task")),
    h("label", {}, "Note", h("input", { name: "note" })),
    h("button", { type: "submit", class: "primary" }, "Log time"),
  );
  const logTime = (hours, date, task, note) => {
    const body = { hours: Math.min(24, Math.round(hours * 100) / 100), date, note };
    if (task) body.task = task;
    return api("POST", `${base}/time-entries/`, body).then(() => (toast(`Logged ${body.hours} h`), load()), fail);
  };
  // the timer
  const key = `tandem.timer:${project.user}:${project.projectId}`;
  const clock = h("output", { "aria-live": "off" }, "0:00:00");
  const timerTask = taskSelect("timer-task");
  const timerButton = h("button", { type: "button", class: "primary" });
  const tick = () => {
    const started = Number(localStorage.getItem(key)) || 0;
    const secs = started ? Math.floor((Date.now() - started) / 1000) : 0;
    clock.textContent = `${Math.floor(secs / 3600)}:${String(Math.floor(secs / 60) % 60).padStart(2, "0")}:${String(secs % 60).padStart(2, "0")}`;
    timerButton.textContent = started ? "Stop and log" : "Start timer";
  };
  timerButton.addEventListener("click", () => {
    const started = Number(localStorage.getItem(key)) || 0;
    if (!started) {
      localStorage.setItem(key, String(Date.now()));
    } else {
      localStorage.removeItem(key);
      const hours = (Date.now() - started) / 3600000;
      if (hours < 0.01) toast("Under a minute: nothing logged.");
      else logTime(hours, today(), timerTask.value, "timer");
    }
    tick();
  });
  const timer = setInterval(tick, 1000);
  onCleanup(() => clearInterval(timer));
  tick();
  const table = (caption, heads, rows) =>
    h("div", { class: "table-wrap" }, h("table", { class: "task-table" }, h("caption", { class: "sr-only" }, caption), h("thead", {}, h("tr", {}, ...heads.map((x) => h("th", { scope: "col" }, x)))), rows));
  const canEdit = project.can("edit_costs");
  load().catch(fail);
  shell(
    project,
    "budget",
    h(
      "div",
      { class: "page-grid" },
      h("section", { class: "card", "aria-labelledby": "budget-title" }, h("h2", { id: "budget-title" }, "Budget"), summary, project.can("edit_budget") ? budgetForm : null),
      project.can("view_costs")
        ? h("section", { class: "card", "aria-labelledby": "time-title" }, h("h2", { id: "time-title" }, "Time"), canEdit ? h("div", { class: "timer" }, clock, h("label", { class: "sr-only", for: "timer-task" }, "Task for the timer"), timerTask, timerButton) : null, canEdit ? timeForm : null, table("Time entries", ["Date", "Who", "Hours", "Task", ""], timeRows))
        : null,
      project.can("view_costs")
        ? h("section", { class: "card", "aria-labelledby": "costs-title" }, h("h2", { id: "costs-title" }, "Costs"), canEdit ? costForm : null, table("Costs", ["Date", "Amount", "Category", "What", ""], costRows))
        : null,
    ),
  );
}
