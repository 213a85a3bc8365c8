// Presence across a reconnect, with stock y-websocket clients: alice and bob see each
// other; alice's socket drops (a network cut, no close frame) and y-websocket reconnects
// it, announcing the state alice had; then alice moves to another task: once bob has seen
// her back (mode "after-back"), or the instant her socket reopens, before a word from the
// server can reach her (mode "at-once": a cursor that moves while the network comes back).
// Usage: node presence_reconnect.mjs <wsBase> <docName> <aliceToken> <bobToken> [mode]
// Prints one JSON line: how long bob went without seeing alice after her reconnect, whether
// he saw her move, and the state alice ends with herself.
import { aliceSeenByBob, waitSynced, waitUntil } from './lib.mjs'

const [wsBase, docName, aliceToken, bobToken, mode = 'after-back'] = process.argv.slice(2)
const { alice, bob, seen } = await aliceSeenByBob(wsBase, wsBase, docName, aliceToken, bobToken)

const move = () => alice.provider.awareness.setLocalStateField('viewing', 't3')
if (mode === 'at-once') {
  // y-websocket says "connected", then announces the state alice left with: move right after
  alice.provider.on('status', ({ status }) => { if (status === 'connected') setImmediate(move) })
}
alice.provider.ws.terminate() // the cut: the server removes her presence, bob with it
await waitUntil(() => seen() === undefined, 10000, 'bob sees alice leave')
const cut = performance.now()
await waitSynced(alice.provider, 10000) // y-websocket reconnects on its own
let backMs = null
let back = null // what bob first sees her viewing when she is back
try {
  await waitUntil(() => seen() !== undefined, 5000, 'bob sees alice back')
  backMs = Math.round(performance.now() - cut)
  back = seen().viewing
} catch {}
if (mode !== 'at-once') move()
let moved = true
try {
  await waitUntil(() => seen()?.viewing === 't3', 5000, 'bob sees alice move')
} catch { moved = false }
const own = alice.provider.awareness.getLocalState()?.viewing ?? null
console.log(JSON.stringify({ backMs, back, moved, user: seen()?.user ?? null, own }))
alice.provider.destroy()
bob.provider.destroy()
process.exit(0)
