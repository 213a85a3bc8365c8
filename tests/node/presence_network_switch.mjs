// Presence across a network switch, with stock y-websocket clients: alice reaches the
// server through a TCP relay (her network), bob directly. The switch drops alice's side of
// the relay and leaves the server's side open and silent, the way a phone that moved from
// Wi-Fi to mobile data leaves its old socket: no FIN reaches the server, which cannot
// tell for minutes. y-websocket reconnects through a new relay connection; alice moves;
// later the old socket finally closes.
// Usage: node presence_network_switch.mjs <wsBase> <docName> <aliceToken> <bobToken>
// Prints one JSON line: how long after her move bob saw it (null: not within 5 s),
// whether bob still sees her after the old socket closes, and the state she keeps herself.
import net from 'node:net'
import { aliceSeenByBob, waitSynced, waitUntil } from './lib.mjs'

const [wsBase, docName, aliceToken, bobToken] = process.argv.slice(2)
const server = new URL(wsBase)
const pairs = []
const relay = net.createServer((near) => {
  const far = net.connect(Number(server.port), server.hostname)
  near.pipe(far)
  far.pipe(near)
  near.on('error', () => {})
  far.on('error', () => {})
  pairs.push({ near, far })
})
await new Promise(resolve => relay.listen(0, '127.0.0.1', resolve))
const viaRelay = `ws://127.0.0.1:${relay.address().port}${server.pathname}`

const { alice, bob, seen } = await aliceSeenByBob(viaRelay, wsBase, docName, aliceToken, bobToken)

const old = pairs.pop()
old.far.unpipe(old.near)
old.near.unpipe(old.far)
old.far.pause() // the server's side stays open, and hears nothing more
old.near.destroy() // alice's side of the old network is gone
await waitUntil(() => !alice.provider.wsconnected, 5000, 'alice sees her socket drop')
await waitSynced(alice.provider, 10000) // y-websocket reconnects on its own, via the relay
alice.provider.awareness.setLocalStateField('viewing', 't3')
const moved = performance.now()
let movedMs = null
try {
  await waitUntil(() => seen()?.viewing === 't3', 5000, 'bob sees alice move')
  movedMs = Math.round(performance.now() - moved)
} catch {}
old.far.destroy() // the old socket finally closes
await new Promise(resolve => setTimeout(resolve, 1000))
const stillThere = seen()?.viewing ?? null
const own = alice.provider.awareness.getLocalState()?.viewing ?? null
console.log(JSON.stringify({ movedMs, stillThere, own }))
alice.provider.destroy()
bob.provider.destroy()
relay.close()
process.exit(0)
