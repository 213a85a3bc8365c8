// A task: its fields (pickers for people and labels, dates kept in order), its text edited
// live with others, its subtasks and its comments (chat messages about the task).
import { go, on, onCleanup } from "../app.js";
import { attachmentsList } from "../attachments.js";
import { bindText, colorFor, h, initials, fill } from "../dom.js";
import { canEditTask, shell } from "../shell.js";
import { listNames, statusLabel, timeAgo } from "../ui/format.js";
import { dateRange, labelOptions, memberOptions, multiPicker } from "../ui/pickers.js";

export function taskView(project, taskId) {
  const board = `#/p/${project.projectId}/board`;
  const task = project.task(taskId);
  if (!task) {
    shell(
      project,
      "board",
      h("section", { class: "not-found card", "data-testid": "not-found" }, h("h2", {}, "Task not found"), h("p", {}, "This task no longer exists."), h("a", { href: board }, "Go to the board")),
      { back: { href: board, label: "Board" } },
    );
    return;
  }
  const editable = canEditTask(project, task);
  project.setViewing(taskId, false);
  onCleanup(() => project.setViewing(null));
  const title = h("textarea", { class: "title-input", rows: 1, "aria-label": "Title", maxlength: 500 });
  const description = h("textarea", { class: "description", rows: 8, "aria-label": "Description" });
  onCleanup(bindText(title, project.text(taskId, "title"), editable));
  onCleanup(bindText(description, project.text(taskId, "description"), editable));
  // who else is typing in each text, said beside it (their characters arrive live)
  const coEditing = {};
  let shown = true; // a field removed with its view must not announce a blur afterwards
  onCleanup(() => (shown = false));
  for (const [name, field] of [["title", title], ["description", description]]) {
    field.addEventListener("focus", () => shown && project.setViewing(taskId, true, name));
    field.addEventListener("blur", () => shown && project.setViewing(taskId, false));
    coEditing[name] = h("p", { class: "co-editing", "data-testid": `editing-${name}`, role: "status", hidden: true });
  }
  const showEditors = () => {
    for (const [name, field] of [["title", title], ["description", description]]) {
      const names = project.editors(taskId, name);
      const note = coEditing[name];
      const text = names.length ? `${listNames(names)} ${names.length === 1 ? "is" : "are"} editing the ${name}` : "";
      if (note.textContent !== text) note.textContent = text;
      note.hidden = !names.length;
      note.style.color = names.length ? colorFor(names[0]) : "";
      field.classList.toggle("co-edited", names.length > 0);
    }
  };
  on(project, "presence", showEditors);
  showEditors();
  const select = (name, label, options, value) =>
    h(
      "select",
      { name, disabled: !editable, "aria-label": label, onchange: (e) => project.setField(taskId, name, e.target.value) },
      ...options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
    );
  const assignees = multiPicker({
    name: "assignees",
    label: "Assignees",
    options: memberOptions(project),
    selected: task.assignees || [],
    disabled: !project.can("assign_tasks"),
    avatar: true,
    onChange: (values) => project.setField(taskId, "assignees", values),
  });
  const labels = multiPicker({
    name: "labels",
    label: "Labels",
    options: labelOptions(project),
    selected: task.labels || [],
    disabled: !editable,
    create: true,
    onChange: (values) => project.setField(taskId, "labels", values),
  });
  const dates = dateRange({
    start: task.start,
    end: task.due,
    disabled: !editable,
    onChange: (name, value) => project.setField(taskId, name, value),
  });
  const milestoneSelect = () =>
    h(
      "select",
      {
        name: "milestone",
        disabled: !editable,
        onchange: (e) => project.setField(taskId, "milestone", e.target.value || null),
      },
      h("option", { value: "" }, "None"),
      ...project.milestones().map((m) => h("option", { value: m.id, selected: m.id === task.milestone }, m.name)),
    );
  // the key (assigned by the server) and the commits / pull requests that name it
  const keyBadge = h("p", { class: "task-key", "data-testid": "task-key" }, task.key || "");
  const links = h("ul", { class: "task-links", "data-testid": "task-links" });
  const drawLinks = (t) =>
    fill(
      links,
      ...(t.links || []).map((l) =>
        h(
          "li",
          { class: `link link-${l.kind}` },
          h("span", { class: "link-kind" }, (l.kind || "").replace("_", " ")),
          " ",
          /^https?:\/\//i.test(l.url || "")
            ? h("a", { href: l.url, target: "_blank", rel: "noopener noreferrer" }, l.title || l.url)
            : h("span", {}, l.title || l.url || ""),
          l.author ? ` by ${l.author}` : "",
          l.state ? h("span", { class: "link-state" }, l.state) : null,
        ),
      ),
    );
  drawLinks(task);
  const attachments = attachmentsList({ projectId: project.projectId, taskId, editable }); // Drive / Dropbox / OneDrive files
  attachments.draw(task);
  const subtasks = subtaskList(project, taskId, editable);
  const comments = commentList(project, taskId);
  const close = h("a", { href: board, class: "icon-button close", "aria-label": "Close", title: "Close (Esc)" }, "✕");
  on(document, "keydown", (e) => {
    if (e.key !== "Escape" || e.defaultPrevented || document.querySelector("dialog[open]")) return;
    if (e.target.closest?.("input, textarea, select, .picker-panel")) return e.target.blur?.(); // first Esc leaves the field
    go(board);
  });
  const form = h(
    "div",
    { class: "task-detail card" },
    keyBadge,
    h("div", { class: "task-head" }, h("h2", { class: "sr-only" }, "Task"), title, close),
    coEditing.title,
    editable ? null : h("p", { class: "muted view-only-note" }, "View only: you may not edit this task."),
    h(
      "div",
      { class: "fields" },
      h("label", {}, "Status", select("status", "Status", project.columns.map((c) => [c, statusLabel(c)]), task.status)),
      h("label", {}, "Priority", select("priority", "Priority", ["low", "medium", "high", "urgent"].map((p) => [p, statusLabel(p)]), task.priority)),
      h("div", { class: "field" }, h("span", { id: "assignees-label" }, "Assignees"), assignees),
      h("div", { class: "field" }, h("span", { id: "labels-label" }, "Labels"), labels),
      h("label", {}, "Milestone", milestoneSelect()),
      h("div", { class: "field wide-field" }, dates),
    ),
    h("label", { class: "wide" }, "Description", description, coEditing.description),
    links,
    attachments.el,
    subtasks,
    comments,
    project.can("delete_tasks")
      ? h(
          "button",
          {
            class: "danger",
            onclick: () => {
              if (confirm("Delete this task?")) {
                project.deleteTask(taskId);
                go(board);
              }
            },
          },
          "Delete task",
        )
      : null,
  );
  on(project, "change", () => {
    const now = project.task(taskId);
    if (!now) return go(board);
    keyBadge.textContent = now.key || "";
    drawLinks(now);
    attachments.draw(now);
    for (const name of ["status", "priority"]) {
      const el = form.querySelector(`select[name=${name}]`);
      if (el && document.activeElement !== el) el.value = now[name];
    }
    assignees.update(now.assignees || [], memberOptions(project));
    labels.update(now.labels || [], labelOptions(project));
    dates.update(now.start, now.due);
    const milestone = form.querySelector("select[name=milestone]");
    if (milestone && document.activeElement !== milestone) milestone.replaceWith(milestoneSelect());
    subtasks.update();
  });
  on(project, "chat", () => comments.update());
  shell(project, "board", form, { back: { href: board, label: "Board" } });
}

