import { go, on } from "../app.js";
import { h, fill, toast } from "../dom.js";
import { canEditTask, shell } from "../shell.js";
import { addDays, dayRange, daysBetween, plural, shortDate, today } from "../ui/format.js";

// -- timeline ------------------------------------------------------------------------------------
//
// A row per dated task: its bar spans start to due, whole days on one scale shared by the
// date axis, the milestone markers (a diamond and a dashed line at each milestone's date,
// their labels stacked in lanes so none overlaps another) and the "Today" line. Someone who
// may edit a task drags its bar to move it (start and due by the same whole number of days)
// or its right end to change the due date; from the keyboard, ← → move the focused bar a
// day and Shift+← → move its due date. Each change is one transaction, shown in a toast with
// Undo. The rows scroll under the axis, so the milestones stay in view.

const NAME = 0.35; // the share of a row the task's name takes (.timeline .row's grid)

export function timelineView(project) {
  const box = h("div", { class: "timeline" });
  let dragging = false; // no redraw under a drag: the change from elsewhere waits for the drop
  let stale = false;
  let undo = null; // the toast of the current run of keyboard moves: { id, start, due, el }
  const draw = () => {
    if (dragging) return void (stale = true);
    stale = false;
    const focused = box.contains(document.activeElement) ? document.activeElement.dataset.task : null;
    const scrolled = box.querySelector(".timeline-rows")?.scrollTop || 0;
    const tasks = project.tasks().filter((t) => t.start || t.due);
    const milestones = project.milestones().filter((m) => m.due);
    const dates = [...tasks.flatMap((t) => [t.start, t.due].filter(Boolean)), ...milestones.map((m) => m.due)].sort();
    if (!dates.length) {
      fill(box, h("p", { class: "empty" }, "No task has a start or due date yet."));
      return;
    }
    const first = dates[0];
    const days = daysBetween(first, dates.at(-1)) + 1;
    const at = (iso) => daysBetween(first, iso) / days; // a day's start, as a share of the track
    const pct = (x) => `${(x * 100).toFixed(3)}%`;
    // something positioned across every row at a day: x is a share of the track
    const across = (x) => `calc(8px + (100% - 16px) * ${(NAME + (1 - NAME) * x).toFixed(5)})`;
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const now = today();
    const todayAt = at(now);
    const width = (box.clientWidth || window.innerWidth) * (1 - NAME);
    const rows = h(
      "div",
      { class: "timeline-rows" },
      todayAt >= 0 && todayAt <= 1
        ? h("div", { class: "today-line", style: { left: across(todayAt) }, title: "Today" }, h("span", {}, "Today"))
        : null,
      ...milestones.map((m) => h("div", { class: "milestone-line", style: { left: across(at(m.due) + 0.5 / days) }, "aria-hidden": "true" })),
      ...tasks
        .sort((a, b) => (a.start || a.due).localeCompare(b.start || b.due) || String(a.title).localeCompare(String(b.title)))
        .map((t) => {
          const start = t.start || t.due;
          const end = t.due || t.start;
          const editable = canEditTask(project, t);
          const deps = (t.depends_on || []).map((d) => byId.get(d)?.title).filter(Boolean);
          const bar = h(
            "button",
            {
              type: "button",
              class: `bar status-${t.status}${editable ? " movable" : ""}`,
              dataset: { task: t.id, after: (t.depends_on || []).filter((d) => byId.has(d)).join(" ") },
              style: { left: pct(at(start)), width: pct(Math.max(daysBetween(start, end) + 1, 1) / days) },
              "aria-label": `${t.key ? `${t.key} ` : ""}${t.title}: ${dayRange(start, end)}`,
              "aria-describedby": editable ? "timeline-help" : "timeline-help-open",
              onclick: () => go(`#/p/${project.projectId}/task/${t.id}`),
            },
            editable && t.due ? h("span", { class: "handle", "aria-hidden": "true" }) : null,
          );
          if (editable) {
            bar.addEventListener("keydown", (e) => keyMove(e, t));
            bar.addEventListener("pointerdown", (e) => pointerMove(e, bar, t, days));
          }
          return h(
            "div",
            { class: "row", dataset: { row: t.id } },
            h(
              "a",
              { class: "name", href: `#/p/${project.projectId}/task/${t.id}`, tabindex: -1 },
              t.key ? h("span", { class: "task-key" }, t.key, " ") : null,
              t.title,
              deps.length ? h("small", {}, ` after ${deps.join(", ")}`) : null,
            ),
            h("span", { class: "track" }, bar),
          );
        }),
    );
    const marks = h(
      "div",
      { class: "lane milestones" },
      h("span", {}),
      h(
        "span",
        { class: "lane-track", role: "list", "aria-label": "Milestones" },
        ...milestones.map((m) =>
          h(
            "span",
            { class: `milestone${m.done ? " done" : ""}`, role: "listitem", dataset: { milestone: m.id, due: m.due }, style: { left: pct(at(m.due) + 0.5 / days) } },
            h("span", { class: "diamond", "aria-hidden": "true" }, "◆"),
            h("span", { class: "label" }, m.name, h("span", { class: "sr-only" }, `, ${shortDate(m.due)}`)),
          ),
        ),
      ),
    );
    fill(
      box,
      h("div", { class: "lane axis", "aria-hidden": "true" }, h("span", {}), h("span", { class: "lane-track" }, ...ticks(first, days, width).map((d) => h("span", { class: `tick${at(d) > 0.8 ? " end" : ""}`, style: { left: pct(at(d)) } }, shortDate(d))))),
      milestones.length ? marks : null,
      rows,
    );
    rows.scrollTop = scrolled;
    rows.addEventListener("scroll", () => requestAnimationFrame(drawDependencies), { passive: true });
    requestAnimationFrame(() => {
      rows.style.setProperty("--rows-h", `${rows.scrollHeight}px`);
      placeLabels(box);
      drawDependencies();
    });
    if (focused) box.querySelector(`.bar[data-task="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
  };

  // one change of dates, with Undo (a run of arrow presses on one bar is one toast, one Undo)
  const reschedule = (t, start, due, keyboard = false) => {
    const before = { start: t.start || null, due: t.due || null };
    if (start === before.start && due === before.due) return;
    const run = keyboard && undo?.keyboard && undo.id === t.id && undo.el.isConnected ? undo : { id: t.id, keyboard, ...before };
    undo?.el.remove();
    project.setFields(t.id, { start, due }, "reschedule");
    const el = toast(`“${t.title}”: ${dayRange(start || due, due || start)}`, "info", {
      label: "Undo",
      run: () => {
        undo = null;
        project.setFields(t.id, { start: run.start, due: run.due }, "undo reschedule");
      },
    });
    undo = { ...run, el };
  };

  const keyMove = (e, t) => {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    e.preventDefault();
    const step = e.key === "ArrowRight" ? 1 : -1;
    const now = project.task(t.id);
    if (!now) return;
    if (e.shiftKey) {
      // the due date, never before the start
      if (!now.due) return;
      const due = addDays(now.due, step);
      if (now.start && due < now.start) return;
      reschedule(now, now.start || null, due, true);
    } else {
      reschedule(now, now.start ? addDays(now.start, step) : null, now.due ? addDays(now.due, step) : null, true);
    }
  };

  // mouse, pen or finger: drag the bar to move it, its right end to change the due date;
  // moved by whole days, shown while dragging, written once on release
  const pointerMove = (e, bar, t, days) => {
    if (e.button !== 0) return;
    const resize = e.target.classList.contains("handle");
    const track = bar.parentElement.getBoundingClientRect();
    const perDay = track.width / days;
    const x0 = e.clientX;
    let shift = 0;
    let moved = false;
    bar.setPointerCapture(e.pointerId);
    const move = (ev) => {
      const dx = ev.clientX - x0;
      if (!moved && Math.abs(dx) < 4) return;
      if (!moved) {
        moved = true;
        dragging = true;
        bar.classList.add("dragging");
      }
      shift = Math.round(dx / perDay);
      if (resize) {
        const length = daysBetween(t.start || t.due, t.due) + 1;
        shift = Math.max(shift, 1 - length); // at least one day long
        bar.style.width = `${((length + shift) * perDay).toFixed(1)}px`;
      } else {
        bar.style.transform = `translateX(${(shift * perDay).toFixed(1)}px)`;
      }
      bar.dataset.shift = shift;
    };
    const up = () => {
      bar.removeEventListener("pointermove", move);
      bar.removeEventListener("pointerup", up);
      bar.removeEventListener("pointercancel", cancel);
      if (!moved) return; // a click: it opens the task
      bar.addEventListener("click", (ev) => ev.stopImmediatePropagation(), { capture: true, once: true });
      dragging = false;
      if (shift && resize) reschedule(t, t.start || null, addDays(t.due, shift));
      else if (shift) reschedule(t, t.start ? addDays(t.start, shift) : null, t.due ? addDays(t.due, shift) : null);
      else draw();
      if (stale) draw();
    };
    const cancel = () => {
      moved = false;
      dragging = false;
      up();
      draw();
    };
    bar.addEventListener("pointermove", move);
    bar.addEventListener("pointerup", up);
    bar.addEventListener("pointercancel", cancel);
  };

  // dependencies: an elbow line from the end of each prerequisite's bar to the start of the
  // task that waits for it (in the rows' own coordinates: they scroll)
  const drawDependencies = () => {
    const rows = box.querySelector(".timeline-rows");
    if (!rows) return;
    rows.querySelector("svg.deps")?.remove();
    const origin = rows.getBoundingClientRect();
    const dx = -origin.left;
    const dy = rows.scrollTop - origin.top;
    const bars = new Map([...rows.querySelectorAll(".bar")].map((b) => [b.dataset.task, b.getBoundingClientRect()]));
    const paths = [];
    for (const bar of rows.querySelectorAll(".bar[data-after]")) {
      const to = bars.get(bar.dataset.task);
      for (const dep of bar.dataset.after.split(" ").filter(Boolean)) {
        const from = bars.get(dep);
        if (!from || !to) continue;
        const x1 = from.right + dx;
        const y1 = from.top + from.height / 2 + dy;
        const x2 = to.left + dx;
        const y2 = to.top + to.height / 2 + dy;
        const mid = Math.max(x1 + 6, Math.min(x2 - 6, (x1 + x2) / 2));
        paths.push(`M${x1},${y1} H${mid} V${y2} H${x2}`);
      }
    }
    if (!paths.length) return;
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "deps");
    svg.setAttribute("aria-hidden", "true");
    svg.style.height = `${rows.scrollHeight}px`;
    for (const d of paths) {
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    rows.append(svg);
  };
  on(project, "change", draw);
  let resizing = null;
  on(window, "resize", () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(draw);
  });
  draw();
  shell(
    project,
    "timeline",
    h(
      "div",
      { class: "timeline-page" },
      h("p", { id: "timeline-help", class: "sr-only" }, "Enter opens the task. Left and right arrows move it a day; with Shift they change its due date."),
      h("p", { id: "timeline-help-open", class: "sr-only" }, "Enter opens the task."),
      box,
      milestonePanel(project),
    ),
  );
  requestAnimationFrame(draw); // now that the box has its width: as many date marks as fit
}

// Date marks: whole days, weeks (Mondays) or months (the 1st), as many as fit about 90 px apart.
function ticks(first, days, width) {
  const room = Math.max(2, Math.floor(width / 90));
  const out = [];
  for (const step of [1, 2, 7, 14, 30, 61, 91, 182, 365]) {
    if (days / step > room) continue;
    for (let d = 0; d < days; d++) {
      const iso = addDays(first, d);
      const date = new Date(`${iso}T00:00:00Z`);
      const keep = step < 7 ? d % step === 0 : step < 30 ? date.getUTCDay() === 1 && (step === 7 || Math.floor(d / 7) % 2 === 0) : date.getUTCDate() === 1 && (date.getUTCMonth() % Math.round(step / 30) === 0);
      if (keep) out.push(iso);
    }
    if (out.length) return out;
  }
  return [first];
}

// Milestone labels: each in the first lane (row) where it overlaps no label already placed;
// one near the right end is drawn leftwards from its marker so it stays on screen.
function placeLabels(box) {
  const lane = box.querySelector(".milestones .lane-track");
  if (!lane) return;
  const edge = lane.getBoundingClientRect();
  const lanes = []; // the right end of the last label in each lane
  let height = 22;
  const marks = [...lane.querySelectorAll(".milestone")].sort((a, b) => a.dataset.due.localeCompare(b.dataset.due));
  for (const mark of marks) {
    mark.classList.remove("leftward");
    mark.style.top = "0px";
    let box2 = mark.getBoundingClientRect();
    if (box2.right > edge.right) {
      mark.classList.add("leftward");
      box2 = mark.getBoundingClientRect();
    }
    let n = lanes.findIndex((right) => right + 6 <= box2.left);
    if (n < 0) n = lanes.push(-Infinity) - 1;
    lanes[n] = box2.right;
    mark.style.top = `${n * (box2.height + 2)}px`;
    mark.dataset.lane = n;
    height = box2.height + 2;
  }
  lane.style.height = `${Math.max(1, lanes.length) * height}px`;
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
