// A member, offline, creates a task (allowed) and renames a task that is not theirs
// (forbidden); stock y-websocket sends both in one update when it reconnects.
// Prints {converged, a, b, denials} as JSON on the last line.
import { connect, collectDenials, waitSynced, waitUntil, newTask, canonical } from './lib.mjs'

const [wsBase, docName, managerToken, memberToken] = process.argv.slice(2)
const denials = collectDenials()

const a = connect(wsBase, docName, managerToken)
await waitSynced(a.provider)
const tasksA = a.doc.getMap('tasks')
a.doc.transact(() => tasksA.set('t1', newTask({ title: 'Design checkout flow', created_by: 'alice' })))

const b = connect(wsBase, docName, memberToken)
await waitSynced(b.provider)
const tasksB = b.doc.getMap('tasks')
await waitUntil(() => tasksB.has('t1'), 10000, 'B to receive t1')
b.provider.disconnect()
await waitUntil(() => !b.provider.wsconnected, 5000, 'B to go offline')

b.doc.transact(() => tasksB.set('t2', newTask({ title: 'Written offline', created_by: 'bob' })))
b.doc.transact(() => {
  const title = tasksB.get('t1').get('title')
  title.delete(0, title.length)
  title.insert(0, 'Renamed by bob')
})
b.doc.transact(() => tasksB.get('t2').set('priority', 'high'))

b.provider.connect()
await waitSynced(b.provider)
const same = () => canonical(tasksA.toJSON()) === canonical(tasksB.toJSON())
let converged = true
try {
  await waitUntil(() => same() && tasksA.has('t2') && denials.length > 0, 10000, 'convergence')
} catch (e) {
  converged = false
}
const out = { converged, a: tasksA.toJSON(), b: tasksB.toJSON(), denials }
a.provider.destroy(); b.provider.destroy()
console.log(canonical(out))
process.exit(0)
