// Idle clients for the memory bench: connect, sync, then sit still until told otherwise.
//   node idle_clients.mjs <kind> <url> <token> <clientsPerDoc> <doc1,doc2,...>
// kind: "y-websocket" or "hocuspocus" (as in fanout_peers.mjs). Clients carry no presence
// state (a headless client has none), so an idle connection sends nothing after its sync.
// Prints {"phase":"synced",...} once every client is synced. Then reads commands on stdin:
//   edit  the first client of every document adds one task; prints {"phase":"edited"}
//         once every other client of that document has it (or at once if it has none)
//   quit  closes every client and exits
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { HocuspocusProvider } from '@hocuspocus/provider'
import WebSocket from 'ws'
import readline from 'node:readline'

const [kind, url, token, perDocArg, docsArg] = process.argv.slice(2)
const PER_DOC = Number(perDocArg)
const docs = docsArg.split(',')

function connect (docName) {
  const doc = new Y.Doc()
  if (kind === 'hocuspocus') {
    let synced = false
    const provider = new HocuspocusProvider({
      url, name: docName, document: doc, token: token || null, WebSocketPolyfill: WebSocket,
      onSynced: () => { synced = true }
    })
    provider.awareness?.setLocalState(null)
    return { doc, provider, isSynced: () => synced || provider.synced }
  }
  const provider = new WebsocketProvider(url, docName, doc, {
    WebSocketPolyfill: WebSocket, params: token ? { token } : {}, disableBc: true
  })
  provider.awareness.setLocalState(null)
  return { doc, provider, isSynced: () => provider.synced }
}

async function waitUntil (predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

const t0 = performance.now()
const groups = docs.map(name => Array.from({ length: PER_DOC }, () => connect(name)))
const all = groups.flat()
await waitUntil(() => all.every(c => c.isSynced()), 120000, 'all clients synced')
console.log(JSON.stringify({ phase: 'synced', clients: all.length, connect_ms: Math.round(performance.now() - t0) }))

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  if (line.trim() === 'edit') {
    const id = `m${Date.now()}`
    for (const g of groups) {
      const d = g[0].doc
      d.transact(() => {
        const task = new Y.Map()
        task.set('title', new Y.Text('memory'))
        task.set('status', 'todo')
        task.set('order', 'a0')
        task.set('created_by', 'bench')
        task.set('created_at', new Date().toISOString())
        d.getMap('tasks').set(id, task)
      })
    }
    await waitUntil(() => groups.every(g => g.every(c => c.doc.getMap('tasks').has(id))), 120000, 'edits everywhere')
    console.log(JSON.stringify({ phase: 'edited' }))
  } else if (line.trim() === 'quit') {
    break
  }
}
for (const c of all) c.provider.destroy()
process.exit(0)
