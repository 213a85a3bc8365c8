// Project settings: name, description, dates (in order), status (archive), and the board's
// columns (add, rename, reorder, remove). Details go through the REST API; columns are the
// project document's `columns` array (edit_project), renamed along with their tasks.
// Also "Your e-mail": the signed-in user's address and daily digest (PATCH /api/v1/me/).
import { api, cachedGet } from "../api.js";
import { go, on } from "../app.js";
import { h, toast, fill } from "../dom.js";
import { shell } from "../shell.js";
import { dateTime, locale, money, number, setLocale, shortDate, statusLabel } from "../ui/format.js";
import { dateRange } from "../ui/pickers.js";

const STATUSES = ["planning", "active", "on_hold", "completed", "archived"];

export function settingsView(project) {
  const base = `/projects/${encodeURIComponent(project.projectId)}/`;
  const editable = project.can("edit_project");
  const meta = project.meta;
  const patch = (body) =>
    api("PATCH", base, body)
      .then(() => toast("Saved"))
      .catch((e) => toast(e.message, "error"));
  const name = h("input", { name: "name", value: meta.name || "", maxlength: 200, required: true, disabled: !editable });
  const description = h("textarea", { name: "description", rows: 3, disabled: !editable }, meta.description || "");
  const status = h(
    "select",
    { name: "status", disabled: !editable, onchange: (e) => patch({ status: e.target.value }) },
    ...STATUSES.map((s) => h("option", { value: s, selected: s === (meta.status || "active") }, statusLabel(s))),
  );
  name.addEventListener("change", () => name.value.trim() && patch({ name: name.value.trim() }));
  description.addEventListener("change", () => patch({ description: description.value }));
  const dates = dateRange({
    startName: "start_date",
    endName: "end_date",
    startLabel: "Start",
    endLabel: "End",
    start: meta.start_date,
    end: meta.end_date,
    disabled: !editable,
    onChange: (field, value) => patch({ [field]: value }),
  });
  const details = h(
    "section",
    { class: "card", "aria-labelledby": "details-title" },
    h("h2", { id: "details-title" }, "Project"),
    editable ? null : h("p", { class: "muted" }, "View only: only a manager can change the project."),
    h("div", { class: "form-grid" }, h("label", {}, "Name", name), h("label", {}, "Status", status)),
    h("label", { class: "wide" }, "Description", description),
    dates,
    editable && meta.status !== "archived"
      ? h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: () => confirm("Archive this project? It stays readable and can be made active again.") && patch({ status: "archived" }).then(() => (status.value = "archived")),
          },
          "Archive project",
        )
      : null,
  );

  const columnList = h("ul", { class: "column-list" });
  const drawColumns = () => {
    const columns = project.columns;
    const counts = new Map(columns.map((c) => [c, 0]));
    for (const t of project.tasks()) counts.set(t.status, (counts.get(t.status) || 0) + 1);
    fill(columnList, 
      ...columns.map((c, i) =>
        h(
          "li",
          { dataset: { column: c } },
          h("input", {
            value: c,
            "aria-label": `Name of column ${statusLabel(c)}`,
            maxlength: 64,
            disabled: !editable,
            onchange: (e) => {
              const value = e.target.value.trim();
              if (!value || value === c) return;
              if (columns.includes(value)) return toast(`There is already a column “${value}”.`, "error");
              project.renameColumn(c, value);
            },
          }),
          h("button", { type: "button", class: "icon-button", "aria-label": `Move ${statusLabel(c)} left`, disabled: !editable || i === 0, onclick: () => project.moveColumn(c, i - 1) }, "←"),
          h("button", { type: "button", class: "icon-button", "aria-label": `Move ${statusLabel(c)} right`, disabled: !editable || i === columns.length - 1, onclick: () => project.moveColumn(c, i + 1) }, "→"),
          h(
            "button",
            {
              type: "button",
              class: "icon-button danger",
              "aria-label": `Remove ${statusLabel(c)}`,
              disabled: !editable || columns.length < 2,
              onclick: () => {
                const n = counts.get(c) || 0;
                const into = columns[i === 0 ? 1 : 0];
                if (confirm(n ? `Remove “${statusLabel(c)}”? Its ${n} tasks move to “${statusLabel(into)}”.` : `Remove “${statusLabel(c)}”?`)) project.removeColumn(c, into);
              },
            },
            "✕",
          ),
        ),
      ),
    );
  };
  const newColumn = h("input", { name: "column", placeholder: "New column", "aria-label": "New column", maxlength: 64, required: true });
  const columnForm = editable
    ? h(
        "form",
        {
          class: "inline-add",
          onsubmit: (e) => {
            e.preventDefault();
            const value = newColumn.value.trim();
            if (!value) return;
            if (project.columns.includes(value)) return toast(`There is already a column “${value}”.`, "error");
            project.addColumn(value);
            newColumn.value = "";
          },
        },
        newColumn,
        h("button", { type: "submit" }, "Add column"),
      )
    : null;
  // not while a name is being typed (it would lose the caret); a button keeps the focus
  let stale = false;
  const redraw = () => {
    const active = document.activeElement;
    stale = columnList.contains(active) && active.tagName === "INPUT";
    if (stale) return;
    const label = columnList.contains(active) ? active.getAttribute("aria-label") : null;
    drawColumns();
    if (label) {
      const again = [...columnList.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === label);
      (again && !again.disabled ? again : columnList.querySelector("input"))?.focus();
    }
  };
  on(project, "change", redraw);
  const mine = myEmailCard();
  columnList.addEventListener("focusout", () => setTimeout(() => stale && redraw()));
  drawColumns();
  shell(
    project,
    "settings",
    h(
      "div",
      { class: "page-grid" },
      details,
      h("section", { class: "card", "aria-labelledby": "columns-title" }, h("h2", { id: "columns-title" }, "Columns"), columnList, columnForm),
      mine,
      localeCard(),
      h("p", {}, h("a", { href: "#/projects", onclick: () => go("#/projects") }, "All projects")),
    ),
  );
}

