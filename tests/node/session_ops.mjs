// The random session's edits, on a stock Yjs document, as a third-party client would write
// them (docs/document-schema.md). tests/test_offline_sessions.py has the same edits for
// pycrdt clients: keep the two in step.
import { Y, newTask } from './lib.mjs'

const PRIORITIES = ['low', 'medium', 'high', 'urgent']
const STATUSES = ['todo', 'in_progress', 'review', 'done']

export function view (doc, chat) {
  return {
    tasks: doc.getMap('tasks').toJSON(),
    milestones: doc.getMap('milestones').toJSON(),
    meta: doc.getMap('meta').toJSON(),
    messages: chat.getArray('messages').toJSON()
  }
}

let messageCount = 0

export function applyStep (doc, chat, op, n, text, user) {
  if (op === 'chat') {
    const message = new Y.Map()
    message.set('id', `${user}-${chat.clientID}-${messageCount++}`)
    message.set('author', user)
    message.set('text', text)
    message.set('at', new Date().toISOString())
    chat.getArray('messages').push([message])
    return
  }
  const tasks = doc.getMap('tasks')
  const milestones = doc.getMap('milestones')
  const ids = [...tasks.keys()].sort()
  doc.transact(() => {
    if (op === 'create' || (ids.length === 0 && !['milestone', 'done', 'meta'].includes(op))) {
      tasks.set(`t${n % 4}`, newTask({ title: text, created_by: user, order: `a${n}` }))
      return
    }
    // the first few tasks only, so that clients often edit the same task at the same time
    const task = ids.length > 0 ? tasks.get(ids[n % Math.min(ids.length, 3)]) : undefined
    switch (op) {
      case 'title': {
        const title = task.get('title')
        title.insert(n % (title.length + 1), text)
        break
      }
      case 'untitle': {
        const title = task.get('title')
        if (title.length > 0) {
          const at = n % title.length
          title.delete(at, Math.min(3, title.length - at))
        }
        break
      }
      case 'describe': {
        const description = task.get('description')
        description.insert(n % (description.length + 1), text)
        break
      }
      case 'priority': task.set('priority', PRIORITIES[n % 4]); break
      case 'move':
        task.set('status', STATUSES[n % 4])
        task.set('order', `b${n}`)
        break
      case 'estimate': task.set('estimate', n % 40); break
      case 'due': task.set('due', `2027-0${1 + (n % 9)}-1${n % 10}`); break
      case 'assign': task.get('assignees').push([`${text.trim() || 'x'}${n % 3}`]); break
      case 'unassign': {
        const assignees = task.get('assignees')
        if (assignees.length > 0) assignees.delete(n % assignees.length, 1)
        break
      }
      case 'label': task.get('labels').insert(0, [text]); break
      case 'custom': task.get('custom').set(`c${n % 3}`, n % 2 ? text : n); break
      case 'delete': tasks.delete(ids[n % Math.min(ids.length, 3)]); break
      case 'milestone': {
        const m = new Y.Map()
        m.set('name', text || 'm')
        m.set('done', false)
        milestones.set(`m${n % 3}`, m)
        break
      }
      case 'done': {
        const m = milestones.get(`m${n % 3}`)
        if (m !== undefined) m.set('done', n % 2 === 0)
        else if (task !== undefined) task.set('milestone', `m${n % 3}`)
        break
      }
      case 'meta': doc.getMap('meta').set('name', `P ${text}`); break
      default: throw new Error(`unknown op ${op}`)
    }
  })
}
