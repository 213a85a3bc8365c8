// Project documents in the browser: Yjs docs kept in IndexedDB and synced by TandemProvider.
// Shapes follow docs/document-schema.md (the server's schema check rejects anything else).
import * as Y from "yjs";
import { IndexeddbPersistence } from "y-indexeddb";
import { Awareness } from "y-protocols/awareness";
import { generateKeyBetween } from "fractional-indexing";
import { TandemProvider } from "./provider.js";
import { refusalText } from "./refusals.js";

const DEFAULT_COLUMNS = ["todo", "in_progress", "review", "done"];
const ROOTS = {
  main: { meta: Y.Map, members: Y.Map, columns: Y.Array, tasks: Y.Map, milestones: Y.Map, rules: Y.Map },
  chat: { messages: Y.Array },
};

export function syncUrl() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  return `${proto}://${location.host}/sync`;
}

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

function declare(doc, kind) {
  for (const [name, type] of Object.entries(ROOTS[kind])) {
    if (type === Y.Map) doc.getMap(name);
    else doc.getArray(name);
  }
}

const byOrder = (a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : a.id < b.id ? -1 : 1);
const list = (v) => (v instanceof Y.Array ? v.toArray() : Array.isArray(v) ? v : []);

function cardFields(id, task) {
  const title = task.get("title");
  return {
    id,
    title: title === undefined || title === null ? "" : String(title),
    status: task.get("status"),
    priority: task.get("priority"),
    order: task.get("order"),
    due: task.get("due"),
    start: task.get("start"),
    key: task.get("key"),
    assignees: list(task.get("assignees")),
    labels: list(task.get("labels")),
  };
}

export class ProjectSession extends EventTarget {
  constructor({ projectId, user, token, permissions }) {
    super();
    this.projectId = projectId;
    this.user = user;
    this.permissions = new Set(permissions);
    this.doc = new Y.Doc();
    this.chat = new Y.Doc();
    declare(this.doc, "main");
    declare(this.chat, "chat");
    this.awareness = new Awareness(this.doc);
    this.awareness.setLocalStateField("user", { name: user });
    this.awareness.setLocalStateField("viewing", null);
    // stored per user: two accounts on one browser never mix their local copies
    const prefix = `tandem:${user}:`;
    this.local = new IndexeddbPersistence(`${prefix}p/${projectId}`, this.doc);
    this.localChat = new IndexeddbPersistence(`${prefix}p/${projectId}/chat`, this.chat);
    this.local.isTandemPersistence = true;
    this.localChat.isTandemPersistence = true;
    this.ready = Promise.all([this.local.whenSynced, this.localChat.whenSynced]);
    this.provider = new TandemProvider({
      url: syncUrl(),
      docName: `p/${projectId}`,
      doc: this.doc,
      token,
      awareness: this.awareness,
      label: () => this._label || "change",
      storageKey: `${prefix}pending:p/${projectId}`,
      ready: this.local.whenSynced,
    });
    this.chatProvider = new TandemProvider({
      url: syncUrl(),
      docName: `p/${projectId}/chat`,
      doc: this.chat,
      token,
      label: () => "message",
      storageKey: `${prefix}pending:p/${projectId}/chat`,
      ready: this.localChat.whenSynced,
    });
    // refusals stay here until the user dismisses them (the status pill counts them),
    // across reloads too
    this._refusalKey = `${prefix}refusals:p/${projectId}`;
    this.refusals = [];
    try {
      const kept = JSON.parse(localStorage.getItem(this._refusalKey) || "[]");
      if (Array.isArray(kept)) this.refusals = kept.filter((r) => r && typeof r.text === "string");
    } catch {
      // unreadable: nothing kept
    }
    this._refusalId = Math.max(0, ...this.refusals.map((r) => Number(r.id) || 0));
    for (const p of [this.provider, this.chatProvider]) {
      p.addEventListener("rejected", (e) => {
        const refusal = { id: ++this._refusalId, text: refusalText(this, e.detail), detail: e.detail };
        this.refusals.push(refusal);
        this._keepRefusals();
        this.dispatchEvent(new CustomEvent("rejected", { detail: refusal }));
        this.dispatchEvent(new Event("status"));
      });
      p.addEventListener("status", () => this.dispatchEvent(new Event("status")));
      p.addEventListener("fatal", (e) => this.dispatchEvent(new CustomEvent("fatal", { detail: e.detail })));
    }
    this.doc.on("update", () => this.dispatchEvent(new Event("change")));
    this.chat.on("update", () => this.dispatchEvent(new Event("chat")));
    this.awareness.on("change", () => this.dispatchEvent(new Event("presence")));
  }

