// Analytics: the project's metrics (REST /metrics/) as figures and charts: burndown,
// velocity, budget burn, and the portfolio of every project whose metrics you may read.
// Chart.js is loaded here only (import()), never in the start bundle; each chart has a
// text summary for screen readers.
import { api } from "../api.js";
import { onCleanup } from "../app.js";
import { h, toast, fill } from "../dom.js";
import { shell } from "../shell.js";
import { money, shortDate } from "../ui/format.js";

let chartModule = null;
async function loadChart() {
  if (!chartModule) {
    const m = await import("chart.js");
    m.Chart.register(m.LineController, m.BarController, m.LineElement, m.BarElement, m.PointElement, m.LinearScale, m.CategoryScale, m.Tooltip, m.Legend, m.Filler);
    chartModule = m.Chart;
  }
  return chartModule;
}

function chartBox(id, title, summary) {
  const canvas = h("canvas", { id, role: "img", "aria-label": `${title}: ${summary}` });
  return { canvas, el: h("section", { class: "card", "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), h("p", { class: "muted" }, summary), h("div", { class: "chart-box" }, canvas)) };
}

export function analyticsView(project) {
  const page = h("div", { class: "page-grid" }, h("p", {}, "Loading…"));
  const charts = [];
  onCleanup(() => charts.forEach((c) => c.destroy()));
  const draw = async () => {
    const [metrics, portfolio] = await Promise.all([
      api("GET", `/projects/${encodeURIComponent(project.projectId)}/metrics/?days=30`),
      api("GET", "/analytics/portfolio/").catch(() => null),
    ]);
    const t = metrics.tasks;
    const burn = chartBox("burndown", "Burndown", `${t.burndown.at(-1)?.remaining ?? 0} tasks open today, ${t.burndown[0]?.remaining ?? 0} thirty days ago`);
    const velocity = chartBox("velocity", "Velocity", `tasks done per week, last 8 weeks: ${t.velocity.map((v) => v.done).join(", ")}`);
    const b = metrics.budget;
    const budget = b && b.total !== null ? chartBox("budget-burn", "Budget burn", `${money(b.spent, b.currency)} spent of ${money(b.total, b.currency)}`) : null;
    fill(page, 
      h(
        "section",
        { class: "card", "aria-labelledby": "summary-title" },
        h("h2", { id: "summary-title" }, "Summary"),
        h(
          "div",
          { class: "stat-row" },
          h("div", { class: "stat" }, "Tasks", h("strong", {}, t.total)),
          h("div", { class: "stat" }, "Done", h("strong", {}, `${t.done} (${Math.round(t.completion * 100)} %)`)),
          h("div", { class: "stat" }, "Overdue", h("strong", { class: t.overdue ? "overload" : "" }, t.overdue)),
        ),
      ),
      burn.el,
      velocity.el,
      budget ? budget.el : null,
      portfolio && portfolio.projects
        ? h(
            "section",
            { class: "card", "aria-labelledby": "portfolio-title" },
            h("h2", { id: "portfolio-title" }, "Portfolio"),
            h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "task-table" },
                h("thead", {}, h("tr", {}, ...["Project", "Tasks", "Done", "Overdue"].map((x) => h("th", { scope: "col" }, x)))),
                h("tbody", {}, ...portfolio.projects.map((p) => h("tr", {}, h("td", { "data-label": "Project" }, h("a", { href: `#/p/${p.id}/analytics` }, p.name || p.id)), h("td", { "data-label": "Tasks" }, p.total), h("td", { "data-label": "Done" }, p.done), h("td", { "data-label": "Overdue" }, p.overdue)))),
              ),
            ),
          )
        : null,
    );
    const Chart = await loadChart();
    const brand = "#4f46e5";
    const common = { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } } };
    charts.push(new Chart(burn.canvas, { type: "line", data: { labels: t.burndown.map((d) => shortDate(d.date)), datasets: [{ label: "Open tasks", data: t.burndown.map((d) => d.remaining), borderColor: brand, backgroundColor: "#4f46e522", fill: true, pointRadius: 0 }] }, options: common }));
    charts.push(new Chart(velocity.canvas, { type: "bar", data: { labels: t.velocity.map((v) => v.week), datasets: [{ label: "Done", data: t.velocity.map((v) => v.done), backgroundColor: brand }] }, options: common }));
    if (budget) {
      charts.push(
        new Chart(budget.canvas, {
          type: "line",
          data: {
            labels: b.burn.map((d) => shortDate(d.date)),
            datasets: [
              { label: "Spent", data: b.burn.map((d) => d.spent), borderColor: "#c2253c" },
              { label: "Planned", data: b.burn.map((d) => d.planned), borderColor: "#6b6892", borderDash: [6, 4] },
            ],
          },
          options: { ...common, plugins: { legend: { display: true } } },
        }),
      );
    }
    page.dataset.ready = "1";
  };
  draw().catch((e) => {
    fill(page, h("p", { class: "error" }, `Analytics are not available: ${e.message}`));
    toast(e.message, "error");
  });
  shell(project, "analytics", page);
}
