// Reconnect storm: N stock y-websocket clients sync and each write its own custom field of
// one task, then every socket drops at once (terminated without a close frame, like a
// network cut), every client edits while offline, and all reconnect at once (y-websocket's
// own reconnect). Prints one JSON line: timings, reconnect counts, and whether every client
// converged to the same state; with presence, also how long until every client, moving
// after the storm, is seen at its new place by every other (all are one user's clients;
// null: not within 10 s).
// Usage: node reconnect_storm.mjs <wsBase> <docName> <token> <clients> [presence on|off]
// presence "off" clears each client's awareness state (as a headless client has none), so
// no presence is sent; "on" (default) sets a `user` field, as an app does, which every
// client announces on each connect and the server fans out to all others. (y-protocols'
// initial empty state has clock 0, which no peer applies: it alone would relay nothing.)
import { Y, connect, waitSynced, waitUntil, newTask, canonical } from './lib.mjs'

const [wsBase, docName, token, nArg, presence] = process.argv.slice(2)
const N = Number(nArg)

const t0 = performance.now()
const clients = []
for (let i = 0; i < N; i++) clients.push(connect(wsBase, docName, token))
clients.forEach((c, i) => {
  if (presence === 'off') c.provider.awareness.setLocalState(null)
  else c.provider.awareness.setLocalStateField('user', { name: `client ${i}` })
})
await Promise.all(clients.map(c => waitSynced(c.provider, 60000)))
const connectMs = performance.now() - t0

const first = clients[0]
first.doc.transact(() => first.doc.getMap('tasks').set('storm', newTask({ title: 'storm' })))
await waitUntil(() => clients.every(c => c.doc.getMap('tasks').has('storm')), 30000, 'task everywhere')
// each client writes its own key of the task's custom fields: no two clients conflict
const custom = (c) => c.doc.getMap('tasks').get('storm').get('custom')
const hasAll = (c, value) => {
  const m = custom(c)
  for (let i = 0; i < N; i++) if (m.get(`c${i}`) !== value) return false
  return true
}

// online round: every client writes its key once
clients.forEach((c, i) => custom(c).set(`c${i}`, 'on'))
await waitUntil(() => clients.every(c => hasAll(c, 'on')), 60000, 'online edits everywhere')

// the storm: every socket dies at once, every client edits offline, all reconnect
let reconnects = 0
let errors = 0
for (const c of clients) {
  c.reconnected = false
  c.provider.on('status', ({ status }) => {
    if (status === 'connected') { reconnects++; c.reconnected = true }
  })
  c.provider.on('connection-error', () => { errors++ })
}
const tDrop = performance.now()
for (const c of clients) c.provider.ws?.terminate()
clients.forEach((c, i) => custom(c).set(`c${i}`, 'off'))
await waitUntil(() => clients.every(c => c.reconnected), 60000, 'every client reconnected')
const reconnectMs = performance.now() - tDrop
await waitUntil(() => clients.every(c => c.provider.synced && hasAll(c, 'off')), 60000,
  'offline edits everywhere')
const convergeMs = performance.now() - tDrop

// presence after the storm: every client moves, and every client sees every move within
// 10 s, before y-protocols' 15 s renewal could paper over a move the server refused
let movesSeenMs = null
if (presence !== 'off') {
  const ids = clients.map(c => c.doc.clientID)
  const seesEveryMove = (c) => {
    const states = c.provider.awareness.getStates()
    return ids.every(id => states.get(id)?.round === 'after')
  }
  const tMove = performance.now()
  clients.forEach(c => c.provider.awareness.setLocalStateField('round', 'after'))
  try {
    await waitUntil(() => clients.every(seesEveryMove), 10000, 'every move seen by every client')
    movesSeenMs = performance.now() - tMove
  } catch {}
}

const states = clients.map(c => Y.encodeStateVector(c.doc).toString())
const texts = new Set(clients.map(c => canonical(c.doc.getMap('tasks').toJSON())))
const result = {
  clients: N,
  presence: presence ?? 'on',
  connect_ms: Math.round(connectMs),
  reconnect_ms: Math.round(reconnectMs),
  converge_ms: Math.round(convergeMs),
  moves_seen_ms: movesSeenMs === null ? null : Math.round(movesSeenMs),
  reconnects,
  connection_errors: errors,
  distinct_texts: texts.size,
  distinct_state_vectors: new Set(states).size,
  custom: custom(first).toJSON()
}
for (const c of clients) c.provider.destroy()
console.log(JSON.stringify(result))
process.exit(texts.size === 1 ? 0 : 1)
