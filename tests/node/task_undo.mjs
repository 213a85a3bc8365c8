// Undo of a task's deletion by an offline stock Yjs client (Y.UndoManager), with a key the
// server gave. A (alice) creates three tasks and waits for their keys; deletes one (online,
// accepted), goes offline, undoes the deletion (the task comes back with its key), and
// reconnects. B (bob) watches. Then B forges: a new task carrying that key under another id,
// and A deletes another task and B re-creates its id with a different key: both refused.
// Prints {a, b, denials, restored} as JSON on the last line.
import { connect, collectDenials, waitSynced, waitUntil, newTask, canonical } from './lib.mjs'
import * as Y from 'yjs'

const [wsBase, docName, tokenA, tokenB] = process.argv.slice(2)
const denials = collectDenials()
const a = connect(wsBase, docName, tokenA)
const b = connect(wsBase, docName, tokenB)
await Promise.all([waitSynced(a.provider), waitSynced(b.provider)])
const tasksA = a.doc.getMap('tasks')
const tasksB = b.doc.getMap('tasks')
const USER = 'user' // the origin of A's own edits: the only ones its undo manager tracks
const undo = new Y.UndoManager(tasksA, { trackedOrigins: new Set([USER]), captureTimeout: 0 })

for (const id of ['t1', 't2', 't3']) {
  a.doc.transact(() => tasksA.set(id, newTask({ title: `task ${id}`, created_by: 'alice' })))
}
await waitUntil(() => ['t1', 't2', 't3'].every(id => tasksB.get(id)?.get('key') && tasksA.get(id)?.get('key')),
  20000, 'keys on every task')
const keyOf = (id) => tasksA.get(id).get('key')
const given = { t1: keyOf('t1'), t2: keyOf('t2'), t3: keyOf('t3') }

a.doc.transact(() => tasksA.delete('t2'), USER)
await waitUntil(() => !tasksB.has('t2'), 10000, 'B to see t2 deleted')

a.provider.disconnect()
await waitUntil(() => !a.provider.wsconnected, 5000, 'A to go offline')
undo.undo()
const restoredOffline = tasksA.get('t2')?.get('key') ?? null
a.provider.connect()
await waitSynced(a.provider)
await waitUntil(() => tasksB.get('t2')?.get('key') === given.t2, 10000, 'B to see t2 back with its key')
await new Promise(resolve => setTimeout(resolve, 500)) // a refusal would have come by now
const deniedAfterUndo = denials.length

// forgeries: t2's key on a new id; a deleted task's id re-created with another key
const copy = newTask({ title: 'copy', created_by: 'bob' })
copy.set('key', given.t2)
b.doc.transact(() => tasksB.set('copy', copy))
a.doc.transact(() => tasksA.delete('t3'), USER)
await waitUntil(() => !tasksB.has('t3'), 10000, 'B to see t3 deleted')
const other = newTask({ title: 'not t3', created_by: 'bob' })
other.set('key', given.t1)
b.doc.transact(() => tasksB.set('t3', other))
await waitUntil(() => denials.length >= deniedAfterUndo + 2, 10000, 'two refusals')
await waitUntil(() => !tasksB.has('copy') && !tasksB.has('t3'), 10000, 'B to see its forgeries reverted')

const keys = (tasks) => Object.fromEntries([...tasks.entries()].map(([id, t]) => [id, t.get('key') ?? null]))
const out = { a: keys(tasksA), b: keys(tasksB), given, restoredOffline, deniedAfterUndo, denials }
a.provider.destroy(); b.provider.destroy()
console.log(canonical(out))
process.exit(0)
