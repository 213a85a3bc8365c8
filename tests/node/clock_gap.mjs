// A Yjs client's second update sent without its first, over a raw socket.
// Bob (a stock y-websocket client) watches throughout: he must never hold a struct of
// Alice's before everything it builds on, nor anything of hers before she resyncs.
// 1. Alice's second update alone: the server answers with a sync step 1 (its state
//    vector); she answers it with a step 2, as y-protocols does; Bob converges.
// 2. Again, but Alice drops the socket instead of answering; then her same Y.Doc comes
//    back through a stock y-websocket provider, which resyncs; Bob converges.
// Prints one JSON line.
// usage: node clock_gap.mjs WS_BASE DOC ALICE_TOKEN BOB_TOKEN
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import { Y, connect, newTask, waitSynced, waitUntil } from './lib.mjs'

const [wsBase, docName, aliceToken, bobToken] = process.argv.slice(2)
const SYNC = 0
const STEP1 = 0
const STEP2 = 1
const UPDATE = 2

const bob = connect(wsBase, docName, bobToken)
await waitSynced(bob.provider)
const ALICE = 4242
const alice = new Y.Doc()
alice.clientID = ALICE
const updates = []
alice.on('update', (u) => updates.push(u))

const out = { pendingSeen: false, earlySeen: [], step1Replies: [], converged: [] }
const bobHasOfAlice = () => Y.decodeStateVector(Y.encodeStateVector(bob.doc)).get(ALICE) ?? 0
bob.doc.on('update', () => {
  const store = bob.doc.store
  if (store.pendingStructs !== null || store.pendingDs !== null) out.pendingSeen = true
})
const tasks = (doc) => doc.getMap('tasks').toJSON()
// the server writes each new task's key in a transaction of its own, which a client may
// not have yet when it compares (and the raw socket of part 1 never applies it)
const withoutKeys = (doc) =>
  Object.fromEntries(Object.entries(tasks(doc)).map(([id, t]) => [id, { ...t, key: undefined }]))
const same = () => JSON.stringify(withoutKeys(bob.doc)) === JSON.stringify(withoutKeys(alice))

function syncMessage (type, payload) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, SYNC)
  encoding.writeVarUint(enc, type)
  encoding.writeVarUint8Array(enc, payload)
  return encoding.toUint8Array(enc)
}

// a raw socket: every sync message it receives, decoded as {type, payload}
async function rawSocket () {
  const ws = new WebSocket(`${wsBase}/${docName}?token=${aliceToken}`)
  ws.binaryType = 'arraybuffer'
  const got = []
  ws.on('message', (data) => {
    const dec = decoding.createDecoder(new Uint8Array(data))
    if (decoding.readVarUint(dec) !== SYNC) return
    const type = decoding.readVarUint(dec)
    got.push({ type, payload: decoding.readVarUint8Array(dec) })
  })
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject) })
  // the server's handshake: its step 1; answered with our empty step 2 so we are synced
  await waitUntil(() => got.some(m => m.type === STEP1), 10000, 'server step 1')
  ws.send(syncMessage(STEP2, Y.encodeStateAsUpdate(new Y.Doc(), got.find(m => m.type === STEP1).payload)))
  return { ws, got }
}

async function noLeak (what, had) {
  await new Promise(resolve => setTimeout(resolve, 600)) // long past a broadcast's delay
  if (bobHasOfAlice() !== had) out.earlySeen.push(what)
}

// -- 1: the gap, answered over the raw socket
alice.getMap('tasks').set('t1', newTask({ title: 'First' }))
alice.getMap('tasks').get('t1').get('title').insert(5, ' and second') // continues her run
const [, second] = updates.splice(0) // the first (creating t1) never goes out
let raw = await rawSocket()
let step1s = raw.got.filter(m => m.type === STEP1).length
raw.ws.send(syncMessage(UPDATE, second))
await waitUntil(() => raw.got.filter(m => m.type === STEP1).length > step1s, 10000, 'resync request')
const request = raw.got.filter(m => m.type === STEP1).at(-1).payload
out.step1Replies.push(Y.decodeStateVector(request).get(ALICE) ?? 0) // what it has of alice
await noLeak('gap', 0)
// answered as y-protocols' readSyncStep1 does: all we have beyond the server's vector
raw.ws.send(syncMessage(STEP2, Y.encodeStateAsUpdate(alice, request)))
await waitUntil(() => bob.doc.getMap('tasks').get('t1')?.get('title')?.toString() === 'First and second', 10000, 'bob sees both')
out.converged.push(same())
raw.ws.close()

// -- 2: the gap again; the socket drops; a stock provider on the same doc resyncs
const had = bobHasOfAlice()
alice.getMap('tasks').set('t2', newTask({ title: 'Third' }))
alice.getMap('tasks').get('t2').get('title').insert(5, ' and fourth')
const [, fourth] = updates.splice(0) // nor the third
raw = await rawSocket()
step1s = raw.got.filter(m => m.type === STEP1).length
raw.ws.send(syncMessage(UPDATE, fourth))
await waitUntil(() => raw.got.filter(m => m.type === STEP1).length > step1s, 10000, 'resync request')
raw.ws.close()
await noLeak('dropped', had)
out.beforeReconnect = Object.keys(tasks(bob.doc)).sort()
const provider = new WebsocketProvider(wsBase, docName, alice, {
  WebSocketPolyfill: WebSocket, params: { token: aliceToken }, disableBc: true
})
await waitSynced(provider)
await waitUntil(() => bob.doc.getMap('tasks').get('t2')?.get('title')?.toString() === 'Third and fourth', 10000, 'bob sees the reconnect')
out.converged.push(same())
out.tasks = tasks(alice)
console.log(JSON.stringify(out))
provider.destroy()
bob.provider.destroy()
process.exit(0)
