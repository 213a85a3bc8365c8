// Offline merge: client B queues T transactions while offline, then reconnects; time until
// B is synced again and until client A has seen every one of them.
//   node offline_merge.mjs <kind> <url> <docName> <token> <transactions>
// kind: "y-websocket" or "hocuspocus" (as in fanout_peers.mjs). Each offline transaction
// appends one character to a task's title (B's own, made while online) and, every tenth,
// sets a custom field, so the merged update holds T transactions of two kinds.
// Prints one JSON line.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import WebSocket from 'ws'

const [kind, url, docName, token, tArg] = process.argv.slice(2)
const T = Number(tArg)

function connect () {
  const doc = new Y.Doc()
  if (kind === 'hocuspocus') {
    let synced = false
    const provider = new HocuspocusProvider({
      url, name: docName, document: doc, token: token || null, WebSocketPolyfill: WebSocket,
      onSynced: () => { synced = true },
      onDisconnect: () => { synced = false }
    })
    return {
      doc, provider, isSynced: () => synced,
      disconnect: () => provider.disconnect(),
      reconnect: () => provider.connect()
    }
  }
  const provider = new WebsocketProvider(url, docName, doc, {
    WebSocketPolyfill: WebSocket, params: token ? { token } : {}, disableBc: true, maxBackoffTime: 500
  })
  return {
    doc, provider, isSynced: () => provider.synced,
    disconnect: () => provider.disconnect(),
    reconnect: () => provider.connect()
  }
}

async function waitUntil (predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  throw new Error(`timed out waiting for ${what}`)
}

const a = connect(); const b = connect()
await waitUntil(() => a.isSynced() && b.isSynced(), 30000, 'both synced')
const tasks = (c) => c.doc.getMap('tasks')
b.doc.transact(() => {
  const task = new Y.Map()
  task.set('title', new Y.Text())
  task.set('description', new Y.Text())
  task.set('status', 'todo')
  task.set('custom', new Y.Map())
  task.set('order', 'a0')
  task.set('created_by', 'bench')
  task.set('created_at', new Date().toISOString())
  tasks(b).set('offline', task)
})
await waitUntil(() => tasks(a).has('offline'), 30000, 'A to see the task')

b.disconnect()
await waitUntil(() => !b.isSynced(), 10000, 'B offline')
const taskB = tasks(b).get('offline')
for (let i = 0; i < T; i++) {
  b.doc.transact(() => {
    taskB.get('title').insert(taskB.get('title').length, 'x')
    if (i % 10 === 0) taskB.get('custom').set('n', i)
  })
}
const queued = Y.encodeStateAsUpdate(b.doc, Y.encodeStateVector(a.doc)).length
const cpu0 = process.cpuUsage()
const t0 = performance.now()
b.reconnect()
let syncedMs = null
const titleA = () => tasks(a).get('offline').get('title').length
await waitUntil(() => {
  if (syncedMs === null && b.isSynced()) syncedMs = performance.now() - t0
  return titleA() === T
}, 120000, 'A to see every offline transaction')
const seenMs = performance.now() - t0
if (syncedMs === null) {
  await waitUntil(() => b.isSynced(), 30000, 'B synced')
  syncedMs = performance.now() - t0
}
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({
  kind,
  transactions: T,
  queued_update_bytes: queued,
  reconnect_synced_ms: +syncedMs.toFixed(1),
  seen_by_other_ms: +seenMs.toFixed(1),
  generator_cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(3)
}))
a.provider.destroy(); b.provider.destroy()
process.exit(0)
