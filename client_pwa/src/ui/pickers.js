// Pickers instead of free text: people from the project's members, labels from the
// project's labels (a new one can be typed in), dates checked against each other.
import { colorFor, h, initials, fill } from "../dom.js";

// A disclosure button that opens a list of checkboxes. `options`: [{value, label}],
// `selected`: values; onChange(values) on every tick. `create`: allow typing a new value.
export function multiPicker({ name, label, options, selected, disabled, onChange, create = false, avatar = false }) {
  let values = [...selected];
  const summary = h("span", { class: "picker-value" });
  const listId = `picker-${name}`;
  const button = h(
    "button",
    { type: "button", class: "picker-button", name, "aria-expanded": "false", "aria-controls": listId, disabled },
    summary,
  );
  const panel = h("div", { class: "picker-panel card", id: listId, hidden: true, role: "group", "aria-label": label });
  const show = () => {
    fill(summary, 
      ...(values.length
        ? values.map((v) =>
            avatar
              ? h("span", { class: "chip" }, h("span", { class: "avatar small", style: { background: colorFor(v) }, "aria-hidden": "true" }, initials(v)), v)
              : h("span", { class: "chip label" }, v),
          )
        : [h("span", { class: "muted" }, "none")]),
    );
  };
  const draw = () => {
    const known = new Set(options.map((o) => o.value));
    const all = [...options, ...values.filter((v) => !known.has(v)).map((v) => ({ value: v, label: `${v} (not a member)` }))];
    fill(panel, 
      ...all.map((o) =>
        h(
          "label",
          { class: "picker-option" },
          h("input", {
            type: "checkbox",
            value: o.value,
            checked: values.includes(o.value),
            onchange: (e) => {
              values = e.target.checked ? [...values, o.value] : values.filter((v) => v !== o.value);
              show();
              onChange(values);
            },
          }),
          o.label,
        ),
      ),
      all.length ? null : h("p", { class: "muted" }, "Nothing to pick yet."),
      create
        ? h(
            "form",
            {
              class: "picker-new",
              onsubmit: (e) => {
                e.preventDefault();
                const input = e.target.elements.namedItem("new");
                const value = input.value.trim();
                if (!value || values.includes(value)) return;
                values = [...values, value];
                options = [...options, { value, label: value }];
                input.value = "";
                show();
                draw();
                onChange(values);
                panel.querySelector("input[name=new]").focus();
              },
            },
            h("input", { name: "new", placeholder: `New ${label.toLowerCase().replace(/s$/, "")}`, "aria-label": `New ${label.toLowerCase()}`, maxlength: 100 }),
            h("button", { type: "submit" }, "Add"),
          )
        : null,
    );
  };
  button.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) {
      draw();
      panel.querySelector("input")?.focus();
    }
  });
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      button.focus();
    }
  });
  show();
  const box = h("div", { class: "picker" }, button, panel);
  // the view calls this when the document changes
  box.update = (now, newOptions) => {
    values = [...now];
    if (newOptions) options = newOptions;
    show();
    if (!panel.hidden && !panel.contains(document.activeElement)) draw();
  };
  return box;
}

export function memberOptions(project) {
  const members = project.doc.getMap("members").toJSON();
  return Object.keys(members)
    .sort()
    .map((user) => ({ value: user, label: user }));
}

export function labelOptions(project) {
  const labels = new Set();
  for (const t of project.tasks()) for (const l of t.labels || []) labels.add(l);
  return [...labels].sort().map((l) => ({ value: l, label: l }));
}

// A start and an end date that must be in order: each input's min/max follow the other, and
// a change that would put them out of order is refused with a message beside them.
export function dateRange({ startName = "start", endName = "due", startLabel = "Start", endLabel = "Due", start, end, disabled, onChange }) {
  const message = h("p", { class: "error field-error", role: "alert" });
  const startInput = h("input", { type: "date", name: startName, value: start || "", disabled, "aria-describedby": `${startName}-${endName}-error` });
  const endInput = h("input", { type: "date", name: endName, value: end || "", disabled, "aria-describedby": `${startName}-${endName}-error` });
  message.id = `${startName}-${endName}-error`;
  const limits = () => {
    endInput.min = startInput.value || "";
    startInput.max = endInput.value || "";
  };
  const changed = (input, name, other) => {
    const a = startInput.value;
    const b = endInput.value;
    if (a && b && a > b) {
      message.textContent = `${startLabel} must be on or before ${endLabel.toLowerCase()}.`;
      input.setAttribute("aria-invalid", "true");
      input.value = input === startInput ? start || "" : end || "";
      return;
    }
    message.textContent = "";
    input.removeAttribute("aria-invalid");
    if (input === startInput) start = a;
    else end = b;
    limits();
    onChange(name, input.value || null, other);
  };
  startInput.addEventListener("change", () => changed(startInput, startName));
  endInput.addEventListener("change", () => changed(endInput, endName));
  limits();
  const el = h(
    "div",
    { class: "date-range" },
    h("label", {}, startLabel, startInput),
    h("label", {}, endLabel, endInput),
    message,
  );
  el.update = (s, e) => {
    start = s;
    end = e;
    if (document.activeElement !== startInput) startInput.value = s || "";
    if (document.activeElement !== endInput) endInput.value = e || "";
    limits();
  };
  return el;
}
