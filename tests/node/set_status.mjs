// A stock y-websocket client moving tasks between columns, one transaction per task, the
// way the board does (tasks[id].status = column). Prints one JSON line: the tasks' statuses
// as the client sees them once the server has them.
// usage: node set_status.mjs WS_BASE DOC TOKEN STATUS TASK_ID...
import { connect, waitSynced, waitUntil } from './lib.mjs'

const [wsBase, docName, token, status, ...ids] = process.argv.slice(2)
const { doc, provider } = connect(wsBase, docName, token)
await waitSynced(provider)
const tasks = doc.getMap('tasks')
for (const id of ids) {
  const task = tasks.get(id)
  if (!task) throw new Error(`no task ${id}`)
  doc.transact(() => { task.set('status', status) })
}
// the server has every update once a fresh client sees them
const check = connect(wsBase, docName, token)
await waitSynced(check.provider)
await waitUntil(
  () => ids.every(id => check.doc.getMap('tasks').get(id)?.get('status') === status),
  10000,
  'the moves to reach the server'
)
console.log(JSON.stringify(Object.fromEntries(ids.map(id => [id, tasks.get(id).get('status')]))))
check.provider.destroy()
provider.destroy()
process.exit(0)
