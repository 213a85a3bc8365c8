import { api, ApiError, cachedGet, session } from "../api.js";
import { app, go } from "../app.js";
import { h } from "../dom.js";
import { logout } from "../shell.js";

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
  app.replaceChildren(form);
}

export async function projectsView() {
  const list = h("ul", { class: "projects" }, h("li", {}, "Loading…"));
  app.replaceChildren(
    h(
      "main",
      { class: "page" },
      h("header", { class: "top" }, h("h1", {}, "Projects"), h("button", { onclick: logout }, "Log out")),
      list,
    ),
  );
  try {
    const page = await cachedGet("/projects/?limit=200");
    list.replaceChildren(
      ...page.items.map((p) =>
        h(
          "li",
          {},
          h("a", { href: `#/p/${p.id}/board`, class: "project" }, h("strong", {}, p.name), h("span", {}, p.role || "")),
        ),
      ),
    );
    if (!page.items.length) list.replaceChildren(h("li", {}, "No projects yet."));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout();
    list.replaceChildren(h("li", { class: "error" }, `Could not load projects: ${e.message}`));
  }
}
