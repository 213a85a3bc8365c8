// Fan-out load against any of three servers: N real Yjs clients in one Node process edit
// one task's description at full speed (one edit per client per event-loop turn, no pacing).
// FANOUT_FIELD=title edits the title instead, as every run before 2026-12-02 did: since
// Tandem limits titles to 500 characters (as REST does), its gate refuses and reverts every
// edit past that, so such a run measures refusals, not fan-out (and does not converge).
//
//   node fanout_peers.mjs <kind> <url> <docName> <token> <clients> <editsPerClient> [waitSeconds] [rate]
//
// rate: edits per second per client; 0 (default) is full speed, one round per event-loop turn.
//
// kind: "y-websocket" (stock y-websocket clients: Tandem, pycrdt-websocket) or
//       "hocuspocus" (@hocuspocus/provider: Hocuspocus v2+ frames every message with the
//       document name, so stock y-websocket clients cannot talk to it; the provider still
//       drives a real Y.Doc).
// Every arrival at another client is matched by (client id, clock) from the remote
// transaction's own update (Y.decodeUpdate(update).structs), never by walking text.
// Prints 'phase edit' / 'phase done' lines, then one JSON line: connect+sync time, delivered updates/s, p50/p99 latency, generator CPU.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import WebSocket from 'ws'
import { readFileSync } from 'node:fs'

const [kind, url, docName, token, nArg, mArg, waitArg, rateArg] = process.argv.slice(2)
const N = Number(nArg); const M = Number(mArg); const WAIT_S = Number(waitArg ?? 180)
const RATE = Number(rateArg ?? 0)
// Presence: by default every client announces a presence state on connect, as an app does
// (y-protocols' Awareness starts at clock 0 with an empty state, which no peer applies, so
// each client sets a `user` field: clock 1), and every server fans it out to the N-1
// others. FANOUT_PRESENCE=off clears every client's awareness state instead (a headless
// client has none).
const PRESENCE = process.env.FANOUT_PRESENCE !== 'off'
const FIELD = process.env.FANOUT_FIELD === 'title' ? 'title' : 'description'
// Warm-up: before the measured edits, every client makes WARMUP edits (one round each) and
// the generator waits until all have arrived. The first round costs both sides more than
// any later one (V8 compiles the generator's paths, the server fills its caches): at
// 200x10 it is a tenth of the arrivals and set the p99 by itself. Its p99 is reported
// apart (warmup_p99_ms); FANOUT_WARMUP=0 measures from a cold start.
const WARMUP = Number(process.env.FANOUT_WARMUP ?? 1)
const LOCAL = Symbol('local edit')
// A grown document: FANOUT_GROW=G makes client 0 connect alone first and make G edits to a
// task of its own (each its own transaction, as typing sends them: nine characters typed,
// then one deleted), before the other clients connect and sync the grown document from the
// server (which proves the server kept every one of them). The measured task is the same
// as on a fresh document; the document around it holds G edits of history.
const GROW = Number(process.env.FANOUT_GROW ?? 0)

function connect (i) {
  const doc = new Y.Doc()
  const user = { name: `client ${i}` }
  if (kind === 'hocuspocus') {
    let synced = false
    const provider = new HocuspocusProvider({
      url,
      name: docName,
      document: doc,
      token: token || null,
      WebSocketPolyfill: WebSocket,
      onSynced: () => { synced = true }
    })
    if (PRESENCE) provider.setAwarenessField('user', user)
    else provider.awareness?.setLocalState(null)
    return { doc, provider, isSynced: () => synced || provider.synced }
  }
  const provider = new WebsocketProvider(url, docName, doc, {
    WebSocketPolyfill: WebSocket,
    params: token ? { token } : {},
    disableBc: true,
    maxBackoffTime: 500
  })
  if (PRESENCE) provider.awareness.setLocalStateField('user', user)
  else provider.awareness.setLocalState(null)
  return { doc, provider, isSynced: () => provider.synced }
}

