// Load for bench/automation.py: N stock y-websocket clients, each moving its own task
// through the board's columns M times at full speed (one edit per client per event-loop
// turn), one transaction per edit: the status, and the title set to "<client>:<edit>" (the
// webhook's event carries the title the transaction left, so a delivery names its edit).
// An observer client waits until every task shows its last edit.
// Prints one JSON line: {"start", "done", "sent": {"<client>:<edit>": ms since epoch}}.
// RATE > 0 paces every client at RATE edits/s (round j is made j / RATE s in); 0: full speed.
// usage: node automation_load.mjs WS_BASE DOC TOKEN EDITS RATE TASK_ID...
import { connect, waitSynced, waitUntil } from '../../tests/node/lib.mjs'

const [wsBase, docName, token, editsArg, rateArg, ...taskIds] = process.argv.slice(2)
const edits = Number(editsArg)
const rate = Number(rateArg)
// each client moves its task through the board and back to the start, over and over
const COLUMNS = ['in_progress', 'review', 'done', 'todo']
const clients = taskIds.map(() => connect(wsBase, docName, token))
const observer = connect(wsBase, docName, token)
await Promise.all([...clients, observer].map(c => waitSynced(c.provider, 60000)))

const sent = {}
const start = Date.now()
for (let j = 0; j < edits; j++) {
  clients.forEach(({ doc }, i) => {
    const task = doc.getMap('tasks').get(taskIds[i])
    const label = `${i}:${j}`
    sent[label] = Date.now()
    doc.transact(() => {
      task.set('status', COLUMNS[j % COLUMNS.length])
      const title = task.get('title')
      title.delete(0, title.length)
      title.insert(0, label)
    })
  })
  if (rate > 0) {
    const wait = start + ((j + 1) * 1000) / rate - Date.now()
    await new Promise(resolve => setTimeout(resolve, Math.max(0, wait)))
  } else {
    await new Promise(resolve => setImmediate(resolve))
  }
}
const last = (i) => `${i}:${edits - 1}`
await waitUntil(
  () => taskIds.every((id, i) => observer.doc.getMap('tasks').get(id)?.get('title')?.toString() === last(i)),
  300000,
  'every edit to reach the observer'
)
const done = Date.now()
for (const c of [...clients, observer]) c.provider.destroy()
// a pipe takes 64 KiB at once: exit only once all of it is written
process.stdout.write(JSON.stringify({ start, done, sent }) + '\n', () => process.exit(0))
