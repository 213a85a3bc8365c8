// How long a stock Yjs receiver takes to apply one broadcast update, as each of a room's
// clients does for every batch.
//   node apply_update.mjs <base.bin> <update.bin> [<update.bin> ...] [--repeat R]
// Each update is applied R times, each time to a fresh Y.Doc holding base.bin (the
// document before the batch), with an 'update' listener as y-websocket has one; the
// updates take turns. Prints one JSON line: per update file, the median ms of one apply
// and the items it carried.
import * as Y from 'yjs'
import { readFileSync } from 'node:fs'

const args = process.argv.slice(2)
const at = args.indexOf('--repeat')
const repeat = at >= 0 ? Number(args[at + 1]) : 200
const [basePath, ...updatePaths] = at >= 0 ? args.slice(0, at) : args
const base = readFileSync(basePath)
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const updates = updatePaths.map(path => readFileSync(path))
const samples = updates.map(() => [])
for (let i = 0; i < 20 + repeat; i++) { // the first 20 rounds warm the JIT up
  updates.forEach((update, k) => { // interleaved, so drift hits every update alike
    const doc = new Y.Doc()
    Y.applyUpdate(doc, base)
    doc.on('update', () => {})
    const t0 = performance.now()
    Y.applyUpdate(doc, update)
    if (i >= 20) samples[k].push(performance.now() - t0)
  })
}
const out = {}
updatePaths.forEach((path, k) => {
  out[path] = { apply_ms: +median(samples[k]).toFixed(4), items: Y.decodeUpdate(updates[k]).structs.length }
})
console.log(JSON.stringify(out))
