// The automation vocabulary the editor's menus offer: triggers, condition fields and
// operators, actions, and the parameters each takes. It mirrors the server's rule model
// (rules/automation/model.py); the server validates every rule, so a name here that the
// model does not know comes back as a problem shown at its field.

export const PRIORITIES = ["low", "medium", "high", "urgent"];
export const PROJECT_STATUSES = ["planning", "active", "on_hold", "completed", "archived"];

// A parameter: {key, label, kind, optional, help}. Kinds: text, textarea, number, status,
// priority, user, users, role, lines (one item per line), url (secret), select (options).
const ZONE = { key: "timezone", label: "Time zone", kind: "timezone" };

export const TRIGGERS = [
  { type: "task_created", label: "A task is created", params: [] },
  {
    type: "task_status_changed",
    label: "A task moves to another column",
    params: [
      { key: "from", label: "From column", kind: "status", optional: true },
      { key: "to", label: "To column", kind: "status", optional: true },
    ],
  },
  {
    type: "task_assigned",
    label: "A task is assigned",
    params: [{ key: "user", label: "Only when this person is added", kind: "user", optional: true }],
  },
  {
    type: "due_date_approaching",
    label: "A due date is near",
    params: [{ key: "within", label: "Within", kind: "duration" }, ZONE],
  },
  { type: "task_overdue", label: "A task is overdue", params: [ZONE] },
  { type: "comment_posted", label: "A comment is posted", params: [] },
  {
    type: "mentioned",
    label: "Someone is mentioned",
    params: [{ key: "user", label: "Only mentions of", kind: "user", optional: true }],
  },
  { type: "milestone_completed", label: "A milestone is completed", params: [] },
  {
    type: "project_status_changed",
    label: "The project's status changes",
    params: [
      { key: "from", label: "From status", kind: "select", options: PROJECT_STATUSES, optional: true },
      { key: "to", label: "To status", kind: "select", options: PROJECT_STATUSES, optional: true },
    ],
  },
  {
    type: "budget_exceeded",
    label: "Spending passes a share of the budget",
    params: [{ key: "percent", label: "Percent of the budget", kind: "number", min: 1, max: 1000 }],
  },
  {
    type: "resource_overallocated",
    label: "A person is over-allocated",
    params: [{ key: "capacity", label: "Capacity in percent", kind: "number", min: 1, max: 1000, optional: true }],
  },
  {
    type: "schedule",
    label: "On a schedule",
    params: [
      {
        key: "cron",
        label: "Schedule (cron: minute hour day month weekday)",
        kind: "cron",
        help: "For example 0 9 * * 1 is Mondays at 09:00.",
      },
      ZONE,
    ],
  },
];

export const OPERATORS = [
  { op: "eq", label: "is" },
  { op: "ne", label: "is not" },
  { op: "in", label: "is one of", many: true },
  { op: "not_in", label: "is none of", many: true },
  { op: "lt", label: "is less than" },
  { op: "lte", label: "is at most" },
  { op: "gt", label: "is more than" },
  { op: "gte", label: "is at least" },
  { op: "contains", label: "contains" },
  { op: "is_empty", label: "is empty", noValue: true },
  { op: "is_not_empty", label: "is not empty", noValue: true }, // {"op": "is_empty", "value": false}
  { op: "changed_from", label: "changed from" },
  { op: "changed_to", label: "changed to" },
];

// Condition fields: task fields, then the project's (custom fields are added from the tasks).
export const FIELDS = [
  { field: "status", label: "Status", kind: "status" },
  { field: "priority", label: "Priority", kind: "priority" },
  { field: "assignees", label: "Assignees", kind: "user" },
  { field: "labels", label: "Labels", kind: "text" },
  { field: "title", label: "Title", kind: "text" },
  { field: "description", label: "Description", kind: "text" },
  { field: "due", label: "Due date", kind: "date" },
  { field: "start", label: "Start date", kind: "date" },
  { field: "estimate", label: "Estimate (hours)", kind: "number" },
  { field: "milestone", label: "Milestone", kind: "milestone" },
  { field: "parent", label: "Parent task", kind: "text" },
  { field: "created_by", label: "Created by", kind: "user" },
  { field: "project.status", label: "Project status", kind: "select", options: PROJECT_STATUSES },
  { field: "project.name", label: "Project name", kind: "text" },
  { field: "project.start_date", label: "Project start", kind: "date" },
  { field: "project.end_date", label: "Project end", kind: "date" },
];

// What set_field may set (and custom.NAME).
export const SETTABLE = [
  ["priority", "Priority"],
  ["due", "Due date"],
  ["start", "Start date"],
  ["estimate", "Estimate (hours)"],
  ["milestone", "Milestone"],
  ["title", "Title"],
];

// Texts may name {task.title}, {task.status}, {task.priority}, {task.due}, {project.name},
// {rule.name}: the server fills them in when the rule runs.
const TEXT_HELP = "You can use {task.title}, {task.status}, {project.name}, {rule.name}.";

