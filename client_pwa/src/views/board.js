// The board: a column per status. Cards open on click or Enter; they move by mouse drag,
// from the keyboard (Alt+arrows), or on a phone by a long press then drag (the board scrolls
// when the finger nears its edge). A plain horizontal swipe scrolls between columns. Every
// move can be undone from its toast.
import { go, on, state } from "../app.js";
import { colorFor, h, initials, toast, fill } from "../dom.js";
import { canEditTask, shell } from "../shell.js";
import { quickAdd } from "../ui/dialogs.js";
import { shortDate, statusLabel, today } from "../ui/format.js";

// Move with an undo: the toast's button puts the card back where it was.
export function moveWithUndo(project, id, status, beforeId = null) {
  const before = project.task(id);
  if (!before) return;
  const place = project.columnTasks(before.status);
  const index = place.findIndex((t) => t.id === id);
  const nextId = index >= 0 && index + 1 < place.length ? place[index + 1].id : null;
  project.moveTask(id, status, beforeId);
  if (before.status === status && !beforeId && index === place.length - 1) return;
  toast(`Moved “${before.title}” to ${statusLabel(status)}`, "info", {
    label: "Undo",
    run: () => project.moveTask(id, before.status, nextId),
  });
}

function cardName(task) {
  const parts = [task.key ? `${task.key} ${task.title}` : task.title, statusLabel(task.status), `${task.priority || "medium"} priority`];
  if (task.due) parts.push(`due ${shortDate(task.due)}`);
  if ((task.assignees || []).length) parts.push(`assigned to ${task.assignees.join(", ")}`);
  if ((task.labels || []).length) parts.push(`labels ${task.labels.join(", ")}`);
  return parts.join(", ");
}

function card(project, task, movable, now, done) {
  const overdue = task.due && task.due < now && task.status !== done;
  const el = h(
    "article",
    {
      class: `task-card priority-${task.priority}${overdue ? " overdue" : ""}${movable ? "" : " locked"}`,
      draggable: movable,
      dataset: { id: task.id },
      tabindex: 0,
      "aria-label": cardName(task),
      "aria-describedby": movable ? "board-help" : "board-help-open",
    },
    task.key ? h("span", { class: "task-key", "data-testid": "card-key" }, task.key) : null,
    h("h3", {}, task.title),
    h(
      "div",
      { class: "meta", "aria-hidden": "true" },
      task.due ? h("span", { class: "due" }, overdue ? `Overdue · ${shortDate(task.due)}` : shortDate(task.due)) : null,
      ...(task.labels || []).map((l) => h("span", { class: "label" }, l)),
      ...(task.assignees || []).map((a) =>
        h("span", { class: "avatar small", style: { background: colorFor(a) }, title: a }, initials(a)),
      ),
    ),
  );
  el.addEventListener("click", () => go(`#/p/${project.projectId}/task/${task.id}`));
  el.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target === el) return el.click();
    if (!e.altKey || !movable) return;
    const columns = project.columns;
    const column = project.columnTasks(task.status);
    const index = column.findIndex((t) => t.id === task.id);
    let move = null;
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const next = columns[columns.indexOf(task.status) + (e.key === "ArrowRight" ? 1 : -1)];
      if (next) move = [next, null];
    } else if (e.key === "ArrowUp" && index > 0) move = [task.status, column[index - 1].id];
    else if (e.key === "ArrowDown" && index < column.length - 1) move = [task.status, column[index + 2]?.id || null];
    if (!move) return;
    e.preventDefault();
    state.focus = task.id; // the redrawn card keeps the focus
    moveWithUndo(project, task.id, ...move);
  });
  if (movable) {
    el.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData("text/plain", task.id);
      el.classList.add("dragging");
    });
    el.addEventListener("dragend", () => el.classList.remove("dragging"));
    touchDrag(project, el, task);
  }
  return el;
}

// Touch: a long press (450 ms without moving) picks the card up; dragging it then moves it
// under the finger, the board scrolls when the finger is near its left or right edge, and
// lifting drops it in the column (before the card) under the finger. Anything else (a swipe,
// a scroll) is left to the browser: horizontal swipes scroll between columns.
function touchDrag(project, el, task) {
  let start = null;
  let pressTimer = null;
  let dragging = false;
  let last = null;
  let scroller = null;
  const board = () => el.closest(".board");
  const stop = () => {
    clearTimeout(pressTimer);
    cancelAnimationFrame(scroller);
    scroller = null;
    el.style.transform = "";
    el.classList.remove("dragging");
    document.body.classList.remove("card-dragging");
  };
  const autoScroll = () => {
    const b = board();
    if (!dragging || !b || !last) return;
    const box = b.getBoundingClientRect();
    const edge = 48;
    const dx = last.x < box.left + edge ? -12 : last.x > box.right - edge ? 12 : 0;
    if (dx) {
      const before = b.scrollLeft;
      b.scrollLeft += dx;
      start.x -= b.scrollLeft - before; // the card stays under the finger
      el.style.transform = `translate(${last.x - start.x}px, ${last.y - start.y}px)`;
    }
    scroller = requestAnimationFrame(autoScroll);
  };
  el.addEventListener(
    "touchstart",
    (e) => {
      const t = e.touches[0];
      start = { x: t.clientX, y: t.clientY };
      last = { x: t.clientX, y: t.clientY };
      pressTimer = setTimeout(() => {
        dragging = true;
        el.classList.add("dragging");
        document.body.classList.add("card-dragging");
        navigator.vibrate?.(20);
        scroller = requestAnimationFrame(autoScroll);
      }, 450);
    },
    { passive: true },
  );
  el.addEventListener(
    "touchmove",
    (e) => {
      if (!start) return;
      const t = e.touches[0];
      last = { x: t.clientX, y: t.clientY };
      if (!dragging) {
        if (Math.abs(t.clientX - start.x) > 10 || Math.abs(t.clientY - start.y) > 10) clearTimeout(pressTimer);
        return; // the browser scrolls
      }
      e.preventDefault();
      el.style.transform = `translate(${t.clientX - start.x}px, ${t.clientY - start.y}px)`;
    },
    { passive: false },
  );
  el.addEventListener("touchend", (e) => {
    const wasDragging = dragging;
    dragging = false;
    stop();
    start = null;
    if (!wasDragging) return;
    e.preventDefault(); // no click after a drop
    e.stopPropagation(); // nor a pull-to-refresh
    const t = e.changedTouches[0];
    const under = document.elementFromPoint(t.clientX, t.clientY);
    // the column under the finger, or the nearest one (between columns, at the edge)
    let column = under?.closest("[data-column]");
    if (!column) {
      const distance = (c) => {
        const box = c.getBoundingClientRect();
        return t.clientX < box.left ? box.left - t.clientX : t.clientX > box.right ? t.clientX - box.right : 0;
      };
      column = [...document.querySelectorAll("[data-column]")].sort((a, b) => distance(a) - distance(b))[0];
    }
    if (!column) return;
    const before = under?.closest("[data-id]");
    moveWithUndo(project, task.id, column.dataset.column, before && before.dataset.id !== task.id ? before.dataset.id : null);
  });
  el.addEventListener("touchcancel", () => {
    dragging = false;
    start = null;
    stop();
  });
  el.addEventListener("contextmenu", (e) => e.preventDefault()); // the long press is ours
}

