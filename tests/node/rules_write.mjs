// A stock y-websocket client writing automation rules the way a Yjs app would (a Y.Map per
// rule, plain JSON inside): first an invalid one, then a valid one, each its own transaction.
// Prints one JSON line: {"rules": [...ids the client holds once the server has answered]}.
// usage: node rules_write.mjs WS_BASE DOC TOKEN INVALID_JSON VALID_JSON
import { connect, waitSynced, waitUntil, Y } from './lib.mjs'

const [wsBase, docName, token, invalid, valid] = process.argv.slice(2)
const { doc, provider } = connect(wsBase, docName, token)
await waitSynced(provider)
const rules = doc.getMap('rules')

function put (id, json) {
  doc.transact(() => {
    const rule = new Y.Map()
    for (const [key, value] of Object.entries(JSON.parse(json))) rule.set(key, value)
    rules.set(id, rule)
  })
}

put('bad', invalid)
put('good', valid)
// the server reverts the refused transaction: its undo arrives as an ordinary update
await waitUntil(() => !rules.has('bad') && rules.has('good'), 10000, 'the server verdicts')
console.log(JSON.stringify({ rules: [...rules.keys()].sort() }))
provider.destroy()
process.exit(0)
