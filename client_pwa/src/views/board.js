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
    run: () => {
      state.focus = id; // the card is shown back where it was (the toast's button goes)
      project.moveTask(id, before.status, nextId);
    },
  });
}

function cardName(task) {
  const parts = [task.key ? `${task.key} ${task.title}` : task.title, statusLabel(task.status), `${task.priority || "medium"} priority`];
  if (task.due) parts.push(`due ${shortDate(task.due)}`);
  if ((task.assignees || []).length) parts.push(`assigned to ${task.assignees.join(", ")}`);
  if ((task.labels || []).length) parts.push(`labels ${task.labels.join(", ")}`);
  return parts.join(", ");
}

// A card's look depends on these: an unchanged card keeps its element across redraws
// (and so its focus, and a drag in progress).
function cardKey(task, movable, overdue) {
  return JSON.stringify([task.title, task.key, task.status, task.priority, task.due, task.labels, task.assignees, movable, overdue]);
}

// Clicks, keys and mouse drags are handled once for the whole board (cards come and go as
// long columns scroll); a card carries only its touch drag.
function card(project, task, movable, overdue) {
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
  if (movable) touchDrag(project, el, task);
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

// Long columns are windowed: a column of more than WINDOW_FROM cards gives every card a
// slot of SLOT pixels (the card's fixed height and the gap) and keeps in the DOM only the
// cards in view, OVERSCAN more on each side, and the card that has the focus or is being
// dragged (wherever it is). A 10,000-task board holds a few dozen cards.
const WINDOW_FROM = 40;
const SLOT = 100;
const OVERSCAN = 6;

// Put `wanted` (elements, in order) into `parent`, moving as few as possible: a card that
// stays where it is keeps its focus.
function reconcile(parent, wanted) {
  const keep = new Set(wanted);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  wanted.forEach((el, i) => {
    if (parent.children[i] !== el) parent.insertBefore(el, parent.children[i] || null);
  });
}

function boardColumn(project, status, index, board) {
  const headingId = `column-${index}`; // a column's name may hold spaces
  const count = h("span", { class: "count" });
  const track = h("div", { class: "card-track" });
  const list = h("div", { class: "cards" });
  const section = h(
    "section",
    { class: "column", dataset: { column: status }, "aria-labelledby": headingId },
    h(
      "header",
      {},
      h("h2", { id: headingId }, statusLabel(status)),
      count,
      project.can("create_tasks")
        ? h("button", { class: "icon-button", "aria-label": `Add a task to ${statusLabel(status)}`, onclick: () => quickAdd(project, status) }, "+")
        : null,
    ),
    list,
  );
  const column = { status, section, list, tasks: [], windowed: false };
  let shown = new Map(); // id -> { key, el } of the cards in the DOM
  column.render = () => {
    const { tasks } = column;
    const done = board.done;
    const wanted = new Set();
    if (column.windowed) {
      const height = list.clientHeight || window.innerHeight;
      const first = Math.max(0, Math.floor(list.scrollTop / SLOT) - OVERSCAN);
      const last = Math.min(tasks.length - 1, Math.ceil((list.scrollTop + height) / SLOT) + OVERSCAN);
      for (let i = first; i <= last; i++) wanted.add(i);
      // the focused or dragged card stays, wherever it is
      const dragged = document.querySelector(".task-card.dragging")?.dataset.id;
      for (const id of [dragged, document.activeElement?.dataset?.id]) {
        const at = id && shown.has(id) ? tasks.findIndex((t) => t.id === id) : -1;
        if (at >= 0) wanted.add(at);
      }
    } else {
      tasks.forEach((_, i) => wanted.add(i));
    }
    const next = new Map();
    let refocus = null;
    const els = [...wanted]
      .sort((a, b) => a - b)
      .map((i) => {
        const task = tasks[i];
        const movable = canEditTask(project, task);
        const overdue = !!task.due && task.due < board.now && task.status !== done;
        const key = cardKey(task, movable, overdue);
        let entry = shown.get(task.id);
        if (!entry || entry.key !== key) {
          if (entry?.el === document.activeElement) refocus = task.id; // changed from elsewhere
          entry = { key, el: card(project, task, movable, overdue) };
        }
        next.set(task.id, entry);
        const el = entry.el;
        el.setAttribute("aria-posinset", i + 1);
        el.setAttribute("aria-setsize", tasks.length);
        el.style.top = column.windowed ? `${i * SLOT}px` : "";
        return el;
      });
    shown = next;
    reconcile(track, els);
    if (refocus) shown.get(refocus)?.el.focus({ preventScroll: true });
  };
  // a list of tasks (a redraw): the count, windowed or not, the cards
  column.set = (tasks) => {
    column.tasks = tasks;
    count.textContent = tasks.length;
    count.setAttribute("aria-label", `${tasks.length} tasks`);
    // a feed of articles (an empty feed is no feed: axe requires an article in it)
    if (tasks.length) {
      list.setAttribute("role", "feed");
      list.setAttribute("aria-labelledby", headingId);
    } else {
      list.removeAttribute("role");
      list.removeAttribute("aria-labelledby");
    }
    column.windowed = tasks.length > WINDOW_FROM;
    list.classList.toggle("windowed", column.windowed);
    track.style.height = column.windowed ? `${tasks.length * SLOT}px` : "";
    if (!track.parentNode) list.append(track);
    column.render();
  };
  // scroll a task into view (drawing it first when the column is windowed); its element
  column.reveal = (id, focus = true) => {
    const i = column.tasks.findIndex((t) => t.id === id);
    if (i < 0) return null;
    if (column.windowed) {
      const height = list.clientHeight || window.innerHeight;
      if (i * SLOT < list.scrollTop) list.scrollTop = i * SLOT;
      else if ((i + 1) * SLOT > list.scrollTop + height) list.scrollTop = (i + 1) * SLOT - height;
      column.render();
    }
    const el = shown.get(id)?.el;
    if (el && focus) {
      el.focus({ preventScroll: column.windowed });
      if (!column.windowed) el.scrollIntoView({ block: "nearest", inline: "nearest" });
      else section.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    return el;
  };
  let pending = false;
  list.addEventListener(
    "scroll",
    () => {
      if (!column.windowed || pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        column.render();
      });
    },
    { passive: true },
  );
  // mouse drag and drop: into this column, before the card under the pointer (in a windowed
  // column, the slot under the pointer: the upper half of a card is before it)
  section.addEventListener("dragover", (e) => {
    e.preventDefault();
    section.classList.add("over");
  });
  section.addEventListener("dragleave", () => section.classList.remove("over"));
  section.addEventListener("drop", (e) => {
    e.preventDefault();
    section.classList.remove("over");
    const id = e.dataTransfer.getData("text/plain");
    if (!id) return;
    let before = null;
    if (column.windowed && list.contains(e.target)) {
      const slot = Math.round((e.clientY - track.getBoundingClientRect().top) / SLOT);
      before = column.tasks[Math.max(0, slot)]?.id || null;
    } else {
      before = e.target.closest("[data-id]")?.dataset.id || null;
    }
    if (before === id) return; // dropped where it is
    board.reveal = id; // shown where it landed
    moveWithUndo(project, id, status, before);
  });
  return column;
}

export function boardView(project) {
  const el = h("div", { class: "board", role: "region", "aria-label": "Board" });
  const board = { now: today(), done: null, columns: new Map(), reveal: null };
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const column = board.columns.get(entry.target.closest("[data-column]")?.dataset.column);
      if (column?.windowed) column.render();
    }
  });
  const columnOf = (id) => [...board.columns.values()].find((c) => c.tasks.some((t) => t.id === id));
  const draw = () => {
    const tasks = project.board();
    board.now = today();
    board.done = project.columns.at(-1);
    const statuses = [...tasks.keys()];
    if (statuses.join("\u0000") !== [...board.columns.keys()].join("\u0000")) {
      const focused = el.contains(document.activeElement) ? document.activeElement.dataset.id : null;
      resized.disconnect();
      board.columns = new Map(statuses.map((s, i) => [s, boardColumn(project, s, i, board)]));
      fill(el, ...[...board.columns.values()].map((c) => c.section));
      for (const c of board.columns.values()) resized.observe(c.list);
      if (focused && !state.focus) state.focus = focused;
    }
    for (const [status, column] of board.columns) column.set(tasks.get(status));
    // a card just moved or added here is shown (and focused, after a keyboard move or a
    // quick add)
    const target = state.focus || board.reveal;
    if (target) columnOf(target)?.reveal(target, target === state.focus);
    state.focus = null;
    board.reveal = null;
  };
  // keys on a card: Enter opens it; arrows go to the next card (↑ ↓ in its column, Home and
  // End to its ends, ← → to the neighbouring column), drawing it first in a windowed column;
  // Alt+arrows move it.
  el.addEventListener("keydown", (e) => {
    const cardEl = e.target.closest?.(".task-card");
    if (!cardEl || e.target !== cardEl) return;
    const id = cardEl.dataset.id;
    const column = board.columns.get(cardEl.closest("[data-column]").dataset.column);
    const index = column.tasks.findIndex((t) => t.id === id);
    const statuses = [...board.columns.keys()];
    if (e.key === "Enter") return go(`#/p/${project.projectId}/task/${id}`);
    if (!e.altKey && !e.ctrlKey && !e.metaKey) {
      let to = null;
      if (e.key === "ArrowDown") to = [column, index + 1];
      else if (e.key === "ArrowUp") to = [column, index - 1];
      else if (e.key === "Home") to = [column, 0];
      else if (e.key === "End") to = [column, column.tasks.length - 1];
      else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        const step = e.key === "ArrowRight" ? 1 : -1;
        let n = statuses.indexOf(column.status) + step;
        while (n >= 0 && n < statuses.length && !board.columns.get(statuses[n]).tasks.length) n += step;
        const other = board.columns.get(statuses[n]);
        if (other) to = [other, Math.min(index, other.tasks.length - 1)];
      }
      if (!to) return;
      e.preventDefault();
      const [target, i] = to;
      if (i >= 0 && i < target.tasks.length) target.reveal(target.tasks[i].id);
      return;
    }
    const task = column.tasks[index];
    if (!e.altKey || !task || !canEditTask(project, task)) return;
    let move = null;
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const next = statuses[statuses.indexOf(task.status) + (e.key === "ArrowRight" ? 1 : -1)];
      if (next) move = [next, null];
    } else if (e.key === "ArrowUp" && index > 0) move = [task.status, column.tasks[index - 1].id];
    else if (e.key === "ArrowDown" && index < column.tasks.length - 1) move = [task.status, column.tasks[index + 2]?.id || null];
    if (!move) return;
    e.preventDefault();
    state.focus = id; // the redrawn card keeps the focus
    moveWithUndo(project, id, ...move);
  });
  el.addEventListener("click", (e) => {
    const cardEl = e.target.closest?.(".task-card");
    if (cardEl) go(`#/p/${project.projectId}/task/${cardEl.dataset.id}`);
  });
  // a card being dragged (class "dragging", by mouse or touch) stays in the DOM
  el.addEventListener("dragstart", (e) => {
    const cardEl = e.target.closest?.(".task-card");
    if (!cardEl) return;
    e.dataTransfer.setData("text/plain", cardEl.dataset.id);
    cardEl.classList.add("dragging");
  });
  el.addEventListener("dragend", (e) => e.target.classList?.remove("dragging"));
  let scheduled = false;
  on(project, "change", () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const scroll = el.scrollLeft;
      draw();
      el.scrollLeft = scroll;
    });
  });
  // a task just added shows where it landed
  on(project, "created", (e) => (state.focus = e.detail.id));
  draw();
  pullToRefresh(el, project);
  shell(
    project,
    "board",
    h(
      "div",
      { class: "board-page" },
      h("h2", { class: "sr-only" }, "Board"),
      h("p", { id: "board-help", class: "sr-only" }, "Enter opens the task. The arrow keys go to the next card; Alt and the arrow keys move this one."),
      h("p", { id: "board-help-open", class: "sr-only" }, "Enter opens the task. The arrow keys go to the next card."),
      el,
    ),
  );
  // the columns know their height now: draw what is in view
  for (const column of board.columns.values()) if (column.windowed) column.render();
  if (state.focus) draw();
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