// Subtasks: tasks whose parent is this one, ticked done (the last column) or not.
function subtaskList(project, taskId, editable) {
  const list = h("ul", { class: "subtasks" });
  const done = () => project.columns.at(-1);
  const draw = () => {
    const items = project.tasks().filter((t) => t.parent === taskId).sort((a, b) => (a.created_at || "").localeCompare(b.created_at || ""));
    fill(list, 
      ...items.map((t) =>
        h(
          "li",
          { dataset: { id: t.id } },
          h("input", {
            type: "checkbox",
            checked: t.status === done(),
            disabled: !canEditTask(project, t),
            "aria-label": `${t.title} done`,
            onchange: (e) => project.moveTask(t.id, e.target.checked ? done() : project.columns[0]),
          }),
          h("a", { href: `#/p/${project.projectId}/task/${t.id}`, class: t.status === done() ? "done" : "" }, t.title),
        ),
      ),
    );
    progress.textContent = items.length ? `${items.filter((t) => t.status === done()).length} of ${items.length} done` : "";
  };
  const progress = h("span", { class: "muted" });
  const input = h("input", { name: "subtask", placeholder: "Add a subtask", "aria-label": "New subtask", maxlength: 500, autocomplete: "off" });
  const form = project.can("create_tasks")
    ? h(
        "form",
        {
          class: "inline-add",
          onsubmit: (e) => {
            e.preventDefault();
            const title = input.value.trim();
            if (!title) return;
            const id = project.createTask(title, project.columns[0]);
            project.setField(id, "parent", taskId);
            input.value = "";
          },
        },
        input,
        h("button", { type: "submit" }, "Add"),
      )
    : null;
  draw();
  const section = h("section", { class: "subtask-panel", "aria-labelledby": "subtasks-title" }, h("h3", { id: "subtasks-title" }, "Subtasks ", progress), list, form);
  section.update = draw;
  void editable;
  return section;
}

// Comments: the project chat's messages about this task; posting one writes to the chat.
function commentList(project, taskId) {
  const list = h("ol", { class: "comments" });
  const draw = () => {
    const items = project.messages().filter((m) => m.task === taskId);
    fill(list, 
      ...items.map((m) =>
        h(
          "li",
          {},
          h("span", { class: "avatar small", style: { background: colorFor(m.author) }, "aria-hidden": "true" }, initials(m.author)),
          h("div", {}, h("strong", {}, m.author), " ", timeAgo(h, m.at), h("p", {}, m.text)),
        ),
      ),
    );
    if (!items.length) fill(list, h("li", { class: "muted" }, "No comments yet."));
  };
  const input = h("textarea", { name: "comment", rows: 2, placeholder: "Write a comment", "aria-label": "Comment", maxlength: 10000 });
  const form = h(
    "form",
    {
      class: "comment-form",
      onsubmit: (e) => {
        e.preventDefault();
        const text = input.value.trim();
        if (!text) return;
        project.postMessage(text, taskId);
        input.value = "";
      },
    },
    input,
    h("button", { type: "submit", class: "primary" }, "Comment"),
  );
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  draw();
  const section = h("section", { class: "comment-panel", "aria-labelledby": "comments-title" }, h("h3", { id: "comments-title" }, "Comments"), list, form);
  section.update = draw;
  return section;
}
