// A stock y-websocket client that stays connected until the server closes it.
// Prints "synced", then one JSON line per close: {"code", "reason", "tasks"} (the task ids
// its document holds when the close arrives), and exits after the first close.
// usage: node revoked.mjs WS_BASE DOC TOKEN
import { connect, waitSynced } from './lib.mjs'

const [wsBase, docName, token] = process.argv.slice(2)
const { doc, provider } = connect(wsBase, docName, token)
provider.on('connection-close', (event) => {
  const tasks = [...doc.getMap('tasks').keys()].sort()
  console.log(JSON.stringify({ code: event?.code, reason: event?.reason, tasks }))
  provider.destroy()
  process.exit(0)
})
await waitSynced(provider)
console.log('synced')
setTimeout(() => { console.log(JSON.stringify({ timeout: true })); process.exit(1) }, 30000)