// The signed-in user's own address (shown to nobody else) and the daily digest choice.
function myEmailCard() {
  const email = h("input", { name: "email", type: "email", maxlength: 254, autocomplete: "email", placeholder: "you@example.com", disabled: true });
  const digest = h(
    "select",
    { name: "digest", disabled: true },
    h("option", { value: "daily" }, "Daily"),
    h("option", { value: "off" }, "Off"),
  );
  const note = h("p", { class: "muted" }, "Rule e-mails and a daily digest of what others changed in your tasks go to this address; other members never see it.");
  const show = (me) => {
    email.value = me.email || "";
    digest.value = me.digest || "daily";
    email.disabled = digest.disabled = false;
  };
  const save = (body) =>
    api("PATCH", "/me/", body)
      .then((me) => {
        show(me);
        toast("Saved");
      })
      .catch((e) => {
        email.setCustomValidity(e.problem?.field === "email" ? e.message : "");
        toast(e.message, "error");
      });
  email.addEventListener("input", () => email.setCustomValidity(""));
  email.addEventListener("change", () => save({ email: email.value.trim() || null }));
  digest.addEventListener("change", () => save({ digest: digest.value }));
  cachedGet("/me/")
    .then(show)
    .catch(() => (note.textContent = "Your e-mail settings need a connection."));
  return h(
    "section",
    { class: "card", "aria-labelledby": "my-email-title" },
    h("h2", { id: "my-email-title" }, "Your e-mail"),
    h("div", { class: "form-grid" }, h("label", {}, "E-mail address", email), h("label", {}, "Daily digest", digest)),
    note,
  );
}

// How dates, numbers and money are written (this browser only): the browser's language, or a
// chosen locale. The words stay English; the formats follow the choice.
const LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL", "pt-BR", "pl-PL", "sv-SE", "ja-JP"];

function localeCard() {
  const name = (tag) => {
    try {
      return new Intl.DisplayNames([tag], { type: "language" }).of(tag) || tag;
    } catch {
      return tag;
    }
  };
  const sample = h("p", { class: "muted", "data-testid": "locale-sample" });
  const showSample = () => {
    sample.textContent = `${shortDate("2026-11-20")} · ${dateTime(Date.UTC(2026, 10, 20, 14, 30) / 1000)} · ${number(1234.5)} · ${money(1234.5, "EUR")}`;
  };
  const select = h(
    "select",
    {
      name: "locale",
      onchange: (e) => {
        setLocale(e.target.value || null);
        showSample();
        toast("Saved");
      },
    },
    h("option", { value: "" }, `The browser's (${navigator.language})`),
    ...LOCALES.map((tag) => h("option", { value: tag, selected: tag === locale(), lang: tag }, name(tag))),
  );
  showSample();
  return h(
    "section",
    { class: "card", "aria-labelledby": "locale-title" },
    h("h2", { id: "locale-title" }, "Dates and numbers"),
    h("label", {}, "Format dates, numbers and money as in", select),
    sample,
  );
}
