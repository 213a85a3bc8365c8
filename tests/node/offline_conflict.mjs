// Two stock y-websocket clients write the same field of the same task while one of them
// is offline; the offline one also creates a task. Its client id is the lower one, so in
// Yjs's order its write of the field loses to the online one's.
// Prints {tasks, denials} of both clients as JSON on the last line.
import { connect, collectDenials, waitSynced, waitUntil, newTask, canonical } from './lib.mjs'

const [wsBase, docName, tokenA, tokenB] = process.argv.slice(2)
const denials = collectDenials()

const a = connect(wsBase, docName, tokenA, { clientID: 2000000000 })
await waitSynced(a.provider)
const tasksA = a.doc.getMap('tasks')
a.doc.transact(() => tasksA.set('t1', newTask({ title: 'Design checkout flow', created_by: 'alice' })))

const b = connect(wsBase, docName, tokenB, { clientID: 1000 })
await waitSynced(b.provider)
const tasksB = b.doc.getMap('tasks')
await waitUntil(() => tasksB.has('t1'), 10000, 'B to receive t1')

b.provider.disconnect()
await waitUntil(() => !b.provider.wsconnected, 5000, 'B to go offline')

a.doc.transact(() => tasksA.get('t1').set('priority', 'urgent'))
// A's write has reached the server once a third client, online throughout, has it.
const c = connect(wsBase, docName, tokenA)
await waitSynced(c.provider)
await waitUntil(() => c.doc.getMap('tasks').get('t1')?.get('priority') === 'urgent', 10000,
  'the server to have A\'s priority')
c.provider.destroy()

b.doc.transact(() => {
  tasksB.set('t2', newTask({ title: 'Offline task', created_by: 'bob' }))
  tasksB.get('t1').set('priority', 'high')
})

b.provider.connect()
await waitSynced(b.provider)
const same = () => canonical(tasksA.toJSON()) === canonical(tasksB.toJSON())
let converged = true
try {
  await waitUntil(() => same() && tasksA.has('t2'), 5000, 'A and B to converge with t2')
} catch (e) {
  converged = false
}
const out = { converged, a: tasksA.toJSON(), b: tasksB.toJSON(), denials }
a.provider.destroy(); b.provider.destroy()
console.log(canonical(out))
process.exit(0)
