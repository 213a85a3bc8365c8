// Presence while N clients connect at once: what each client receives and sends back.
//
//   node presence_connect.mjs <kind> <url> <docName> <token> <clients> <presence> [settleSeconds]
//
// kind: "y-websocket" (stock clients: Tandem) or "hocuspocus" (@hocuspocus/provider).
// presence: "initial" keeps y-protocols' initial state (clock 0, an empty object, which no
// peer applies), "user" sets a `user` field first (clock 1, as an app does), "off" clears it.
// Every frame each client's socket receives and sends is counted, from the first connect
// until `settleSeconds` after the last client synced. Prints one JSON line.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import WebSocket from 'ws'

const [kind, url, docName, token, nArg, presence, settleArg] = process.argv.slice(2)
const N = Number(nArg)
const SETTLE_MS = Number(settleArg ?? 3) * 1000
const counts = { frames_in: 0, bytes_in: 0, frames_out: 0, bytes_out: 0 }
const size = (data) => data.byteLength ?? data.length

class CountingWebSocket extends WebSocket {
  constructor (...args) {
    super(...args)
    this.on('message', (data) => { counts.frames_in++; counts.bytes_in += size(data) })
  }

  send (data, ...rest) {
    counts.frames_out++
    counts.bytes_out += size(data)
    return super.send(data, ...rest)
  }
}

function connect (i) {
  const doc = new Y.Doc()
  let provider
  let synced = false
  if (kind === 'hocuspocus') {
    provider = new HocuspocusProvider({
      url, name: docName, document: doc, token: token || null,
      WebSocketPolyfill: CountingWebSocket, onSynced: () => { synced = true }
    })
  } else {
    provider = new WebsocketProvider(url, docName, doc, {
      WebSocketPolyfill: CountingWebSocket, params: token ? { token } : {}, disableBc: true
    })
    provider.on('sync', (s) => { synced = synced || s })
  }
  if (presence === 'user') provider.awareness.setLocalStateField('user', { name: `client ${i}` })
  else if (presence === 'off') provider.awareness.setLocalState(null)
  return { provider, isSynced: () => synced }
}

const cpu0 = process.cpuUsage()
const t0 = performance.now()
const clients = []
for (let i = 0; i < N; i++) clients.push(connect(i))
while (!clients.every(c => c.isSynced())) {
  if (performance.now() - t0 > 120000) throw new Error('timed out waiting for all clients to sync')
  await new Promise(resolve => setTimeout(resolve, 10))
}
const connectMs = performance.now() - t0
const connectCpu = process.cpuUsage(cpu0)
await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
const cpu = process.cpuUsage(cpu0)
const seen = clients.map(c => c.provider.awareness.getStates().size)
console.log(JSON.stringify({
  kind,
  clients: N,
  presence,
  connect_ms: Math.round(connectMs),
  connect_generator_cpu_s: +((connectCpu.user + connectCpu.system) / 1e6).toFixed(2),
  generator_cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(2),
  ...counts,
  // how many clients' presence the median client knows at the end (itself included)
  states_known_median: seen.sort((a, b) => a - b)[Math.floor(N / 2)]
}))
for (const c of clients) c.provider.destroy()
process.exit(0)
