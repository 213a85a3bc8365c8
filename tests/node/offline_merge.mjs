// Two stock y-websocket clients: B goes offline, both edit the same task (and B adds one),
// B reconnects. Prints the converged state as JSON on the last line; exits 1 if they differ.
import { connect, waitSynced, waitUntil, newTask, canonical } from './lib.mjs'

const [wsBase, docName, tokenA, tokenB] = process.argv.slice(2)

const a = connect(wsBase, docName, tokenA)
await waitSynced(a.provider)
const tasksA = a.doc.getMap('tasks')
a.doc.transact(() => tasksA.set('t1', newTask({ title: 'Write the spec', created_by: 'alice' })))

const b = connect(wsBase, docName, tokenB)
await waitSynced(b.provider)
const tasksB = b.doc.getMap('tasks')
await waitUntil(() => tasksB.has('t1'), 10000, 'B to receive t1')

b.provider.disconnect() // B is offline now
await waitUntil(() => !b.provider.wsconnected, 5000, 'B to go offline')

// Concurrent edits of the same task: both texts, different fields.
a.doc.transact(() => {
  const t1 = tasksA.get('t1')
  t1.get('title').insert(t1.get('title').length, ' (reviewed)')
  t1.set('status', 'in_progress')
})
b.doc.transact(() => {
  const t1 = tasksB.get('t1')
  t1.get('title').insert(0, 'Draft: ')
  t1.set('priority', 'high')
  t1.get('description').insert(0, 'written offline')
})
b.doc.transact(() => tasksB.set('t2', newTask({ title: 'Offline task', created_by: 'bob' })))

b.provider.connect()
await waitSynced(b.provider)
const same = () => canonical(tasksA.toJSON()) === canonical(tasksB.toJSON())
await waitUntil(() => same() && tasksA.has('t2'), 10000, 'A and B to converge')

const state = tasksA.toJSON()
a.provider.destroy(); b.provider.destroy()
console.log(canonical(state))
process.exit(same() ? 0 : 1)
