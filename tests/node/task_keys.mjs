// Task keys from three stock y-websocket clients: A and B create tasks at the same time,
// C creates some while offline and reconnects later. Then B tries to write a key (setting
// one on a task, and creating a task that carries one). Waits until A sees a key on every
// task; prints {tasks: {id: key}, denials, forged} as JSON on the last line.
import { connect, collectDenials, waitSynced, waitUntil, newTask, canonical } from './lib.mjs'

const [wsBase, docName, tokenA, tokenB, tokenC, countArg] = process.argv.slice(2)
const count = Number(countArg || 5)
const denials = collectDenials()

const a = connect(wsBase, docName, tokenA)
const b = connect(wsBase, docName, tokenB)
const c = connect(wsBase, docName, tokenC)
await Promise.all([waitSynced(a.provider), waitSynced(b.provider), waitSynced(c.provider)])

c.provider.disconnect()
await waitUntil(() => !c.provider.wsconnected, 5000, 'C to go offline')
for (let i = 0; i < count; i++) {
  c.doc.transact(() => c.doc.getMap('tasks').set(`c${i}`, newTask({ title: `offline ${i}`, created_by: 'carol' })))
}

// A and B at once: each transaction its own update, interleaved on the wire
for (let i = 0; i < count; i++) {
  a.doc.transact(() => a.doc.getMap('tasks').set(`a${i}`, newTask({ title: `from A ${i}`, created_by: 'alice' })))
  b.doc.transact(() => b.doc.getMap('tasks').set(`b${i}`, newTask({ title: `from B ${i}`, created_by: 'bob' })))
}
const tasksA = a.doc.getMap('tasks')
await waitUntil(() => ['a', 'b'].every(p => [...Array(count).keys()].every(i => tasksA.get(`${p}${i}`)?.get('key'))),
  20000, 'keys on A and B tasks')

c.provider.connect()
await waitSynced(c.provider)
await waitUntil(() => [...Array(count).keys()].every(i => tasksA.get(`c${i}`)?.get('key')),
  20000, 'keys on the offline tasks')

// B forges: a key of its own on an existing task, and a new task carrying a key
const tasksB = b.doc.getMap('tasks')
b.doc.transact(() => tasksB.get('b0').set('key', 'TDM-999'))
const forged = newTask({ title: 'forged', created_by: 'bob' })
forged.set('key', 'TDM-1000')
b.doc.transact(() => tasksB.set('forged', forged))
await waitUntil(() => denials.length >= 2, 10000, 'two refusals')
await waitUntil(() => tasksB.get('b0').get('key') !== 'TDM-999' && !tasksB.has('forged'), 10000,
  'B to see its forged keys reverted')

const keys = {}
for (const [id, task] of tasksA.entries()) keys[id] = task.get('key') ?? null
const out = { tasks: keys, denials, forged: { b0: tasksB.get('b0').get('key'), has_forged: tasksB.has('forged') } }
a.provider.destroy(); b.provider.destroy(); c.provider.destroy()
console.log(canonical(out))
process.exit(0)
