// Helpers for driving stock Yjs clients (yjs + y-websocket + ws) against a Tandem server.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

export { Y }

export function connect (wsBase, docName, token, opts = {}) {
  const { clientID, ...providerOpts } = opts
  const doc = new Y.Doc()
  if (clientID !== undefined) doc.clientID = clientID // before the provider reads it
  const provider = new WebsocketProvider(wsBase, docName, doc, {
    WebSocketPolyfill: WebSocket,
    params: { token },
    disableBc: true,
    maxBackoffTime: 500,
    ...providerOpts
  })
  return { doc, provider }
}

export function waitSynced (provider, timeoutMs = 10000) {
  if (provider.synced) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for sync')), timeoutMs)
    const onSync = (synced) => {
      if (synced) { clearTimeout(timer); provider.off('sync', onSync); resolve() }
    }
    provider.on('sync', onSync)
  })
}

export async function waitUntil (predicate, timeoutMs = 10000, what = 'condition') {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

// alice (at aliceBase) viewing t1 and bob viewing t2, synced, with bob seeing alice;
// seen() is alice's state as bob sees it.
export async function aliceSeenByBob (aliceBase, bobBase, docName, aliceToken, bobToken) {
  const alice = connect(aliceBase, docName, aliceToken)
  const bob = connect(bobBase, docName, bobToken)
  alice.provider.awareness.setLocalStateField('viewing', 't1')
  bob.provider.awareness.setLocalStateField('viewing', 't2')
  await Promise.all([waitSynced(alice.provider), waitSynced(bob.provider)])
  const seen = () => bob.provider.awareness.getStates().get(alice.doc.clientID)
  await waitUntil(() => seen()?.viewing === 't1', 10000, 'bob sees alice')
  return { alice, bob, seen }
}

// A task exactly as docs/document-schema.md describes it.
export function newTask (fields) {
  const task = new Y.Map()
  const title = new Y.Text(); title.insert(0, fields.title ?? '')
  const description = new Y.Text(); description.insert(0, fields.description ?? '')
  task.set('title', title)
  task.set('description', description)
  task.set('status', fields.status ?? 'todo')
  task.set('priority', fields.priority ?? 'medium')
  task.set('assignees', Y.Array.from(fields.assignees ?? []))
  task.set('labels', Y.Array.from(fields.labels ?? []))
  task.set('depends_on', Y.Array.from([]))
  task.set('custom', new Y.Map())
  task.set('order', fields.order ?? 'a0')
  task.set('created_by', fields.created_by ?? 'node')
  task.set('created_at', new Date().toISOString())
  return task
}

// Stock y-websocket reports the server's permission-denied message only with console.warn;
// collect those reasons so a script can tell a refusal from a merge.
export function collectDenials () {
  const denials = []
  const warn = console.warn
  console.warn = (...args) => {
    const text = args.join(' ')
    if (text.startsWith('Permission denied')) denials.push(text.split('\n').slice(1).join('\n'))
    else warn(...args)
  }
  return denials
}

export const snapshot = (doc) => JSON.stringify({
  tasks: doc.getMap('tasks').toJSON(),
  meta: doc.getMap('meta').toJSON()
}, Object.keys(doc.getMap('tasks').toJSON()).sort())

export const canonical = (value) => JSON.stringify(sortKeys(value))
function sortKeys (v) {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map(k => [k, sortKeys(v[k])]))
  }
  return v
}