export function boardView(project) {
  const board = h("div", { class: "board", role: "region", "aria-label": "Board" });
  const draw = () => {
    // a redraw replaces every card: the card that had the focus (a keyboard user's place)
    // gets it back, whatever change from elsewhere caused the redraw
    const active = board.contains(document.activeElement) ? document.activeElement : null;
    const kept = active && active.matches("[data-id]") ? active.dataset.id : null;
    // and each long column stays scrolled where it was
    const scrolled = new Map(
      [...board.querySelectorAll(".column")].map((c) => [c.dataset.column, c.querySelector(".cards")?.scrollTop || 0]),
    );
    const now = today();
    const done = project.columns.at(-1);
    fill(board, 
      ...project.columns.map((status, index) => {
        const tasks = project.columnTasks(status);
        const headingId = `column-${index}`; // a column's name may hold spaces
        const column = h(
          "section",
          { class: "column", dataset: { column: status }, "aria-labelledby": headingId },
          h(
            "header",
            {},
            h("h2", { id: headingId }, statusLabel(status)),
            h("span", { class: "count", "aria-label": `${tasks.length} tasks` }, tasks.length),
            project.can("create_tasks")
              ? h(
                  "button",
                  { class: "icon-button", "aria-label": `Add a task to ${statusLabel(status)}`, onclick: () => quickAdd(project, status) },
                  "+",
                )
              : null,
          ),
          h("div", { class: "cards" }, ...tasks.map((t) => card(project, t, canEditTask(project, t), now, done))),
        );
        column.addEventListener("dragover", (e) => {
          e.preventDefault();
          column.classList.add("over");
        });
        column.addEventListener("dragleave", () => column.classList.remove("over"));
        column.addEventListener("drop", (e) => {
          e.preventDefault();
          column.classList.remove("over");
          const id = e.dataTransfer.getData("text/plain");
          const before = e.target.closest("[data-id]");
          if (id) moveWithUndo(project, id, status, before && before.dataset.id !== id ? before.dataset.id : null);
        });
        return column;
      }),
    );
    for (const column of board.querySelectorAll(".column")) {
      const top = scrolled.get(column.dataset.column);
      if (top) column.querySelector(".cards").scrollTop = top;
    }
    if (state.focus) {
      const el = board.querySelector(`[data-id="${CSS.escape(state.focus)}"]`);
      state.focus = null;
      if (el) {
        el.focus();
        el.scrollIntoView({ block: "nearest", inline: "nearest" });
      }
    } else if (kept) {
      board.querySelector(`[data-id="${CSS.escape(kept)}"]`)?.focus({ preventScroll: true });
    }
  };
  let scheduled = false;
  on(project, "change", () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const scroll = board.scrollLeft;
      draw();
      board.scrollLeft = scroll;
    });
  });
  // a task just added shows where it landed
  on(project, "created", (e) => (state.focus = e.detail.id));
  draw();
  pullToRefresh(board, project);
  shell(
    project,
    "board",
    h(
      "div",
      { class: "board-page" },
      h("h2", { class: "sr-only" }, "Board"),
      h("p", { id: "board-help", class: "sr-only" }, "Enter opens the task. Alt and the arrow keys move it."),
      h("p", { id: "board-help-open", class: "sr-only" }, "Enter opens the task."),
      board,
    ),
  );
}

function pullToRefresh(el, project) {
  let startY = null;
  el.addEventListener(
    "touchstart",
    (e) => {
      startY = window.scrollY === 0 ? e.touches[0].clientY : null;
    },
    { passive: true },
  );
  el.addEventListener("touchend", (e) => {
    if (document.body.classList.contains("card-dragging")) return;
    if (startY !== null && e.changedTouches[0].clientY - startY > 120) {
      project.provider.resync();
      project.chatProvider.resync();
      toast("Refreshing…");
    }
    startY = null;
  });
}
