// Tandem's sync provider: the y-websocket protocol (y-protocols' sync and awareness
// messages) plus Tandem's acks and rejections (message type 100, JSON, asked for with
// ?tandem=1), an outbox that tracks every local transaction as pending, saved or rejected,
// and reconnects with exponential backoff and jitter.
import * as Y from "yjs";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";

const MESSAGE_SYNC = 0;
const MESSAGE_AWARENESS = 1;
const MESSAGE_AUTH = 2;
const MESSAGE_QUERY_AWARENESS = 3;
const MESSAGE_TANDEM = 100;
const SYNC_STEP1 = 0;
const SYNC_STEP2 = 1;

// Close codes after which reconnecting cannot help: the user must act (log in, get access).
const FINAL_CODES = new Set([4401, 4403, 4404]);
// The server could not store a change for a while (its disk is full): nothing is lost, the
// changes stay here; its reason ends "retry in N s", which is waited out before reconnecting.
const TRY_AGAIN_LATER = 1013;

function retryAfterMs(reason) {
  const match = /retry in (\d+) s/.exec(reason || "");
  return match ? Math.min(Number(match[1]), 600) * 1000 : 0;
}

export class TandemProvider extends EventTarget {
  constructor({
    url,
    docName,
    doc,
    token,
    awareness = null,
    label = () => "change",
    storageKey = null,
    ready = Promise.resolve(),
  }) {
    super();
    this.url = url;
    this.docName = docName;
    this.doc = doc;
    this.token = token;
    this.awareness = awareness;
    this.label = label;
    this.ws = null;
    this.connected = false;
    this.synced = false;
    this.sent = 0; // step 2 and update messages sent on this connection: the server's ack numbers
    this.outbox = []; // {id, label, status, n}
    this.attempt = 0;
    this.stopped = false;
    this.closeReason = null;
    this._nextId = 1;
    this._timer = null;
    // Pending changes outlive a reload: the edits are in IndexedDB, and until the server
    // has acknowledged them the app must not say "Saved" (restored entries get the ack
    // number of the next connection's step 2, which carries them).
    this.storageKey = storageKey;
    this._persisted = "[]";
    if (storageKey) {
      try {
        const labels = JSON.parse(localStorage.getItem(storageKey) || "[]");
        for (const label of Array.isArray(labels) ? labels : []) {
          this.outbox.push({ id: this._nextId++, label: String(label), status: "pending", n: null });
        }
        this._persisted = JSON.stringify(this.outbox.map((e) => e.label));
      } catch {
        // unreadable: start empty (the state vector check on connect still counts them)
      }
    }
    this._onUpdate = (update, origin) => {
      if (origin === this || (origin && origin.isTandemPersistence)) return;
      const entry = { id: this._nextId++, label: this.label(), status: "pending", n: null };
      this.outbox.push(entry);
      if (this.connected && this.synced) {
        entry.n = this._send(this._syncMessage(SYNC_UPDATE_TYPE, update), true);
      }
      this._changed();
    };
    doc.on("update", this._onUpdate);
    if (awareness) {
      this._onAwareness = ({ added, updated, removed }, origin) => {
        if (origin === this) return;
        const clients = added.concat(updated, removed);
        const enc = encoding.createEncoder();
        encoding.writeVarUint(enc, MESSAGE_AWARENESS);
        encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(awareness, clients));
        this._send(encoding.toUint8Array(enc), false);
      };
      awareness.on("update", this._onAwareness);
    }
    // the browser knows when the network is back: do not wait out the backoff
    this._onOnline = () => {
      if (!this.ws && !this.stopped) {
        clearTimeout(this._timer);
        this.attempt = 0;
        this.connect();
      }
    };
    window.addEventListener("online", this._onOnline);
    // and when it goes away: a socket may linger half-open for minutes; drop it now so
    // edits count as offline (queued, shown as "to sync") instead of vanishing into it
    this._onOffline = () => {
      if (this.ws) this.ws.close(1000, "offline");
    };
    window.addEventListener("offline", this._onOffline);
    // connect once the local copy is loaded: step 2 must carry the edits stored offline
    this._loaded = false;
    const start = () => {
      this._loaded = true;
      this.connect();
    };
    ready.then(start, start);
  }

  get pending() {
    return this.outbox.filter((e) => e.status === "pending").length;
  }

  connect() {
    if (this.stopped || this.ws || !this._loaded) return;
    if (!navigator.onLine) return; // the "online" event reconnects
    const params = new URLSearchParams({ token: this.token, tandem: "1" });
    const ws = new WebSocket(`${this.url}/${this.docName}?${params}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.connected = true;
      this.sent = 0;
      this.attempt = 0;
      this.closeReason = null;
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, MESSAGE_SYNC);
      syncProtocol.writeSyncStep1(enc, this.doc);
      this._send(encoding.toUint8Array(enc), false);
      if (this.awareness && this.awareness.getLocalState() !== null) {
        this._onAwareness({ added: [this.doc.clientID], updated: [], removed: [] }, null);
      }
      this._changed();
    };
    ws.onmessage = (event) => this._receive(new Uint8Array(event.data));
    ws.onclose = (event) => {
      this.ws = null;
      const wasConnected = this.connected;
      this.connected = false;
      this.synced = false;
      if (this.awareness) {
        const others = Array.from(this.awareness.getStates().keys()).filter(
          (c) => c !== this.doc.clientID,
        );
        awarenessProtocol.removeAwarenessStates(this.awareness, others, this);
      }
      if (event.code >= 4000 || event.code === TRY_AGAIN_LATER) {
        this.closeReason = { code: event.code, reason: event.reason };
      }
      if (FINAL_CODES.has(event.code)) {
        this.stopped = true;
        this.dispatchEvent(new CustomEvent("fatal", { detail: this.closeReason }));
      } else if (event.code === TRY_AGAIN_LATER) {
        this._scheduleReconnect(retryAfterMs(event.reason));
      } else {
        this._scheduleReconnect(wasConnected);
      }
      this._changed();
    };
  }

  // Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... capped at 30 s; at least
  // `laterMs` (the server's "retry in N s"), spread by +-25% so a room's clients do not
  // all come back in the same instant.
  _scheduleReconnect(laterMs = 0) {
    if (this.stopped) return;
    const cap = Math.min(30000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    const backoff = Math.round(cap / 2 + Math.random() * (cap / 2));
    const later = typeof laterMs === "number" ? laterMs * (0.75 + Math.random() * 0.5) : 0;
    const delay = Math.max(backoff, Math.round(later));
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.connect(), delay);
  }

  // Force a fresh sync (pull to refresh): reconnect at once.
  resync() {
    clearTimeout(this._timer);
    this.stopped = false;
    if (this.ws) this.ws.close(1000, "resync");
    else this.connect();
  }

  disconnect() {
    this.stopped = true;
    clearTimeout(this._timer);
    if (this.ws) this.ws.close(1000, "bye");
  }

  destroy() {
    this.disconnect();
    window.removeEventListener("online", this._onOnline);
    window.removeEventListener("offline", this._onOffline);
    this.doc.off("update", this._onUpdate);
    if (this.awareness) this.awareness.off("update", this._onAwareness);
  }

  _syncMessage(type, payload) {
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, MESSAGE_SYNC);
    encoding.writeVarUint(enc, type);
    encoding.writeVarUint8Array(enc, payload);
    return encoding.toUint8Array(enc);
  }

  _send(bytes, counted) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return null;
    this.ws.send(bytes);
    if (counted) this.sent += 1;
    return counted ? this.sent : null;
  }

  _receive(bytes) {
    const dec = decoding.createDecoder(bytes);
    const type = decoding.readVarUint(dec);
    if (type === MESSAGE_SYNC) {
      const syncType = decoding.readVarUint(dec);
      if (syncType === SYNC_STEP1) {
        // answer with everything the server lacks: the offline edits, in one transaction
        const sv = decoding.readVarUint8Array(dec);
        const diff = Y.encodeStateAsUpdate(this.doc, sv);
        if (!this.pending && this._ahead(sv)) {
          // content the server lacks that no entry accounts for (made before a reload
          // whose list was lost): it is pending all the same until the server says so
          this.outbox.push({ id: this._nextId++, label: "offline changes", status: "pending", n: null });
        }
        const n = this._send(this._syncMessage(SYNC_STEP2, diff), true);
        for (const entry of this.outbox) if (entry.status === "pending") entry.n = n;
      } else {
        const update = decoding.readVarUint8Array(dec);
        Y.applyUpdate(this.doc, update, this);
        if (syncType === SYNC_STEP2 && !this.synced) {
          this.synced = true;
          this.dispatchEvent(new Event("synced"));
        }
      }
    } else if (type === MESSAGE_AWARENESS && this.awareness) {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(dec), this);
    } else if (type === MESSAGE_QUERY_AWARENESS && this.awareness) {
      this._onAwareness({ added: [this.doc.clientID], updated: [], removed: [] }, null);
    } else if (type === MESSAGE_AUTH) {
      // y-protocols' permission-denied: only sent to clients that did not ask for Tandem messages
    } else if (type === MESSAGE_TANDEM) {
      const message = JSON.parse(decoding.readVarString(dec));
      this._tandem(message);
    }
    this._changed();
  }

  _tandem(message) {
    const hits = this.outbox.filter((e) => e.n === message.n && e.status === "pending");
    if (message.type === "ack") {
      for (const e of hits) e.status = "saved";
    } else if (message.type === "rejected") {
      for (const e of hits) {
        e.status = "rejected";
        e.reason = message.reason;
      }
      this.dispatchEvent(new CustomEvent("rejected", { detail: message }));
    }
    // keep the outbox short: settled entries older than the newest 50 go
    const settled = this.outbox.filter((e) => e.status !== "pending");
    if (settled.length > 50) {
      const drop = new Set(settled.slice(0, settled.length - 50));
      this.outbox = this.outbox.filter((e) => !drop.has(e));
    }
  }

  // Whether this document holds structs the server's state vector `sv` has not seen.
  // (Deletions do not show in a state vector; the stored list accounts for those.)
  _ahead(sv) {
    const server = Y.decodeStateVector(sv);
    for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(this.doc))) {
      if (clock > (server.get(client) || 0)) return true;
    }
    return false;
  }

  _persist() {
    if (!this.storageKey) return;
    const labels = JSON.stringify(this.outbox.filter((e) => e.status === "pending").map((e) => e.label));
    if (labels === this._persisted) return;
    this._persisted = labels;
    try {
      if (labels === "[]") localStorage.removeItem(this.storageKey);
      else localStorage.setItem(this.storageKey, labels);
    } catch {
      // storage full or blocked: the in-memory outbox still tells the truth until a reload
    }
  }

  _changed() {
    this._persist();
    this.dispatchEvent(new Event("status"));
  }
}

const SYNC_UPDATE_TYPE = 2;
