// A stock y-websocket client writing a rule straight into the project document's rules
// root (as an offline-capable editor would), then waiting until the server has it.
// Without --merge the entry is replaced by a new map of RULE_JSON's keys; with --merge
// only RULE_JSON's keys are set on the existing entry (an edit of one field).
// usage: node write_rule.mjs WS_BASE DOC TOKEN RULE_ID RULE_JSON [--merge]
import { Y, connect, waitSynced, waitUntil } from './lib.mjs'

const [wsBase, docName, token, ruleId, ruleJson, mode] = process.argv.slice(2)
const fields = JSON.parse(ruleJson)
const { doc, provider } = connect(wsBase, docName, token)
await waitSynced(provider)
const rules = doc.getMap('rules')
if (mode === '--merge') {
  const rule = rules.get(ruleId)
  if (!rule) throw new Error(`no rule ${ruleId}`)
  doc.transact(() => { for (const [key, value] of Object.entries(fields)) rule.set(key, value) })
} else {
  const rule = new Y.Map()
  for (const [key, value] of Object.entries(fields)) rule.set(key, value)
  rules.set(ruleId, rule)
}
const check = connect(wsBase, docName, token)
await waitSynced(check.provider)
const plain = (value) => (value && typeof value.toJSON === 'function' ? value.toJSON() : value)
// JSON with sorted keys: the encoding does not keep an object's key order
const canon = (value) => JSON.stringify(value, (_k, v) =>
  v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.keys(v).sort().map(k => [k, v[k]]))
    : v)
const stored = () => {
  const rule = check.doc.getMap('rules').get(ruleId)
  return rule && Object.entries(fields).every(([k, v]) => canon(plain(rule.get(k))) === canon(v))
}
try {
  await waitUntil(stored, 10000, 'the rule to reach the server')
} catch (e) {
  console.error(JSON.stringify(plain(check.doc.getMap('rules').get(ruleId))))
  throw e
}
console.log('written')
check.provider.destroy()
provider.destroy()
process.exit(0)
