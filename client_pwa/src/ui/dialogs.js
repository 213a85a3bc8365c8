// Dialogs shared by the views: a modal form whose Enter submits (the primary button is the
// form's submit button; Cancel is type=button, so implicit submission never picks it).
import { h } from "../dom.js";

// fields: elements (labels with inputs) for the form. onSubmit(formData, form) may return
// a string: an error shown in the dialog, which then stays open.
export function formDialog({ title, fields, submitLabel = "Save", onSubmit, onClose }) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {},
    h("h2", { id: "dialog-title" }, title),
    ...fields,
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel"),
      h("button", { type: "submit", class: "primary" }, submitLabel),
    ),
  );
  const dialog = h("dialog", { class: "sheet", "aria-labelledby": "dialog-title" }, form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const problem = await onSubmit(new FormData(form), form);
    if (problem) error.textContent = problem;
    else dialog.close("ok");
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (onClose) onClose(dialog.returnValue);
  });
  document.body.append(dialog);
  dialog.showModal();
  form.querySelector("input, select, textarea")?.focus();
  return dialog;
}

export function quickAdd(project, status) {
  const returnTo = document.activeElement;
  formDialog({
    title: "New task",
    submitLabel: "Add",
    fields: [
      h(
        "label",
        { class: "field" },
        "Title",
        h("input", { name: "title", placeholder: "What needs doing?", required: true, maxlength: 500, autocomplete: "off" }),
      ),
    ],
    onSubmit: (data) => {
      const title = String(data.get("title") || "").trim();
      if (!title) return "A task needs a title.";
      const id = project.createTask(title, status || project.columns[0]);
      project.dispatchEvent(new CustomEvent("created", { detail: { id } }));
      return null;
    },
    onClose: () => returnTo && returnTo.isConnected && returnTo.focus(),
  });
}
