// Presence across a reconnect, with stock y-websocket clients: alice and bob see each
// other; alice's socket drops (a network cut, no close frame) and y-websocket reconnects
// it, announcing the state alice had; then alice moves to another task.
// Usage: node presence_reconnect.mjs <wsBase> <docName> <aliceToken> <bobToken>
// Prints one JSON line: how long bob went without seeing alice after her reconnect, and
// whether he saw her next move.
import { connect, waitSynced, waitUntil } from './lib.mjs'

const [wsBase, docName, aliceToken, bobToken] = process.argv.slice(2)
const alice = connect(wsBase, docName, aliceToken)
const bob = connect(wsBase, docName, bobToken)
alice.provider.awareness.setLocalStateField('viewing', 't1')
bob.provider.awareness.setLocalStateField('viewing', 't2')
await Promise.all([waitSynced(alice.provider), waitSynced(bob.provider)])
const aliceId = alice.doc.clientID
const seen = () => bob.provider.awareness.getStates().get(aliceId)
await waitUntil(() => seen()?.viewing === 't1', 10000, 'bob sees alice')

alice.provider.ws.terminate() // the cut: the server removes her presence, bob with it
await waitUntil(() => seen() === undefined, 10000, 'bob sees alice leave')
const cut = performance.now()
await waitSynced(alice.provider, 10000) // y-websocket reconnects on its own
let backMs = null
try {
  await waitUntil(() => seen()?.viewing === 't1', 5000, 'bob sees alice back')
  backMs = Math.round(performance.now() - cut)
} catch {}
alice.provider.awareness.setLocalStateField('viewing', 't3')
let moved = true
try {
  await waitUntil(() => seen()?.viewing === 't3', 5000, 'bob sees alice move')
} catch { moved = false }
console.log(JSON.stringify({ backMs, moved, user: seen()?.user ?? null }))
alice.provider.destroy()
bob.provider.destroy()
process.exit(0)
