import { api, ApiError, cachedGet, session } from "../api.js";
import { app, go } from "../app.js";
import { h, fill } from "../dom.js";
import { formDialog } from "../ui/dialogs.js";
import { logout } from "../shell.js";
import { statusLabel } from "../ui/format.js";

// -- login and projects ---------------------------------------------------------

export function loginView() {
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "card login" },
    h("h1", {}, "Tandem"),
    h("label", {}, "User name", h("input", { name: "username", autocomplete: "username", required: true })),
    h(
      "label",
      {},
      "Password",
      h("input", { name: "password", type: "password", autocomplete: "state.current-password", required: true }),
    ),
    h("button", { type: "submit", class: "primary" }, "Log in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      const result = await api("POST", "/login", {
        username: data.get("username"),
        password: data.get("password"),
      });
      session.save(data.get("username"), result.token);
      go("#/projects");
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.message : "cannot reach the server";
    }
  });
  fill(app, form);
}

export async function projectsView() {
  const list = h("ul", { class: "projects" }, h("li", {}, "Loading…"));
  fill(app, 
    h(
      "main",
      { class: "page" },
      h("header", { class: "top" }, h("h1", {}, "Projects"), h("button", { onclick: logout }, "Log out")),
      h("div", { class: "projects-head" }, h("h2", {}, "Your projects"), h("button", { class: "primary", type: "button", onclick: newProject }, "New project")),
      list,
    ),
  );
  try {
    const page = await cachedGet("/projects/?limit=200");
    // `status` is read only when the server sends it (a string): an archived project gets
    // a mark and goes after the others; any other status but "active" is named beside it
    const statusOf = (p) => (typeof p.status === "string" ? p.status : null);
    const archived = (p) => statusOf(p) === "archived";
    const items = [...page.items].sort((a, b) => Number(archived(a)) - Number(archived(b)));
    fill(list,
      ...items.map((p) => {
        const status = statusOf(p);
        return h(
          "li",
          {},
          h(
            "a",
            { href: `#/p/${p.id}/board`, class: `project${archived(p) ? " archived" : ""}` },
            h("strong", {}, p.name),
            status && status !== "active" ? h("span", { class: `status-mark status-${status}`, "data-testid": "project-status" }, statusLabel(status)) : null,
            p.role ? h("span", {}, p.role) : null,
          ),
        );
      }),
    );
    if (!page.items.length) fill(list, h("li", {}, "No projects yet."));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout();
    fill(list, h("li", { class: "error" }, `Could not load projects: ${e.message}`));
  }
}

function newProject() {
  const start = h("input", { type: "date", name: "start_date" });
  const end = h("input", { type: "date", name: "end_date" });
  start.addEventListener("change", () => (end.min = start.value));
  end.addEventListener("change", () => (start.max = end.value));
  formDialog({
    title: "New project",
    submitLabel: "Create",
    fields: [
      h("label", {}, "Name", h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off" })),
      h("label", {}, "Description", h("textarea", { name: "description", rows: 2 })),
      h("div", { class: "date-range" }, h("label", {}, "Start", start), h("label", {}, "End", end)),
    ],
    onSubmit: async (data) => {
      const body = { name: String(data.get("name")).trim(), description: String(data.get("description") || "") };
      if (!body.name) return "A project needs a name.";
      if (data.get("start_date")) body.start_date = data.get("start_date");
      if (data.get("end_date")) body.end_date = data.get("end_date");
      if (body.start_date && body.end_date && body.start_date > body.end_date) return "The start must be on or before the end.";
      try {
        const project = await api("POST", "/projects/", body);
        setTimeout(() => go(`#/p/${project.id}/board`));
        return null;
      } catch (e) {
        return e instanceof ApiError ? e.message : "cannot reach the server";
      }
    },
  });
}
