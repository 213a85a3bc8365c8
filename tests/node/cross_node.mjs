// Stock y-websocket clients spread over several servers: client i connects to base i mod n,
// creates `count` tasks of its own, and every client waits until it holds every client's.
// Usage: node cross_node.mjs <wsBase,wsBase,...> <docName> <token> <clients> <count>
// Prints one JSON line: whether all converged, and each client's sorted task ids' digest.
import { connect, waitSynced, waitUntil, newTask } from './lib.mjs'

const [bases, docName, token, nArg, countArg] = process.argv.slice(2)
const urls = bases.split(',')
const N = Number(nArg); const COUNT = Number(countArg)
const clients = []
for (let i = 0; i < N; i++) clients.push(connect(urls[i % urls.length], docName, token))
await Promise.all(clients.map(c => waitSynced(c.provider, 30000)))
await Promise.all(clients.map(async (c, i) => {
  for (let j = 0; j < COUNT; j++) {
    c.doc.transact(() => c.doc.getMap('tasks').set(`node-${i}-${j}`, newTask({ title: `from ${i}: ${j}` })))
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}))
const want = N * COUNT
const mine = (c) => [...c.doc.getMap('tasks').keys()].filter(k => k.startsWith('node-')).sort()
let converged = true
try {
  await waitUntil(() => clients.every(c => mine(c).length >= want), 30000, 'every task everywhere')
} catch { converged = false }
const views = clients.map(c => mine(c).join(','))
console.log(JSON.stringify({ converged, counts: clients.map(c => mine(c).length), same: views.every(v => v === views[0]) }))
for (const c of clients) c.provider.destroy()
process.exit(0)
