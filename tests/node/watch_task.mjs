// A stock y-websocket client watching one task: prints "ready" once synced, then waits
// until the task's status is the one wanted and it has at least N links, and prints the
// task as JSON on the last line (exit 1 on timeout, with the task as it was).
import { connect, waitSynced, waitUntil, canonical } from './lib.mjs'

const [wsBase, docName, token, taskId, status, minLinks, timeoutMs] = process.argv.slice(2)
const { doc, provider } = connect(wsBase, docName, token)
await waitSynced(provider)
console.log('ready')
const task = () => doc.getMap('tasks').get(taskId)
let ok = true
try {
  await waitUntil(() => task()?.get('status') === status &&
    (task()?.get('links')?.length ?? 0) >= Number(minLinks), Number(timeoutMs || 15000),
  `task ${taskId} to be ${status}`)
} catch (e) {
  ok = false
}
console.log(canonical({ ok, task: task()?.toJSON() ?? null }))
provider.destroy()
process.exit(ok ? 0 : 1)
