// Presence across servers: alice on one server, bob on another, each viewing a task; prints
// what bob sees of alice (her state, with the user the server bound to it) as one JSON line.
// Usage: node presence_cross_node.mjs <aliceBase> <bobBase> <docName> <aliceToken> <bobToken>
import { aliceSeenByBob } from './lib.mjs'

const [aliceBase, bobBase, docName, aliceToken, bobToken] = process.argv.slice(2)
const started = performance.now()
const { alice, bob, seen } = await aliceSeenByBob(aliceBase, bobBase, docName, aliceToken, bobToken)
const seenMs = Math.round(performance.now() - started)
alice.provider.awareness.setLocalStateField('user', { id: 'mallory', name: 'Mallory' })
await new Promise(resolve => setTimeout(resolve, 500))
console.log(JSON.stringify({ seenMs, seen: seen() ?? null }))
alice.provider.destroy()
bob.provider.destroy()
process.exit(0)