async function waitUntil (predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return true
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function newTask (marks = '') {
  // a task exactly as docs/document-schema.md describes it (Tandem's gate checks the schema)
  const task = new Y.Map()
  task.set('title', new Y.Text(FIELD === 'title' ? marks : 'bench'))
  task.set('description', new Y.Text(FIELD === 'description' ? marks : ''))
  task.set('status', 'todo')
  task.set('priority', 'medium')
  task.set('assignees', Y.Array.from([]))
  task.set('labels', Y.Array.from([]))
  task.set('depends_on', Y.Array.from([]))
  task.set('custom', new Y.Map())
  task.set('order', 'a0')
  task.set('created_by', 'bench')
  task.set('created_at', new Date().toISOString())
  return task
}

const sentAt = new Map() // `${client}:${clock}` -> ms
let latencies = []
let delivered = 0
let disconnects = 0
const cpu0 = process.cpuUsage()

const clients = []
let growMs = null
let grownLength = null
if (GROW > 0) {
  const tg = performance.now()
  const c0 = connect(0)
  clients.push(c0)
  await waitUntil(() => c0.isSynced(), Math.max(120, 2 * WAIT_S) * 1000, 'the first client synced')
  c0.doc.transact(() => { c0.doc.getMap('tasks').set('history', newTask()) }, LOCAL)
  const history = c0.doc.getMap('tasks').get('history').get('description')
  for (let g = 0; g < GROW; g++) {
    if (g % 10 === 9) history.delete(history.length - 1, 1)
    else history.insert(history.length, 'x')
    if (g % 500 === 499) await new Promise(resolve => setImmediate(resolve)) // sockets drain
  }
  grownLength = history.length
  growMs = performance.now() - tg
}
const t0 = performance.now()
for (let i = clients.length; i < N; i++) clients.push(connect(i))
await waitUntil(() => clients.every(c => c.isSynced()), Math.max(120, 2 * WAIT_S) * 1000, 'all clients synced')
if (GROW > 0) {
  await waitUntil(() => clients.every(c =>
    c.doc.getMap('tasks').get('history')?.get('description')?.length === grownLength),
  Math.max(120, 2 * WAIT_S) * 1000, 'the grown history everywhere')
}
const connectMs = performance.now() - t0
const connectCpu = process.cpuUsage(cpu0)

// One task, one shared text, N anchors: client 0 fills it with N '|' marks, and
// client i types right after its own last character (starting at mark i), so every edit is
// a text edit that fans out to all N clients, yet no two clients ever insert at the same
// place. (N clients inserting at one position would make every Y.Doc scan all conflicting
// items on each arrival: that bounds the generator, not the server.) The document stays
// small, so N=1,000 Y.Docs fit in one Node process.
const first = clients[0]
first.doc.transact(() => {
  first.doc.getMap('tasks').set('bench', newTask('|'.repeat(N))) // the marks go in FIELD
}, LOCAL)
await waitUntil(() => clients.every(c => c.doc.getMap('tasks').get('bench')?.get(FIELD)?.length === N),
  WAIT_S * 1000, 'task everywhere')

for (const c of clients) {
  c.doc.on('update', (update, origin) => {
    if (origin === LOCAL) return
    const now = performance.now()
    for (const s of Y.decodeUpdate(update).structs) {
      for (let k = 0; k < s.length; k++) {
        const t = sentAt.get(`${s.id.client}:${s.id.clock + k}`)
        if (t !== undefined) { latencies.push(now - t); delivered++ }
      }
    }
  })
  if (kind !== 'hocuspocus') c.provider.on('connection-close', () => { disconnects++ })
  else c.provider.on('disconnect', () => { disconnects++ })
}

const texts = clients.map(c => c.doc.getMap('tasks').get('bench').get(FIELD))
// a relative position glued to the left (assoc -1): right after mark i, then after my last char
const anchors = texts.map((t, i) => Y.createRelativePositionFromTypeIndex(t, i + 1, -1))
function editRound () { // one one-character edit per client
  for (let i = 0; i < N; i++) {
    const c = clients[i]
    const clock = Y.getState(c.doc.store, c.doc.clientID)
    sentAt.set(`${c.doc.clientID}:${clock}`, performance.now())
    const at = Y.createAbsolutePositionFromRelativePosition(anchors[i], c.doc).index
    c.doc.transact(() => texts[i].insert(at, 'x'), LOCAL)
    anchors[i] = Y.createRelativePositionFromTypeIndex(texts[i], at + 1, -1)
  }
}
for (let w = 0; w < WARMUP; w++) {
  editRound()
  await new Promise(resolve => setImmediate(resolve))
}
await waitUntil(() => delivered >= WARMUP * N * (N - 1), WAIT_S * 1000, 'warm-up deliveries')
const warmupLatencies = latencies.sort((a, b) => a - b)
latencies = []
delivered = 0
sentAt.clear()

const expected = N * M * (N - 1)
console.log('phase edit') // the runner samples the server's CPU at each phase line
// main thread's CPU + run-queue wait (/proc/self/schedstat): near the wall time means the
// generator's event loop wanted a core throughout, even when neighbours kept it off one
const busyS = () => {
  try {
    const [run, wait] = readFileSync('/proc/self/schedstat', 'utf8').split(' ').map(Number)
    return (run + wait) / 1e9
  } catch { return null }
}
const busy0 = busyS()
const heapMb = +(process.memoryUsage().heapUsed / 1e6).toFixed(1) // all N Y.Docs and their presence
const cpuEdit0 = process.cpuUsage()
const start = performance.now()
let lastRoundAt = start // the offered pace: (M - 1) rounds / (lastRoundAt - start)
for (let j = 0; j < M; j++) {
  lastRoundAt = performance.now()
  editRound()
  if (j === M - 1) break
  if (RATE > 0) { // paced: round j starts at j / RATE seconds
    const due = start + (j + 1) * 1000 / RATE
    await new Promise(resolve => setTimeout(resolve, Math.max(0, due - performance.now())))
  } else {
    await new Promise(resolve => setImmediate(resolve)) // let sockets flush and arrivals in
  }
}
let complete = true
try {
  await waitUntil(() => delivered >= expected, WAIT_S * 1000, 'all deliveries')
} catch (e) { complete = false }
const end = performance.now()
const busy1 = busyS()
console.log('phase done')
latencies.sort((a, b) => a - b)
const quantile = (xs, p) => xs.length ? Math.round(xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]) : null
const q = (p) => quantile(latencies, p)
const cpu = process.cpuUsage(cpuEdit0)
const converged = complete && new Set(texts.map(t => t.toString())).size === 1 &&
  texts[0].length === N * (M + 1 + WARMUP)
console.log(JSON.stringify({
  kind,
  clients: N,
  edits_per_client: M,
  rate: RATE,
  presence: PRESENCE,
  connect_ms: Math.round(connectMs),
  grow_edits: GROW,
  grow_ms: growMs === null ? null : Math.round(growMs),
  connect_generator_cpu_s: +((connectCpu.user + connectCpu.system) / 1e6).toFixed(2),
  generator_heap_mb: heapMb,
  expected,
  delivered,
  complete,
  converged,
  disconnects,
  seconds: +((end - start) / 1000).toFixed(2),
  last_round_at_s: +((lastRoundAt - start) / 1000).toFixed(3),
  delivered_per_s: Math.round(delivered / ((end - start) / 1000)),
  p50_ms: q(0.5),
  p99_ms: q(0.99),
  warmup_rounds: WARMUP,
  warmup_p99_ms: quantile(warmupLatencies, 0.99),
  generator_cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(2),
  generator_loop_busy: busy0 === null ? null : +((busy1 - busy0) / ((end - start) / 1000)).toFixed(2)
}))
for (const c of clients) c.provider.destroy()
process.exit(0)
