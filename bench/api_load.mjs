// HTTP load generator for bench/api_reads.py: C concurrent keep-alive requests for S seconds.
// usage: node bench/api_load.mjs URL TOKEN CONCURRENCY SECONDS [IF_NONE_MATCH]
import http from "node:http";

const [url, token, concurrency, seconds, etag] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(concurrency) });
const headers = { Authorization: `Bearer ${token}` };
if (etag) headers["If-None-Match"] = etag;
const latencies = [];
const statuses = {};
const deadline = performance.now() + Number(seconds) * 1000;
const cpuStart = process.cpuUsage();
const started = performance.now();

function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get(url, { agent, headers }, (res) => {
      res.on("data", () => {});
      res.on("end", () => {
        latencies.push(performance.now() - t0);
        statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
        resolve();
      });
    });
    req.on("error", (e) => {
      statuses.error = (statuses.error || 0) + 1;
      resolve();
    });
  });
}

async function worker() {
  while (performance.now() < deadline) await once();
}

await Promise.all(Array.from({ length: Number(concurrency) }, worker));
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
const cpu = process.cpuUsage(cpuStart);
console.log(
  JSON.stringify({
    requests: latencies.length,
    seconds: elapsed,
    per_s: latencies.length / elapsed,
    p50_ms: pick(0.5),
    p99_ms: pick(0.99),
    statuses,
    generator_cpu_s: (cpu.user + cpu.system) / 1e6,
  }),
);
agent.destroy();
