// Stock Yjs clients (yjs + y-websocket) for tests/test_offline_sessions.py, driven over
// stdin/stdout, one JSON object a line, for as many sessions as the test runs:
//   <- {"session": {wsBase, docName, tokens: [..], clientIDs: [..], steps: [[client, op, n, text], ..]}}
//   -> {"ready": true}                 every client connected and synced
//   <- {"go": true}                    the steps run, paced like the Python clients' copy
//   -> {"stepped": true}               all steps done, every client back online
//   <- {"report": true}                (as often as asked)
//   -> {"states": [..], "denials": [..]}  once the clients agree, or after 5 s
//   <- {"end": true}                   clients destroyed; the next session may follow
// Steps whose client index is past this driver's clients belong to the Python side and
// are only waited for (STEP_MS each), so both sides edit at the same time.
import { createInterface } from 'node:readline'
import { connect, collectDenials, waitSynced, waitUntil } from './lib.mjs'
import { applyStep, view } from './session_ops.mjs'

const STEP_MS = 8
const denials = collectDenials()
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const next = async () => {
  const { value, done } = await lines.next()
  if (done) process.exit(0)
  return JSON.parse(value)
}
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

async function online (client) {
  client.provider.connect()
  client.chat.provider.connect()
  await Promise.all([waitSynced(client.provider), waitSynced(client.chat.provider)])
}

async function offline (client) {
  client.provider.disconnect()
  client.chat.provider.disconnect()
  await waitUntil(() => !client.provider.wsconnected && !client.chat.provider.wsconnected, 5000,
    'a client to go offline')
}

for (;;) {
  const { session } = await next()
  const { wsBase, docName, tokens, clientIDs, steps } = session
  denials.length = 0
  const clients = tokens.map((token, i) => ({
    ...connect(wsBase, docName, token, { clientID: clientIDs[i] }),
    chat: connect(wsBase, `${docName}/chat`, token, { clientID: clientIDs[i] })
  }))
  await Promise.all(clients.flatMap(c => [waitSynced(c.provider), waitSynced(c.chat.provider)]))
  say({ ready: true })
  await next() // go
  for (const [who, op, n, text] of steps) {
    const client = clients[who]
    if (client !== undefined) {
      if (op === 'toggle') await (client.provider.wsconnected ? offline(client) : online(client))
      else applyStep(client.doc, client.chat.doc, op, n, text, `node${who}`)
    }
    await sleep(STEP_MS)
  }
  await Promise.all(clients.filter(c => !c.provider.wsconnected).map(online))
  say({ stepped: true })
  for (;;) {
    const msg = await next()
    if (msg.end) break
    const agree = () => new Set(clients.map(c => JSON.stringify(view(c.doc, c.chat.doc)))).size === 1
    try { await waitUntil(agree, 5000, 'the clients to agree') } catch (e) {}
    say({ states: clients.map(c => view(c.doc, c.chat.doc)), denials: [...denials] })
  }
  for (const c of clients) { c.provider.destroy(); c.chat.provider.destroy() }
}

