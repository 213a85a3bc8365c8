// What the server refused, in plain words, kept until the user has seen it.

const WHO_MAY = {
  edit_all_tasks: "only its assignees or a manager can",
  edit_own_tasks: "only people who may edit tasks can",
  create_tasks: "only people who may create tasks can",
  delete_tasks: "only a manager can",
  assign_tasks: "only people who may assign tasks can",
  edit_project: "only a manager can",
  manage_team: "only a manager can",
  edit_budget: "only people who manage the budget can",
  edit_costs: "only people who manage costs can",
  manage_resources: "only people who manage resources can",
};

// "tasks/<id>/title" -> what the change did, as a verb phrase about "it"
function deed(path) {
  const [root, , field] = (path || "").split("/");
  if (root === "tasks") {
    if (field === "title") return "rename it";
    if (field === "assignees") return "assign it";
    if (field === undefined) return "add or delete it";
    return "change it";
  }
  if (root === "meta") return "change the project's details";
  if (root === "members") return "change the team";
  if (root === "rules") return "switch or change automation rules";
  return "make this change";
}

// One sentence for a rejection ({reason, path, permission}) in a project session.
export function refusalText(project, rejection) {
  const [root, id] = (rejection.path || "").split("/");
  const task = root === "tasks" && id ? project.task(id) : null;
  const what = task ? `Your change to '${task.title}'` : "Your change";
  const who = WHO_MAY[rejection.permission];
  if (who) return `${what} was not saved: ${who} ${deed(rejection.path)}.`;
  return `${what} was not saved: ${rejection.reason}.`;
}
