// The rule editor: a rule built from menus (trigger, conditions, actions), never typed as
// JSON. The draft is a plain object in the rule's public JSON shape; structural changes
// (a type, a row added or removed) redraw the form, typing only updates the draft. The
// server validates on save; its problem details name a JSON path ("actions[0].url"), and
// the message is shown at the control that holds it.
import { h } from "../dom.js";
import {
  ACTIONS,
  FIELDS,
  OPERATORS,
  PRIORITIES,
  SECRET_ACTIONS,
  TRIGGERS,
  action as actionSpec,
  operator,
  trigger as triggerSpec,
} from "./vocabulary.js";

const BUILTIN_ROLES = ["owner", "manager", "member", "viewer", "finance"];
let uid = 0;

// "body.actions.1.url", "/actions/1/url", "$.actions[1].url" -> "actions[1].url"
export function normalizePath(path) {
  let p = String(path || "")
    .trim()
    .replace(/^\$\.?/, "")
    .replace(/^\//, "")
    .replaceAll("/", ".");
  p = p.replace(/^body\.?/, "");
  p = p.replace(/\.(\d+)(?=\.|$)/g, "[$1]").replace(/^(\d+)/, "[$1]");
  return p;
}

// Shorter and shorter prefixes of a path: "actions[1].url", "actions[1]", "actions", "".
function prefixes(path) {
  const out = [path];
  let p = path;
  while (p) {
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    p = cut > 0 ? p.slice(0, cut) : "";
    out.push(p);
  }
  return out;
}

// The problems a response carries, each as {path, message}.
export function problemsOf(problem) {
  const out = [];
  for (const e of problem?.errors || []) {
    const path = e.path ?? e.field ?? e.loc;
    out.push({ path: normalizePath(Array.isArray(path) ? path.join(".") : path), message: e.message || e.msg || e.detail });
  }
  if (!out.length) {
    const path = problem?.path ?? problem?.field ?? problem?.pointer ?? "";
    let message = problem?.detail || problem?.title || "the server refused this rule";
    const norm = normalizePath(path);
    // "actions[0].url: not a URL" -> "not a URL" when shown at that field
    for (const prefix of [`${path}: `, `${norm}: `]) if (path && message.startsWith(prefix)) message = message.slice(prefix.length);
    out.push({ path: norm, message });
  }
  return out;
}

function members(project) {
  return Object.keys(project.doc.getMap("members").toJSON()).sort();
}

function roles(project) {
  const used = Object.values(project.doc.getMap("members").toJSON()).filter((r) => typeof r === "string");
  return [...new Set([...BUILTIN_ROLES, ...used])];
}

function customFields(project) {
  const names = new Set();
  for (const t of project.tasks()) for (const k of Object.keys(t.custom || {})) names.add(k);
  return [...names].sort();
}

function fieldSpec(project, field) {
  const known = FIELDS.find((f) => f.field === field);
  if (known) return known;
  if (String(field).startsWith("custom.")) return { field, label: `Custom: ${field.slice(7)}`, kind: "text" };
  return { field, label: field, kind: "text" };
}

// h() sets a string as an attribute, and a textarea shows its property, not an attribute
function textarea(rows, value, oninput) {
  const el = h("textarea", { rows, oninput });
  el.value = value;
  return el;
}

// "is not empty" is {"op": "is_empty", "value": false}
const opKey = (row) => (row.op === "is_empty" && row.value === false ? "is_not_empty" : row.op);

// Conditions the editor can show as rows: {all: [leaf...]} or {any: [leaf...]}.
function flatConditions(conditions) {
  if (!conditions || (typeof conditions === "object" && !Object.keys(conditions).length)) return { mode: "all", rows: [] };
  for (const mode of ["all", "any"]) {
    const rows = conditions[mode];
    if (Array.isArray(rows) && Object.keys(conditions).length === 1 && rows.every((r) => r && typeof r.field === "string")) {
      return { mode, rows: rows.map((r) => ({ ...r })) };
    }
  }
  return null; // nested (not, groups in groups): kept as it is
}

export function emptyRule(project) {
  const done = project.columns.includes("done") ? "done" : project.columns.at(-1);
  return {
    name: "",
    enabled: true,
    trigger: { type: "task_status_changed", to: done },
    conditions: { all: [] },
    actions: [{ type: "add_label", label: "" }],
  };
}

/**
 * The editor for a rule (`rule` in its REST shape; a new rule when `ruleId` is null).
 * `save(draft)` sends it (rejecting with an ApiError carrying problem details);
 * `canSave()` says whether saving is possible now (online); `onDone(id)` after a save.
 */
export function ruleEditor({ project, rule, ruleId, save, canSave, onDone, onCancel }) {
  const draft = structuredClone(rule);
  delete draft.id;
  delete draft.state;
  delete draft.created_by; // the server sets it
  if (!draft.conditions) draft.conditions = { all: [] };
  for (const a of draft.actions || []) {
    // REST shows a kept secret URL masked ("https://host/…"); the document form holds
    // url_ref + url_hint. Either way it is no URL to send back: shown as a hint only.
    if (SECRET_ACTIONS.has(a.type) && (a.url_ref || (typeof a.url === "string" && a.url.endsWith("…")))) {
      a.url_hint = a.url_hint || a.url;
      delete a.url;
      delete a.url_ref;
      a.kept = true; // editor-only
    }
  }
  const actionsAtStart = JSON.stringify(draft.actions || []);
  const flat = flatConditions(draft.conditions);
  const cond = flat || { mode: "all", rows: [] };
  const kept = flat ? null : draft.conditions; // nested conditions the editor does not show
  const formError = h("p", { class: "error form-error", role: "alert", "data-testid": "form-error" });
  const body = h("div", { class: "rule-form-body" });
  const saveButton = h("button", { type: "submit", class: "primary" }, ruleId ? "Save rule" : "Create rule");
  const offlineNote = h("p", { class: "muted offline-note", hidden: true }, "Saving rules needs a connection: you are offline.");
  const form = h(
    "form",
    { class: "rule-form card", novalidate: true, "aria-label": ruleId ? "Edit rule" : "New rule" },
    h("h2", {}, ruleId ? "Edit rule" : "New rule"),
    formError,
    body,
    offlineNote,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: onCancel }, "Cancel"), saveButton),
  );

  // -- building blocks -----------------------------------------------------------------

  // A labelled control at a JSON path, with a place for the server's message about it.
  const field = (path, label, control, help) => {
    const id = `rf-${++uid}`;
    control.id = id;
    control.dataset.path = path;
    const err = h("span", { class: "field-error", id: `${id}-err`, hidden: true });
    const helpEl = help ? h("small", { class: "muted", id: `${id}-help` }, help) : null;
    if (help) control.setAttribute("aria-describedby", `${id}-help`);
    return h("div", { class: "field", dataset: { path } }, h("label", { for: id }, label), control, helpEl, err);
  };

  const select = (options, value, onchange, { blank } = {}) => {
    const el = h(
      "select",
      { onchange: (e) => onchange(e.target.value) },
      blank !== undefined ? h("option", { value: "" }, blank) : null,
      ...options.map((o) => {
        const [v, text] = Array.isArray(o) ? o : [o, String(o).replaceAll("_", " ")];
        return h("option", { value: v, selected: String(v) === String(value ?? "") }, text);
      }),
    );
    if (value !== undefined && value !== null && value !== "" && !options.some((o) => String(Array.isArray(o) ? o[0] : o) === String(value))) {
      el.append(h("option", { value, selected: true }, String(value))); // a value the menu does not know
    }
    return el;
  };

  const checkboxes = (legend, path, options, values, onchange) => {
    const chosen = new Set(values || []);
    const err = h("span", { class: "field-error", hidden: true });
    return h(
      "fieldset",
      { class: "field checks", dataset: { path } },
      h("legend", {}, legend),
      ...options.map((o) =>
        h(
          "label",
          {},
          h("input", {
            type: "checkbox",
            value: o,
            checked: chosen.has(o),
            dataset: { path },
            onchange: (e) => {
              if (e.target.checked) chosen.add(o);
              else chosen.delete(o);
              onchange(options.filter((x) => chosen.has(x)));
            },
          }),
          String(o).replaceAll("_", " "),
        ),
      ),
      options.length ? null : h("p", { class: "muted" }, "Nobody to choose yet."),
      err,
    );
  };

  // A control for one parameter `spec` of `obj` (a trigger or an action) at `path`.
  const param = (obj, spec, path, redraw) => {
    const value = obj[spec.key];
    const set = (v) => {
      if (v === "" || v === null || v === undefined || (Array.isArray(v) && !v.length && spec.optional)) delete obj[spec.key];
      else obj[spec.key] = v;
    };
    const label = spec.label + (spec.optional ? " (optional)" : "");
    switch (spec.kind) {
      case "status":
        return field(path, label, select(project.columns, value, set, spec.optional ? { blank: "any" } : { blank: "choose…" }));
      case "priority":
        return field(path, label, select(PRIORITIES, value, set, { blank: "choose…" }));
      case "select": {
        const options = spec.custom ? [...spec.options, ...customFields(project).map((c) => [`custom.${c}`, `custom: ${c}`])] : spec.options;
        return field(
          path,
          label,
          select(options, value, (v) => (set(v), spec.custom && redraw()), { blank: spec.optional ? "any" : "choose…" }),
        );
      }
      case "number":
        return field(
          path,
          label,
          h("input", {
            type: "number",
            inputmode: "decimal",
            min: spec.min,
            max: spec.max,
            value: value ?? "",
            oninput: (e) => set(e.target.value === "" ? null : Number(e.target.value)),
          }),
        );
      case "duration": {
        // "within" hours or days: {"hours": n} or {"days": n}
        const current = value && typeof value === "object" ? value : { days: 2 };
        if (!value) obj[spec.key] = current;
        const unit = "hours" in current ? "hours" : "days";
        const amount = h("input", {
          type: "number",
          min: 1,
          inputmode: "numeric",
          value: current[unit],
          oninput: () => (obj[spec.key] = { [units.value]: Number(amount.value) }),
        });
        const units = select([["days", "days"], ["hours", "hours"]], unit, () => (obj[spec.key] = { [units.value]: Number(amount.value) }));
        units.setAttribute("aria-label", `${label}: unit`);
        const wrapper = field(path, label, amount);
        wrapper.insertBefore(h("span", { class: "duration" }, amount, units), wrapper.querySelector(".field-error"));
        return wrapper;
      }
      case "textarea":
        return field(path, label, textarea(3, value ?? "", (e) => set(e.target.value)), spec.help);
      case "lines":
        return field(
          path,
          label,
          textarea(4, (value || []).join("\n"), (e) => set(e.target.value.split("\n").map((s) => s.trim()).filter(Boolean))),
        );
      case "users":
        return checkboxes(label, path, members(project), value, set);
      case "user":
        return field(path, label, select(members(project), value, set, { blank: spec.optional ? "anyone" : "choose…" }));
      case "timezone": {
        const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
        if (!value) obj[spec.key] = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
        return field(path, label, select(zones.includes("UTC") ? zones : ["UTC", ...zones], obj[spec.key], set));
      }
      case "url": {
        // a secret: the server keeps it outside the document and shows only a hint
        const hint = obj.kept ? obj.url_hint || "a saved URL" : "";
        const input = h("input", {
          type: "url",
          inputmode: "url",
          autocomplete: "off",
          placeholder: hint ? `${hint} (kept unless you type a new one)` : "https://",
          value: obj.url || "",
          oninput: (e) => {
            if (e.target.value) obj.url = e.target.value;
            else delete obj.url;
          },
        });
        return field(path, label, input, hint ? "Stored by the server, never in the shared project; shown masked." : null);
      }
      case "cron":
        return field(path, label, h("input", { value: value ?? "", autocomplete: "off", spellcheck: false, oninput: (e) => set(e.target.value.trim()) }), spec.help);
      case "field-value": {
        const target = fieldSpec(project, obj[spec.of]);
        return valueField(path, label, target, "eq", value, set);
      }
      default:
        return field(path, label, h("input", { value: value ?? "", oninput: (e) => set(e.target.value) }), spec.help);
    }
  };

  // The value control of a condition (or of set_field), by the field's kind and the operator.
  const valueField = (path, label, spec, op, value, set) => {
    const many = operator(op)?.many;
    if (many) {
      if (spec.kind === "status") return checkboxes(label, path, project.columns, value, set);
      if (spec.kind === "priority") return checkboxes(label, path, PRIORITIES, value, set);
      if (spec.kind === "select") return checkboxes(label, path, spec.options, value, set);
      if (spec.kind === "user") return checkboxes(label, path, members(project), value, set);
      return field(
        path,
        `${label} (separate with commas)`,
        h("input", {
          value: (Array.isArray(value) ? value : []).join(", "),
          oninput: (e) => set(e.target.value.split(",").map((s) => s.trim()).filter(Boolean)),
        }),
      );
    }
    if (spec.kind === "status") return field(path, label, select(project.columns, value, set, { blank: "choose…" }));
    if (spec.kind === "priority") return field(path, label, select(PRIORITIES, value, set, { blank: "choose…" }));
    if (spec.kind === "select") return field(path, label, select(spec.options, value, set, { blank: "choose…" }));
    if (spec.kind === "user") return field(path, label, select(members(project), value, set, { blank: "choose…" }));
    if (spec.kind === "milestone")
      return field(path, label, select(project.milestones().map((m) => [m.id, m.name]), value, set, { blank: "none" }));
    if (spec.kind === "number")
      return field(path, label, h("input", { type: "number", inputmode: "decimal", value: value ?? "", oninput: (e) => set(e.target.value === "" ? null : Number(e.target.value)) }));
    if (spec.kind === "date") return field(path, label, h("input", { type: "date", value: value ?? "", oninput: (e) => set(e.target.value) }));
    return field(path, label, h("input", { value: value ?? "", oninput: (e) => set(e.target.value) }));
  };

  // -- sections ----------------------------------------------------------------------------

  const triggerSection = () => {
    const t = draft.trigger;
    const spec = triggerSpec(t.type);
    return h(
      "fieldset",
      { class: "section trigger" },
      h("legend", {}, "When"),
      field(
        "trigger.type",
        "Trigger",
        select(
          TRIGGERS.map((x) => [x.type, x.label]),
          t.type,
          (v) => {
            draft.trigger = { type: v };
            redraw("trigger.type");
          },
        ),
      ),
      ...(spec ? spec.params : []).map((p) => param(t, p, `trigger.${p.key}`, () => redraw(`trigger.${p.key}`))),
    );
  };

  const conditionSection = () => {
    if (!flat) {
      return h(
        "fieldset",
        { class: "section conditions", dataset: { path: "conditions" } },
        h("legend", {}, "Only if"),
        h("p", { class: "muted" }, "This rule's conditions are nested deeper than this editor shows; they are kept as they are."),
      );
    }
    const rows = cond.rows.map((row, i) => {
      const path = `conditions.${cond.mode}[${i}]`;
      const spec = fieldSpec(project, row.field);
      const fields = [
        ...FIELDS.map((f) => [f.field, f.label]),
        ...customFields(project).map((c) => [`custom.${c}`, `Custom: ${c}`]),
      ];
      return h(
        "li",
        { class: "condition-row", dataset: { path } },
        h("span", { class: "row-title" }, `Condition ${i + 1}`),
        field(`${path}.field`, "Field", select(fields, row.field, (v) => ((row.field = v), delete row.value, redraw(`${path}.field`)))),
        field(
          `${path}.op`,
          "Test",
          select(
            OPERATORS.map((o) => [o.op, o.label]),
            opKey(row),
            (v) => {
              const wasMany = operator(row.op)?.many;
              row.op = v === "is_not_empty" ? "is_empty" : v;
              if (v === "is_not_empty") row.value = false;
              else if (operator(v)?.noValue) delete row.value;
              else if (Boolean(operator(v)?.many) !== Boolean(wasMany)) delete row.value;
              redraw(`${path}.op`);
            },
          ),
        ),
        operator(row.op)?.noValue
          ? null
          : valueField(`${path}.value`, "Value", spec, row.op, row.value, (v) => {
              if (v === "" || v === null) delete row.value;
              else row.value = v;
            }),
        h(
          "button",
          {
            type: "button",
            class: "remove",
            "aria-label": `Remove condition ${i + 1}`,
            onclick: () => {
              cond.rows.splice(i, 1);
              redraw(cond.rows.length ? `conditions.${cond.mode}[${Math.max(0, i - 1)}].field` : "add-condition");
            },
          },
          "Remove",
        ),
      );
    });
    return h(
      "fieldset",
      { class: "section conditions", dataset: { path: "conditions" } },
      h("legend", {}, "Only if"),
      cond.rows.length > 1
        ? field(
            "conditions",
            "Match",
            select(
              [
                ["all", "all of these hold"],
                ["any", "any of these holds"],
              ],
              cond.mode,
              (v) => {
                cond.mode = v;
                redraw("conditions");
              },
            ),
          )
        : null,
      cond.rows.length ? h("ol", { class: "rows" }, ...rows) : h("p", { class: "muted" }, "No conditions: every event of the trigger runs the actions."),
      h(
        "button",
        {
          type: "button",
          dataset: { path: "add-condition" },
          onclick: () => {
            cond.rows.push({ field: "priority", op: "eq", value: "high" });
            redraw(`conditions.${cond.mode}[${cond.rows.length - 1}].field`);
          },
        },
        "Add condition",
      ),
    );
  };

  // notify / email: {"to": {"assignees": true, "users": [...], "role": "finance"}}, someone at least
  const recipients = (a, path) => {
    a.to ||= { assignees: true };
    const to = a.to;
    const assigneesId = `rf-${++uid}`;
    return [
      h(
        "fieldset",
        { class: "field recipients", dataset: { path: `${path}.to` } },
        h("legend", {}, "Send to"),
        h(
          "label",
          { class: "check-line" },
          h("input", {
            type: "checkbox",
            id: assigneesId,
            checked: !!to.assignees,
            dataset: { path: `${path}.to.assignees` },
            onchange: (e) => {
              if (e.target.checked) to.assignees = true;
              else delete to.assignees;
            },
          }),
          "The task's assignees",
        ),
        checkboxes("People", `${path}.to.users`, members(project), to.users, (v) => {
          if (v.length) to.users = v;
          else delete to.users;
        }),
        field(
          `${path}.to.role`,
          "Everyone with the role",
          select(roles(project), to.role, (v) => {
            if (v) to.role = v;
            else delete to.role;
          }, { blank: "(no role)" }),
        ),
        h("span", { class: "field-error", hidden: true }),
      ),
    ];
  };

  const actionSection = () => {
    const rows = draft.actions.map((a, i) => {
      const path = `actions[${i}]`;
      const spec = actionSpec(a.type);
      return h(
        "li",
        { class: "action-row", dataset: { path } },
        h("span", { class: "row-title" }, `Action ${i + 1}`),
        field(
          `${path}.type`,
          "Do",
          select(ACTIONS.map((x) => [x.type, x.label]), a.type, (v) => {
            draft.actions[i] = actionSpec(v)?.recipients ? { type: v, to: { assignees: true } } : { type: v };
            redraw(`${path}.type`);
          }),
        ),
        ...(spec && spec.recipients ? recipients(a, path) : []),
        ...(spec ? spec.params : []).map((p) => param(a, p, `${path}.${p.key}`, () => redraw(`${path}.${p.key}`))),
        h(
          "button",
          {
            type: "button",
            class: "remove",
            "aria-label": `Remove action ${i + 1}`,
            disabled: draft.actions.length === 1,
            onclick: () => {
              draft.actions.splice(i, 1);
              redraw(`actions[${Math.max(0, i - 1)}].type`);
            },
          },
          "Remove",
        ),
      );
    });
    return h(
      "fieldset",
      { class: "section actions-list", dataset: { path: "actions" } },
      h("legend", {}, "Then"),
      h("ol", { class: "rows" }, ...rows),
      h(
        "button",
        {
          type: "button",
          dataset: { path: "add-action" },
          onclick: () => {
            draft.actions.push({ type: "notify", to: { assignees: true } });
            redraw(`actions[${draft.actions.length - 1}].type`);
          },
        },
        "Add action",
      ),
    );
  };

  const nameInput = h("input", {
    value: draft.name || "",
    maxlength: 200,
    autocomplete: "off",
    oninput: (e) => (draft.name = e.target.value),
  });
  const enabledBox = h("input", {
    type: "checkbox",
    role: "switch",
    checked: draft.enabled !== false,
    onchange: (e) => (draft.enabled = e.target.checked),
  });

  function redraw(focusPath) {
    body.replaceChildren(
      field("name", "Name", nameInput),
      h("label", { class: "switch-line" }, enabledBox, " Enabled"),
      triggerSection(),
      conditionSection(),
      actionSection(),
    );
    if (focusPath) form.querySelector(`:is(input, select, textarea, button)[data-path="${CSS.escape(focusPath)}"]`)?.focus();
  }
  redraw();

  // -- saving and the server's problems ---------------------------------------------------

  const clearProblems = () => {
    formError.textContent = "";
    for (const el of form.querySelectorAll(".field-error")) {
      el.textContent = "";
      el.hidden = true;
    }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  };

  // Each problem at the most specific control its path names; the rest above the form.
  function showProblems(problem) {
    clearProblems();
    let first = null;
    const loose = [];
    for (const { path: raw, message } of problemsOf(problem)) {
      const path = raw.replace(/\.url_(ref|hint)$/, ".url"); // the kept URL is the URL field
      let box = null;
      for (const p of prefixes(path)) {
        if (!p) break;
        box = form.querySelector(`.field[data-path="${CSS.escape(p)}"]`) || form.querySelector(`[data-path="${CSS.escape(p)}"]`);
        if (box) break;
      }
      if (!box) {
        loose.push(path ? `${path}: ${message}` : message);
        continue;
      }
      const wrapper = box.closest(".field, .condition-row, .action-row, .section") || box;
      let err = [...wrapper.children].find((c) => c.classList?.contains("field-error"));
      if (!err) {
        err = h("span", { class: "field-error" });
        wrapper.append(err);
      }
      err.id ||= `rf-${++uid}-err`;
      err.textContent = message;
      err.hidden = false;
      const control = wrapper.querySelector("input, select, textarea, button");
      if (control) {
        control.setAttribute("aria-invalid", "true");
        const described = new Set((control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
        described.add(err.id);
        control.setAttribute("aria-describedby", [...described].join(" "));
      }
      first ||= control || wrapper;
    }
    if (loose.length) formError.textContent = loose.join(" · ");
    else if (first) formError.textContent = "The rule was not saved: see the marked fields.";
    (first || formError).scrollIntoView?.({ block: "center" });
    if (first && first.focus) first.focus();
  }

  // The draft as the server takes it: editor-only keys gone, conditions as rows or kept.
  // A saved rule whose actions did not change is sent without them (PATCH keeps the
  // rule's own, secret URLs included: REST never shows them, so they cannot be sent back).
  function payload() {
    const out = structuredClone(draft);
    out.name = (out.name || "").trim();
    out.conditions = kept || { [cond.mode]: cond.rows };
    if (ruleId && JSON.stringify(draft.actions) === actionsAtStart) {
      delete out.actions;
      return out;
    }
    out.actions = out.actions.map((a) => {
      const copy = { ...a };
      delete copy.kept;
      delete copy.url_hint;
      return copy;
    });
    return out;
  }

  // Changed actions go whole, so every kept URL must be typed again.
  function missingUrls() {
    return draft.actions
      .map((a, i) => (SECRET_ACTIONS.has(a.type) && a.kept && !a.url ? i : -1))
      .filter((i) => i >= 0)
      .map((i) => ({
        path: `actions[${i}].url`,
        message: "type this URL again: the actions changed, and the saved URL is never shown to send back",
      }));
  }

  const updateOnline = () => {
    const ok = canSave();
    saveButton.disabled = !ok;
    offlineNote.hidden = ok;
  };
  updateOnline();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearProblems();
    if (!(draft.name || "").trim()) {
      showProblems({ path: "name", detail: "give the rule a name" });
      return;
    }
    const body = payload();
    const missing = body.actions ? missingUrls() : [];
    if (missing.length) {
      showProblems({ errors: missing });
      return;
    }
    saveButton.disabled = true;
    try {
      const saved = await save(body);
      onDone(saved?.id || ruleId);
    } catch (error) {
      if (error && error.problem) showProblems(error.problem);
      else formError.textContent = `Not saved: ${error.message || error}`;
    } finally {
      updateOnline();
    }
  });

  return { element: form, showProblems, updateOnline, payload };
}
