// Fan-out load: N stock y-websocket clients in one Node process edit one task's title.
// Every client records when each of its edits was made; every arrival at another client
// is matched by (client id, clock) from the update's own structs, never by walking text.
// Usage: node fanout.mjs <wsBase> <docName> <token> <clients> <editsPerClient> <editsPerSecondPerClient>
// Prints one JSON line: connect time, delivered updates/s, p50/p99 latency, generator CPU.
import { Y, connect, waitSynced, waitUntil, newTask } from './lib.mjs'

const [wsBase, docName, token, nArg, mArg, rateArg, fieldArg] = process.argv.slice(2)
const FIELD = fieldArg || 'title' // the task's Y.Text typed into (a title is refused past 500 characters)
const N = Number(nArg); const M = Number(mArg); const RATE = Number(rateArg)
const sentAt = new Map() // `${client}:${clock}` -> ms
const latencies = []
let delivered = 0
const cpu0 = process.cpuUsage()

const t0 = performance.now()
const clients = []
for (let i = 0; i < N; i++) clients.push(connect(wsBase, docName, token))
await Promise.all(clients.map(c => waitSynced(c.provider, 60000)))
const connectMs = performance.now() - t0

const first = clients[0]
if (!first.doc.getMap('tasks').has('bench')) {
  first.doc.transact(() => first.doc.getMap('tasks').set('bench', newTask({ title: '' })))
}
await waitUntil(() => clients.every(c => c.doc.getMap('tasks').has('bench')), 30000, 'task everywhere')

for (const c of clients) {
  c.doc.on('update', (update, origin) => {
    if (origin !== c.provider) return
    const now = performance.now()
    for (const s of Y.decodeUpdate(update).structs) {
      for (let k = 0; k < s.length; k++) {
        const t = sentAt.get(`${s.id.client}:${s.id.clock + k}`)
        if (t !== undefined) { latencies.push(now - t); delivered++ }
      }
    }
  })
}

const expected = N * M * (N - 1)
const start = performance.now()
await Promise.all(clients.map(async (c) => {
  const text = c.doc.getMap('tasks').get('bench').get(FIELD)
  for (let j = 0; j < M; j++) {
    const clock = Y.getState(c.doc.store, c.doc.clientID)
    sentAt.set(`${c.doc.clientID}:${clock}`, performance.now())
    text.insert(0, 'x')
    await new Promise(resolve => setTimeout(resolve, 1000 / RATE))
  }
}))
const sendEnd = performance.now()
try {
  await waitUntil(() => delivered >= expected, 120000, 'all deliveries')
} catch (e) { /* report what arrived */ }
const end = performance.now()
latencies.sort((a, b) => a - b)
const q = (p) => latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]) : null
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({
  clients: N,
  edits_per_client: M,
  connect_ms: Math.round(connectMs),
  expected,
  delivered,
  seconds: +((end - start) / 1000).toFixed(2),
  send_seconds: +((sendEnd - start) / 1000).toFixed(2),
  delivered_per_s: Math.round(delivered / ((end - start) / 1000)),
  p50_ms: q(0.5),
  p99_ms: q(0.99),
  generator_cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(2)
}))
for (const c of clients) c.provider.destroy()
process.exit(0)