export const ACTIONS = [
  {
    type: "notify",
    label: "Notify people (in-app and push)",
    recipients: true,
    params: [
      { key: "title", label: "Title", kind: "text", optional: true, help: TEXT_HELP },
      { key: "message", label: "Message", kind: "textarea", optional: true },
    ],
  },
  {
    type: "email",
    label: "Send an email",
    recipients: true,
    params: [
      { key: "subject", label: "Subject", kind: "text", help: TEXT_HELP },
      { key: "text", label: "Text", kind: "textarea", optional: true },
    ],
  },
  {
    type: "slack",
    label: "Post to Slack",
    params: [
      { key: "url", label: "Slack incoming webhook URL", kind: "url" },
      { key: "text", label: "Message", kind: "text", optional: true, help: TEXT_HELP },
    ],
  },
  {
    type: "teams",
    label: "Post to Microsoft Teams",
    params: [
      { key: "url", label: "Teams incoming webhook URL", kind: "url" },
      { key: "text", label: "Message", kind: "text", optional: true, help: TEXT_HELP },
    ],
  },
  {
    type: "webhook",
    label: "Call a webhook (signed JSON POST)",
    params: [{ key: "url", label: "Webhook URL", kind: "url" }],
  },
  { type: "set_status", label: "Move the task to a column", params: [{ key: "status", label: "Column", kind: "status" }] },
  {
    type: "set_field",
    label: "Set a field of the task",
    params: [
      { key: "field", label: "Field", kind: "select", options: SETTABLE, custom: true },
      { key: "value", label: "Value", kind: "field-value", of: "field" },
    ],
  },
  { type: "assign", label: "Assign the task", params: [{ key: "users", label: "People", kind: "users" }] },
  { type: "add_label", label: "Add a label", params: [{ key: "label", label: "Label", kind: "text" }] },
  { type: "add_comment", label: "Add a comment", params: [{ key: "text", label: "Comment", kind: "textarea", help: TEXT_HELP }] },
  {
    type: "create_subtasks",
    label: "Create subtasks",
    params: [{ key: "titles", label: "Subtask titles (one per line)", kind: "lines" }],
  },
];

export const SECRET_ACTIONS = new Set(["webhook", "slack", "teams"]);

export const trigger = (type) => TRIGGERS.find((t) => t.type === type);
export const action = (type) => ACTIONS.find((a) => a.type === type);
export const operator = (op) => OPERATORS.find((o) => o.op === op);

const words = (s) => String(s ?? "").replaceAll("_", " ");
const list = (v) => (Array.isArray(v) ? v.map(words).join(", ") : words(v));

// One line for a rule in the list: "When a task moves to done: add label 'shipped'".
export function describeTrigger(t = {}) {
  switch (t.type) {
    case "task_status_changed": {
      const from = t.from ? ` from ${words(t.from)}` : "";
      const to = t.to ? ` to ${words(t.to)}` : " to another column";
      return `When a task moves${from}${to}`;
    }
    case "due_date_approaching": {
      const w = t.within || {};
      return `When a due date is within ${w.hours ? `${w.hours} hours` : `${w.days} days`}`;
    }
    case "budget_exceeded":
      return `When the budget passes ${t.percent} %`;
    case "schedule":
      return `On schedule ${t.cron || ""}${t.timezone ? ` (${t.timezone})` : ""}`;
    case "project_status_changed":
      return t.to ? `When the project's status becomes ${words(t.to)}` : "When the project's status changes";
    case "task_assigned":
      return t.user ? `When ${t.user} is assigned a task` : "When a task is assigned";
    case "mentioned":
      return t.user ? `When ${t.user} is mentioned` : "When someone is mentioned";
    default: {
      const known = trigger(t.type);
      return known ? `When ${known.label[0].toLowerCase()}${known.label.slice(1)}` : `When ${words(t.type)}`;
    }
  }
}

export function describeAction(a = {}) {
  switch (a.type) {
    case "add_label":
      return `add label “${a.label}”`;
    case "set_status":
      return `move it to ${words(a.status)}`;
    case "set_field":
      return `set ${words(a.field)} to ${list(a.value)}`;
    case "assign":
      return `assign ${list(a.users)}`;
    case "add_comment":
      return "add a comment";
    case "create_subtasks":
      return `create ${(a.titles || []).length} subtasks`;
    case "webhook":
    case "slack":
    case "teams":
      return `${a.type === "webhook" ? "call a webhook" : `post to ${a.type === "slack" ? "Slack" : "Teams"}`}${a.url_hint || a.url ? ` (${a.url_hint || a.url})` : ""}`;
    case "notify":
      return `notify ${recipientText(a)}`;
    case "email":
      return `email ${recipientText(a)}`;
    default:
      return words(a.type);
  }
}

function recipientText(a) {
  const to = a.to || {};
  const who = [];
  if (to.assignees) who.push("the assignees");
  if (to.users && to.users.length) who.push(list(to.users));
  if (to.role) who.push(`everyone who is ${to.role}`);
  return who.join(", ") || "nobody";
}

export function describeRule(rule) {
  const actions = (rule.actions || []).map(describeAction).join(", ");
  return `${describeTrigger(rule.trigger || {})}: ${actions || "nothing"}`;
}
