// A stock y-websocket client writing a rule straight into the project document's rules
// root (as an offline-capable editor would), then waiting until the server has it.
// usage: node write_rule.mjs WS_BASE DOC TOKEN RULE_ID RULE_JSON
import { Y, connect, waitSynced, waitUntil } from './lib.mjs'

const [wsBase, docName, token, ruleId, ruleJson] = process.argv.slice(2)
const { doc, provider } = connect(wsBase, docName, token)
await waitSynced(provider)
const rule = new Y.Map()
for (const [key, value] of Object.entries(JSON.parse(ruleJson))) rule.set(key, value)
doc.getMap('rules').set(ruleId, rule)
const check = connect(wsBase, docName, token)
await waitSynced(check.provider)
await waitUntil(() => check.doc.getMap('rules').has(ruleId), 10000, 'the rule to reach the server')
console.log('written')
check.provider.destroy()
provider.destroy()
process.exit(0)
