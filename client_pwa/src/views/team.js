import { api } from "../api.js";
import { h, toast, fill } from "../dom.js";
import { shell } from "../shell.js";

// -- team: members' roles and the project's custom roles (manage_team) ------------------------

const PERMISSIONS = [
  "view_project", "edit_project", "delete_project", "manage_team", "view_tasks", "create_tasks",
  "edit_own_tasks", "edit_all_tasks", "delete_tasks", "assign_tasks", "view_resources",
  "manage_resources", "view_budget", "edit_budget", "view_costs", "edit_costs",
  "view_analytics", "export_data",
];

export function teamView(project) {
  const base = `/projects/${encodeURIComponent(project.projectId)}`;
  const members = h("tbody");
  const roleList = h("ul", { class: "roles" });
  let roles = [];
  const fail = (e) => toast(e.message, "error");
  const load = async () => {
    try {
      const [grants, roleData] = await Promise.all([api("GET", `${base}/grants`), api("GET", `${base}/roles`)]);
      roles = roleData.roles;
      fill(members, 
        ...grants.grants.map((g) =>
          h(
            "tr",
            { dataset: { member: g.user } },
            h("td", {}, g.user),
            h(
              "td",
              {},
              h(
                "select",
                {
                  "aria-label": `Role of ${g.user}`,
                  disabled: g.user === project.user,
                  onchange: (e) =>
                    api("PUT", `${base}/grants/${encodeURIComponent(g.user)}`, { role: e.target.value })
                      .then(() => toast(`${g.user} is now ${e.target.value}`))
                      .catch(fail)
                      .finally(load),
                },
                ...roles.map((r) => h("option", { value: r.name, selected: r.name === g.role }, r.name)),
              ),
            ),
            h(
              "td",
              {},
              g.user === project.user
                ? null
                : h(
                    "button",
                    {
                      class: "danger",
                      onclick: () =>
                        confirm(`Remove ${g.user} from the project?`) &&
                        api("DELETE", `${base}/grants/${encodeURIComponent(g.user)}`).catch(fail).finally(load),
                    },
                    "Remove",
                  ),
            ),
          ),
        ),
      );
      fill(roleList, 
        ...roles.map((r) =>
          h(
            "li",
            {},
            h("strong", {}, r.name),
            r.builtin ? h("span", { class: "muted" }, " built-in") : null,
            h("p", {}, r.description || ""),
            h("p", { class: "muted" }, r.permissions.join(", ")),
            r.builtin
              ? null
              : h(
                  "button",
                  { onclick: () => api("DELETE", `${base}/roles/${encodeURIComponent(r.name)}`).catch(fail).finally(load) },
                  "Delete role",
                ),
          ),
        ),
      );
      // a new member gets the least role unless someone picks another: the one with the
      // fewest permissions (viewer among the built-in ones), never owner by accident
      const least = [...roles].sort((a, b) => a.permissions.length - b.permissions.length)[0];
      const picked = addRole.value && addRole.dataset.touched ? addRole.value : least?.name;
      fill(addRole, 
        ...roles.map((r) => h("option", { value: r.name, selected: r.name === picked }, `${r.name} (${r.permissions.length} permissions)`)),
      );
    } catch (e) {
      fail(e);
    }
  };
  const addRole = h("select", { name: "role", "aria-label": "Role", onchange: () => (addRole.dataset.touched = "1") });
  const addForm = h(
    "form",
    { class: "inline-form" },
    h("input", { name: "user", placeholder: "User name", required: true, "aria-label": "User name" }),
    addRole,
    h("button", { class: "primary" }, "Add member"),
  );
  addForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(addForm);
    api("PUT", `${base}/grants/${encodeURIComponent(data.get("user"))}`, { role: data.get("role") })
      .then(() => {
        addForm.reset();
        delete addRole.dataset.touched;
      })
      .catch(fail)
      .finally(load);
  });
  const roleForm = h(
    "form",
    { class: "role-form" },
    h("input", { name: "name", placeholder: "new-role-name", pattern: "[a-z][a-z0-9_-]{0,39}", required: true, "aria-label": "Role name" }),
    h("input", { name: "description", placeholder: "What it is for", "aria-label": "Description" }),
    h(
      "fieldset",
      {},
      h("legend", {}, "Permissions"),
      ...PERMISSIONS.map((p) => h("label", {}, h("input", { type: "checkbox", name: "permissions", value: p }), p.replaceAll("_", " "))),
    ),
    h("button", { class: "primary" }, "Create role"),
  );
  roleForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(roleForm);
    api("POST", `${base}/roles`, {
      name: data.get("name"),
      description: data.get("description") || "",
      permissions: data.getAll("permissions"),
      project: project.projectId,
    })
      .then(() => roleForm.reset())
      .catch(fail)
      .finally(load);
  });
  load();
  shell(
    project,
    "team",
    h(
      "div",
      { class: "team" },
      h("section", { class: "card" }, h("h2", {}, "Members"), h("table", {}, members), addForm),
      h("section", { class: "card" }, h("h2", {}, "Roles"), roleList, roleForm),
    ),
  );
}
