// Dialogs shared by the views.
import { h } from "../dom.js";

export function quickAdd(project, status) {
  const input = h("input", { name: "title", placeholder: "What needs doing?", required: true, maxlength: 500 });
  const dialog = h(
    "dialog",
    { class: "sheet" },
    h(
      "form",
      { method: "dialog" },
      h("h2", {}, "New task"),
      input,
      h(
        "div",
        { class: "actions" },
        h("button", { value: "cancel", formnovalidate: true }, "Cancel"),
        h("button", { value: "add", class: "primary" }, "Add"),
      ),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "add" && input.value.trim()) {
      project.createTask(input.value.trim(), status || project.columns[0]);
    }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}