  dismissRefusal(id) {
    this.refusals = this.refusals.filter((r) => r.id !== id);
    this._keepRefusals();
    this.dispatchEvent(new Event("status"));
  }

  _keepRefusals() {
    try {
      if (this.refusals.length) localStorage.setItem(this._refusalKey, JSON.stringify(this.refusals));
      else localStorage.removeItem(this._refusalKey);
    } catch {
      // storage full or blocked: they stay on screen until this page goes
    }
  }

  can(permission) {
    return this.permissions.has(permission);
  }

  destroy() {
    this.provider.destroy();
    this.chatProvider.destroy();
    this.awareness.destroy();
    this.local.destroy();
    this.localChat.destroy();
  }

  get columns() {
    const cols = this.doc.getArray("columns").toArray().filter((c) => typeof c === "string");
    return cols.length ? cols : DEFAULT_COLUMNS;
  }

  // Columns: the document's `columns` array (a default board has none stored yet: the
  // defaults are written the first time someone changes them).
  _setColumns(label, columns, moveTasks = null) {
    this._transact(label, () => {
      const array = this.doc.getArray("columns");
      array.delete(0, array.length);
      array.insert(0, columns);
      if (moveTasks) {
        this.doc.getMap("tasks").forEach((task) => {
          if (task instanceof Y.Map && moveTasks[task.get("status")]) task.set("status", moveTasks[task.get("status")]);
        });
      }
    });
  }

  addColumn(name) {
    this._setColumns(`add column ${name}`, [...this.columns, name]);
  }

  renameColumn(from, to) {
    this._setColumns(`rename column ${from}`, this.columns.map((c) => (c === from ? to : c)), { [from]: to });
  }

  moveColumn(name, index) {
    const columns = this.columns.filter((c) => c !== name);
    columns.splice(index, 0, name);
    this._setColumns(`move column ${name}`, columns);
  }

  removeColumn(name, into) {
    this._setColumns(`remove column ${name}`, this.columns.filter((c) => c !== name), { [name]: into });
  }

  get meta() {
    return this.doc.getMap("meta").toJSON();
  }

  task(id) {
    const t = this.doc.getMap("tasks").get(id);
    return t instanceof Y.Map ? { id, ...t.toJSON() } : null;
  }

  tasks() {
    const out = [];
    this.doc.getMap("tasks").forEach((value, id) => {
      if (value instanceof Y.Map) out.push({ id, ...value.toJSON() });
    });
    return out;
  }

  // Each column's tasks in board order, with only the fields a card shows (read in one pass:
  // on a 10,000-task project, toJSON() of every task, descriptions and all, was most of a
  // board draw). A task whose status is no column is left out.
  board() {
    const columns = new Map(this.columns.map((c) => [c, []]));
    this.doc.getMap("tasks").forEach((value, id) => {
      if (!(value instanceof Y.Map)) return;
      const list = columns.get(value.get("status"));
      if (list) list.push(cardFields(id, value));
    });
    for (const list of columns.values()) list.sort(byOrder);
    return columns;
  }

  columnTasks(status) {
    const out = [];
    this.doc.getMap("tasks").forEach((value, id) => {
      if (value instanceof Y.Map && value.get("status") === status) out.push(cardFields(id, value));
    });
    return out.sort(byOrder);
  }

  // Milestones by due date (undated last), then name.
  milestones() {
    const out = [];
    this.doc.getMap("milestones").forEach((v, id) => {
      if (v instanceof Y.Map) out.push({ id, ...v.toJSON() });
    });
    return out.sort((a, b) => (a.due || "9999").localeCompare(b.due || "9999") || String(a.name).localeCompare(String(b.name)));
  }

  createMilestone(name, due = null) {
    const id = newId();
    this._transact(`add milestone “${name}”`, () => {
      const fields = [["name", name], ["description", ""], ["done", false]];
      if (due) fields.push(["due", due]);
      this.doc.getMap("milestones").set(id, new Y.Map(fields));
    });
    return id;
  }

  setMilestoneField(id, name, value) {
    const milestone = this.doc.getMap("milestones").get(id);
    if (!(milestone instanceof Y.Map)) return;
    this._transact(`set milestone ${name}`, () => {
      if (value === null || value === "") milestone.delete(name);
      else milestone.set(name, value);
    });
  }

