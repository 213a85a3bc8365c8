// A burst of typing reaches another stock client as few items, and reads the same.
// alice types a line one character per transaction (as an editor does, keystroke by
// keystroke) faster than the server's coalescing window. bob counts the items of alice's
// in the update messages as they come off his socket (his Y.Doc squashes what it
// integrates, so its own 'update' events cannot tell), and reads the title once all is in.
// Usage: node typing_burst.mjs <wsBase> <docName> <aliceToken> <bobToken> <line>
// Prints one JSON line: {alice, bob, characters, items, messages}.
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'
import { Y, connect, waitSynced, waitUntil, newTask } from './lib.mjs'

const [wsBase, docName, aliceToken, bobToken, line] = process.argv.slice(2)
const alice = connect(wsBase, docName, aliceToken)
const wire = [] // every sync update bob is sent
class TappedWebSocket extends WebSocket {
  constructor (...args) {
    super(...args)
    this.addEventListener('message', (event) => {
      const decoder = decoding.createDecoder(new Uint8Array(event.data))
      if (decoding.readVarUint(decoder) !== 0 || decoding.readVarUint(decoder) !== 2) return
      wire.push(decoding.readVarUint8Array(decoder))
    })
  }
}
const bob = connect(wsBase, docName, bobToken, { WebSocketPolyfill: TappedWebSocket })
await Promise.all([waitSynced(alice.provider), waitSynced(bob.provider)])

alice.doc.getMap('tasks').set('t1', newTask({ title: '' }))
await waitUntil(() => bob.doc.getMap('tasks').has('t1'), 10000, 'task at bob')
wire.length = 0

const title = alice.doc.getMap('tasks').get('t1').get('title')
for (const ch of line) title.insert(title.length, ch) // one transaction per keystroke
const bobTitle = () => bob.doc.getMap('tasks').get('t1').get('title').toString()
await waitUntil(() => bobTitle() === title.toString(), 10000, 'the line at bob')
const items = wire.flatMap(u => Y.decodeUpdate(u).structs)
  .filter(s => s.id.client === alice.doc.clientID && s.constructor.name === 'Item').length
console.log(JSON.stringify({
  alice: title.toString(), bob: bobTitle(), characters: title.length, items, messages: wire.length
}))
alice.provider.destroy(); bob.provider.destroy()
process.exit(0)
