import { go, on, onCleanup } from "../app.js";
import { bindText, colorFor, h } from "../dom.js";
import { shell } from "../shell.js";
import { listNames } from "../ui/format.js";

// -- task detail ---------------------------------------------------------------------------

// ["Ann"] -> "Ann"; ["Ann", "Ben"] -> "Ann and Ben"; ["Ann", "Ben", "Cy"] -> "Ann, Ben and Cy"
export function taskView(project, taskId) {
  const task = project.task(taskId);
  if (!task) {
    shell(project, "board", h("p", { class: "empty" }, "This task no longer exists."));
    return;
  }
  const mine = (task.assignees || []).includes(project.user);
  const editable = project.can("edit_all_tasks") || (mine && project.can("edit_own_tasks"));
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
  const select = (name, options, value) =>
    h(
      "select",
      { name, disabled: !editable, onchange: (e) => project.setField(taskId, name, e.target.value) },
      ...options.map((o) => h("option", { value: o, selected: o === value }, o.replace("_", " "))),
    );
  const listInput = (name, value, permission) =>
    h("input", {
      name,
      value: (value || []).join(", "),
      disabled: !(permission ? project.can(permission) : editable),
      onchange: (e) =>
        project.setField(
          taskId,
          name,
          e.target.value.split(",").map((s) => s.trim()).filter(Boolean),
        ),
    });
  const date = (name, value) =>
    h("input", { type: "date", name, value: value || "", disabled: !editable, onchange: (e) => project.setField(taskId, name, e.target.value || null) });
  const milestoneSelect = () =>
    h(
      "select",
      {
        name: "milestone",
        disabled: !editable,
        onchange: (e) => project.setField(taskId, "milestone", e.target.value || null),
      },
      h("option", { value: "" }, "none"),
      ...project.milestones().map((m) => h("option", { value: m.id, selected: m.id === task.milestone }, m.name)),
    );
  const form = h(
    "div",
    { class: "task-detail card" },
    title,
    coEditing.title,
    h(
      "div",
      { class: "fields" },
      h("label", {}, "Status", select("status", project.columns, task.status)),
      h("label", {}, "Priority", select("priority", ["low", "medium", "high", "urgent"], task.priority)),
      h("label", {}, "Assignees", listInput("assignees", task.assignees, "assign_tasks")),
      h("label", {}, "Labels", listInput("labels", task.labels)),
      h("label", {}, "Start", date("start", task.start)),
      h("label", {}, "Due", date("due", task.due)),
      h("label", {}, "Milestone", milestoneSelect()),
    ),
    h("label", { class: "wide" }, "Description", description, coEditing.description),
    project.can("delete_tasks")
      ? h(
          "button",
          {
            class: "danger",
            onclick: () => {
              if (confirm("Delete this task?")) {
                project.deleteTask(taskId);
                go(`#/p/${project.projectId}/board`);
              }
            },
          },
          "Delete task",
        )
      : null,
  );
  on(project, "change", () => {
    const now = project.task(taskId);
    if (!now) return go(`#/p/${project.projectId}/board`);
    for (const name of ["status", "priority"]) {
      const el = form.querySelector(`select[name=${name}]`);
      if (el && document.activeElement !== el) el.value = now[name];
    }
    for (const name of ["assignees", "labels"]) {
      const el = form.querySelector(`input[name=${name}]`);
      if (el && document.activeElement !== el) el.value = (now[name] || []).join(", ");
    }
    for (const name of ["start", "due"]) {
      const el = form.querySelector(`input[name=${name}]`);
      if (el && document.activeElement !== el) el.value = now[name] || "";
    }
    const milestone = form.querySelector("select[name=milestone]");
    if (milestone && document.activeElement !== milestone) milestone.replaceWith(milestoneSelect());
  });
  shell(project, "board", form);
}