  // A milestone goes, and no task keeps pointing at it.
  deleteMilestone(id) {
    this._transact("delete milestone", () => {
      this.doc.getMap("milestones").delete(id);
      this.doc.getMap("tasks").forEach((task) => {
        if (task instanceof Y.Map && task.get("milestone") === id) task.delete("milestone");
      });
    });
  }

  _transact(label, fn) {
    this._label = label;
    try {
      this.doc.transact(fn);
    } finally {
      this._label = null;
    }
  }

  createTask(title, status = this.columns[0], fields = {}) {
    const id = newId();
    const last = this.columnTasks(status).at(-1);
    this._transact(`add “${title}”`, () => {
      const task = new Y.Map();
      this.doc.getMap("tasks").set(id, task);
      task.set("title", new Y.Text(title));
      task.set("description", new Y.Text(""));
      task.set("status", status);
      task.set("priority", fields.priority || "medium");
      task.set("assignees", Y.Array.from(fields.assignees || []));
      task.set("labels", Y.Array.from(fields.labels || []));
      task.set("depends_on", new Y.Array());
      task.set("custom", new Y.Map());
      task.set("order", generateKeyBetween(last ? last.order : null, null));
      task.set("created_by", this.user);
      task.set("created_at", new Date().toISOString());
      if (fields.due) task.set("due", fields.due);
    });
    return id;
  }

  // Move to a column, before the task `beforeId` (or to the end).
  moveTask(id, status, beforeId = null) {
    const column = this.columnTasks(status).filter((t) => t.id !== id);
    const index = beforeId ? column.findIndex((t) => t.id === beforeId) : column.length;
    const prev = index > 0 ? column[index - 1].order : null;
    const next = index >= 0 && index < column.length ? column[index].order : null;
    let order;
    try {
      order = generateKeyBetween(prev, next);
    } catch {
      order = generateKeyBetween(prev, null); // keys from another client's format
    }
    const task = this.doc.getMap("tasks").get(id);
    this._transact(`move to ${status.replace("_", " ")}`, () => {
      task.set("status", status);
      task.set("order", order);
    });
  }

  setField(id, name, value) {
    const task = this.doc.getMap("tasks").get(id);
    this._transact(`set ${name}`, () => {
      if (value === null || value === "") task.delete(name);
      else if (Array.isArray(value)) task.set(name, Y.Array.from(value));
      else task.set(name, value);
    });
  }

  // Several fields in one transaction (null or "" removes a field): one change, one undo.
  setFields(id, fields, label = "edit") {
    const task = this.doc.getMap("tasks").get(id);
    if (!(task instanceof Y.Map)) return;
    this._transact(label, () => {
      for (const [name, value] of Object.entries(fields)) {
        if (value === null || value === undefined || value === "") task.delete(name);
        else task.set(name, value);
      }
    });
  }

  deleteTask(id) {
    this._transact("delete task", () => this.doc.getMap("tasks").delete(id));
  }

  text(id, name) {
    const task = this.doc.getMap("tasks").get(id);
    return task ? task.get(name) : null;
  }

  messages() {
    return this.chat
      .getArray("messages")
      .toArray()
      .filter((m) => m instanceof Y.Map)
      .map((m) => m.toJSON());
  }

  postMessage(text, task = null) {
    const fields = { id: newId(), author: this.user, text, at: new Date().toISOString() };
    if (task) fields.task = task;
    const message = new Y.Map(Object.entries(fields));
    this.chat.getArray("messages").push([message]);
  }

  // Presence: who is online and what they look at. `field` ("title", "description") is
  // the text the user is typing in, so others can see who edits it with them.
  setViewing(taskId, editing = false, field = null) {
    const viewing = taskId ? { task: taskId, editing, field: editing ? field : null } : null;
    const now = this.awareness.getLocalState();
    if (now && JSON.stringify(now.viewing) === JSON.stringify(viewing)) return;
    this.awareness.setLocalStateField("viewing", viewing);
  }

  // Others (never this client) typing in `field` of task `taskId`, one entry per name.
  editors(taskId, field) {
    const names = new Set();
    for (const p of this.people()) {
      const v = p.viewing;
      if (!p.self && v && v.task === taskId && v.editing && v.field === field) names.add(p.user.name);
    }
    return [...names].sort();
  }

  people() {
    const out = [];
    this.awareness.getStates().forEach((state, clientId) => {
      if (state && state.user) out.push({ clientId, ...state, self: clientId === this.doc.clientID });
    });
    return out;
  }
}
