import { go, on } from "../app.js";
import { colorFor, h, initials, toast } from "../dom.js";
import { shell } from "../shell.js";
import { quickAdd } from "../ui/dialogs.js";

// -- board -------------------------------------------------------------------------------

function card(project, task, editable) {
  const el = h(
    "article",
    {
      class: `task-card priority-${task.priority}`,
      draggable: editable,
      dataset: { id: task.id },
      tabindex: 0,
    },
    h("h3", {}, task.title),
    h(
      "div",
      { class: "meta" },
      task.due ? h("span", { class: "due" }, task.due) : null,
      ...(task.labels || []).map((l) => h("span", { class: "label" }, l)),
      ...(task.assignees || []).map((a) =>
        h("span", { class: "avatar small", style: { background: colorFor(a) }, title: a }, initials(a)),
      ),
    ),
  );
  el.addEventListener("click", () => go(`#/p/${project.projectId}/task/${task.id}`));
  el.addEventListener("keydown", (e) => e.key === "Enter" && el.click());
  if (editable) {
    el.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData("text/plain", task.id);
      el.classList.add("dragging");
    });
    el.addEventListener("dragend", () => el.classList.remove("dragging"));
    touchDrag(project, el, task);
  }
  return el;
}

// Touch: a horizontal swipe moves the card to the next (right) or previous (left) column;
// a long press then drag drops it where the finger is lifted.
function touchDrag(project, el, task) {
  let start = null;
  let pressTimer = null;
  let dragging = false;
  el.addEventListener(
    "touchstart",
    (e) => {
      const t = e.touches[0];
      start = { x: t.clientX, y: t.clientY, time: Date.now() };
      pressTimer = setTimeout(() => {
        dragging = true;
        el.classList.add("dragging");
      }, 450);
    },
    { passive: true },
  );
  el.addEventListener(
    "touchmove",
    (e) => {
      const t = e.touches[0];
      if (!start) return;
      if (Math.abs(t.clientX - start.x) > 10 || Math.abs(t.clientY - start.y) > 10) clearTimeout(pressTimer);
      if (dragging) {
        e.preventDefault();
        el.style.transform = `translate(${t.clientX - start.x}px, ${t.clientY - start.y}px)`;
      } else if (Math.abs(t.clientX - start.x) > Math.abs(t.clientY - start.y)) {
        el.style.transform = `translateX(${(t.clientX - start.x) / 2}px)`;
      }
    },
    { passive: false },
  );
  el.addEventListener("touchend", (e) => {
    clearTimeout(pressTimer);
    const t = e.changedTouches[0];
    el.style.transform = "";
    el.classList.remove("dragging");
    if (!start) return;
    const dx = t.clientX - start.x;
    const dy = t.clientY - start.y;
    const columns = project.columns;
    const index = columns.indexOf(task.status);
    if (dragging) {
      dragging = false;
      const target = document.elementFromPoint(t.clientX, t.clientY)?.closest("[data-column]");
      if (target) project.moveTask(task.id, target.dataset.column);
      e.preventDefault();
    } else if (Math.abs(dx) > 60 && Math.abs(dx) > 2 * Math.abs(dy)) {
      e.preventDefault(); // a swipe, not a tap
      const next = columns[index + (dx > 0 ? 1 : -1)];
      if (next) {
        project.moveTask(task.id, next);
        toast(`Moved to ${next.replace("_", " ")}`);
      }
    }
    start = null;
  });
}

export function boardView(project) {
  const editable = project.can("edit_all_tasks") || project.can("edit_own_tasks");
  const board = h("div", { class: "board" });
  const draw = () => {
    board.replaceChildren(
      ...project.columns.map((status) => {
        const tasks = project.columnTasks(status);
        const column = h(
          "section",
          { class: "column", dataset: { column: status } },
          h(
            "header",
            {},
            h("h2", {}, status.replace("_", " ")),
            h("span", { class: "count" }, tasks.length),
            project.can("create_tasks")
              ? h("button", { class: "icon-button", "aria-label": `Add to ${status}`, onclick: () => quickAdd(project, status) }, "+")
              : null,
          ),
          h("div", { class: "cards" }, ...tasks.map((t) => card(project, t, editable))),
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
          if (id) project.moveTask(id, status, before && before.dataset.id !== id ? before.dataset.id : null);
        });
        return column;
      }),
    );
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
  draw();
  pullToRefresh(board, project);
  shell(project, "board", board);
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
    if (startY !== null && e.changedTouches[0].clientY - startY > 120) {
      project.provider.resync();
      project.chatProvider.resync();
      toast("Refreshing…");
    }
    startY = null;
  });
}
