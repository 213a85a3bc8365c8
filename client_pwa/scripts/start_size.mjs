// JavaScript shipped at start: the scripts dist/index.html loads (entry + modulepreloads)
// and what the entry imports at once (the service worker helper), gzipped (level 9).
// Usage: node scripts/start_size.mjs [dist]   (prints JSON: files and KiB)
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const dist = process.argv[2] || "dist";
const html = readFileSync(join(dist, "index.html"), "utf8");
const files = new Set([...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]));
// registerSW({immediate: true}) imports workbox-window on start
for (const name of readdirSync(join(dist, "assets"))) if (name.startsWith("workbox-window")) files.add(`assets/${name}`);
const sizes = Object.fromEntries(
  [...files].map((f) => [f, +(gzipSync(readFileSync(join(dist, f)), { level: 9 }).length / 1024).toFixed(2)]),
);
const total = +Object.values(sizes).reduce((a, b) => a + b, 0).toFixed(2);
console.log(JSON.stringify({ files: sizes, total_kib_gzip: total }, null, 1));
