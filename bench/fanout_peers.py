"""Fan-out against peers: Tandem (gate on) vs Hocuspocus vs stock pycrdt-websocket, same load.

    .venv/bin/python -m bench.fanout_peers [--sizes 50x100@20,...,50x100,200x10,1000x1]
        [--repeat 3] [--pycrdt-repeat 1] [--peers tandem,hocuspocus,pycrdt] [--wait 60]

For each size NxM, N real Yjs clients in one Node process (bench/node/fanout_peers.mjs)
make one warm-up round of edits, then each make M one-character edits to one task's
description (--field title: its title), at full speed or at R edits/s per client for NxM@R; every other client must
receive each edit. Reported per server: connect+sync time of all N, the edits/s the
generator offered, delivered updates/s (deliveries / time from the first measured edit to
the last arrival), p50/p99 latency from an edit to its arrival (and the warm-up round's
p99 apart), and CPU seconds of the server (/proc/<pid>/stat) and of the generator
(process.cpuUsage) over the measured edits, so a reader sees which side bounds it.

Targets (see ``targets``): rate at full speed; p99 only between runs offered the same
load, since at full speed each client library sets its own pace (the Hocuspocus provider
costs the generator more per edit than y-websocket does). The default sizes are the
README's run: p99 by offered load up to full speed.

Servers, each a fresh process per run, runs interleaved so drift hits all alike:
  tandem      `tandem serve` on SQLite (durable appends), permission gate on: every
              client authenticates with a token of a user granted "manager" on the project
  tandem@DIR  the same from another checkout (its own .venv, code, CLI and schema), e.g.
              the code before a change: `git worktree add /tmp/tandem-before <commit>`,
              `make setup` there, then --peers tandem,tandem@/tmp/tandem-before
  hocuspocus  @hocuspocus/server with default settings (bench/node/hocuspocus_server.mjs),
              driven by @hocuspocus/provider (its own framing: doc name on every message)
  pycrdt      ASGIServer(WebsocketServer()) from pycrdt-websocket on Hypercorn defaults
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, ServerProcess, free_port, start_server

from .common import RESULTS, write_result

NODE = Path(__file__).resolve().parent / "node"
PEERS = ("tandem", "hocuspocus", "pycrdt")
# the README's run: p99 by offered load up to each size's full speed, then 1,000 clients
SWEEP = (
    *(f"50x100@{r}" for r in (20, 40, 60, 80, 120)),
    "50x100",
    *(f"200x10@{r}" for r in (2.5, 5)),
    "200x10",
    "1000x1",
    "1000x1-np",
)


def parse_key(key: str) -> tuple[str, str, bool]:
    """``50x100@20-np`` -> ``("50x100", "20", False)``: the size NxM, the pace ("": full
    speed), and whether the clients have presence state."""
    spec, presence = key.removesuffix("-np"), not key.endswith("-np")
    size, _, rate = spec.partition("@")
    return size, rate, presence


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main_thread_busy_s(pid: int) -> float:
    """Seconds the process's main thread ran or waited for a CPU (/proc/<pid>/schedstat).

    On a shared machine a saturated event loop shows as CPU time plus run-queue wait;
    their sum over the wall time near 1.0 means that side wanted a whole core throughout.
    """
    run_ns, wait_ns, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return (int(run_ns) + int(wait_ns)) / 1e9


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not open its port")


def tandem_variant(name: str) -> dict[str, str] | None:
    """``tandem`` -> {}; ``tandem+TANDEM_X=1+TANDEM_Y=2`` -> those settings (an A/B
    variant run interleaved with the others); ``tandem@DIR`` (settings allowed too) is
    the Tandem of another checkout, see ``other_checkout``; any other peer -> None."""
    base, *settings = name.split("+")
    if base != "tandem" and not base.startswith("tandem@"):
        return None
    env = dict(s.split("=", 1) for s in settings)
    if not all(k.startswith("TANDEM_") for k in env):
        raise SystemExit(f"{name}: a variant sets TANDEM_* variables only")
    return env


def other_checkout(name: str) -> Path | None:
    """``tandem@/tmp/tandem-before`` -> that directory: a checkout of another commit with
    its own ``.venv`` (``make setup`` there), run as a peer against this one, e.g. the code
    before a change (``git worktree add /tmp/tandem-before <commit>``)."""
    base = name.split("+")[0]
    if not base.startswith("tandem@"):
        return None
    root = Path(base.removeprefix("tandem@")).resolve()
    if not (root / ".venv" / "bin" / "python").exists():
        raise SystemExit(f"{name}: {root}/.venv/bin/python is missing (run `make setup` there)")
    return root


class OtherCheckoutServer(ServerProcess):
    """A Tandem server from another checkout: its own Python, code and CLI (the database
    is made, and its users, tokens and grants written, by that checkout's code)."""

    checkout: Path = ROOT

    def _python(self, code: str, *args: str) -> str:
        out = subprocess.run(
            [str(self.checkout / ".venv" / "bin" / "python"), "-c", code, *args],
            cwd=self.checkout,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{self.checkout}: {out.stderr.strip()[-500:]}")
        return out.stdout

    def token(self, user: str = "alice") -> str:
        if user not in self.tokens:
            code = (
                "import sys; from pathlib import Path; from tests.conftest import make_token;"
                " print(make_token(Path(sys.argv[1]), sys.argv[2]))"
            )
            self.tokens[user] = self._python(code, str(self.db), user).strip().splitlines()[-1]
        return self.tokens[user]

    def grant(self, user: str, project: str, role: str = "owner", **kw) -> None:
        code = (
            "import sys; from pathlib import Path; from tests.conftest import grant_role;"
            " grant_role(Path(sys.argv[1]), *sys.argv[2:])"
        )
        self._python(code, str(self.db), user, project, role)

    def command(self) -> list[str]:
        # the checkout's own CLI: its module path may differ (sync_server was split into
        # subpackages in issue 19)
        tandem = str(self.checkout / ".venv" / "bin" / "tandem")
        return [tandem, "serve", "--db", str(self.db), "--port", str(self.port), *self.args]


def start_other(checkout: Path, tmp: Path, **env_overrides: str) -> OtherCheckoutServer:
    """``tests.conftest.start_server`` for another checkout's Tandem."""
    env = dict(os.environ)
    env.update({"TANDEM_ROOM_IDLE_SECONDS": "2", "TANDEM_EXTERNAL_POLL_SECONDS": "0.2"})
    env.update(env_overrides)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = str(checkout)
    server = OtherCheckoutServer(
        db=tmp / "tandem.db", port=free_port(), env=env, log_path=tmp / "server.log"
    )
    server.checkout = server.cwd = checkout
    server.start()
    return server


class Peer:
    """One server process: pid, URL and document name for the generator, then stop()."""

    def __init__(self, name: str, tmp: Path, **tandem_env: str) -> None:
        self.name = name
        variant = tandem_variant(name)
        checkout = other_checkout(name)
        if variant is not None:
            name, tandem_env = "tandem", {**variant, **tandem_env}
        self.tandem: ServerProcess | None = None
        self.proc: subprocess.Popen | None = None
        self.token = ""
        self.log_path = tmp / f"{name}.log"
        if name == "tandem":
            settings = {"TANDEM_LOG_LEVEL": "WARNING", **tandem_env}
            if checkout is not None:
                self.tandem = start_other(checkout, tmp, **settings)
            else:
                self.tandem = start_server(tmp, **settings)
            self.token = self.tandem.token("bench")
            self.tandem.grant("bench", "fanout", "manager")
            self.pid = self.tandem.proc.pid  # type: ignore[union-attr]
            self.kind, self.url, self.doc = "y-websocket", self.tandem.ws_url, "p/fanout"
            return
        port = free_port()
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        if name == "hocuspocus":
            cmd = ["node", str(NODE / "hocuspocus_server.mjs"), str(port)]
            self.kind = "hocuspocus"
        elif name == "pycrdt":
            cmd = [sys.executable, "-m", "bench.pycrdt_ws_server", str(port)]
            self.kind = "y-websocket"
        else:
            raise ValueError(name)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        wait_port(port, self.proc)
        self.pid = self.proc.pid
        self.url, self.doc = f"ws://127.0.0.1:{port}", "fanout"

    def log(self) -> str:
        if self.tandem is not None:
            return self.tandem.log()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.tandem is not None:
            self.tandem.stop()
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_script_against(peer_name: str, script: str, *args: str) -> tuple[dict | str, float]:
    """Start ``peer_name`` in a fresh directory, run ``bench/node/<script>`` against it
    (kind, URL, document, token, then ``args``) and stop it. Returns the script's last
    JSON line (or why it failed) and the server's CPU seconds over the script's run."""
    with tempfile.TemporaryDirectory() as tmp:
        peer = Peer(peer_name, Path(tmp))
        try:
            start = cpu_seconds(peer.pid)
            out = subprocess.run(
                ["node", str(NODE / script), peer.kind, peer.url, peer.doc, peer.token, *args],
                cwd=NODE,
                capture_output=True,
                text=True,
                timeout=300,
            )
            server_cpu = round(cpu_seconds(peer.pid) - start, 2)
        finally:
            peer.stop()
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return out.stderr.strip()[-300:] or "no output", server_cpu
    return json.loads(lines[-1]), server_cpu


def run_generator(
    pid: int,
    kind: str,
    url: str,
    doc: str,
    token: str,
    clients: int,
    edits: int,
    rate: float = 0,
    wait_s: int = 60,
    presence: bool = True,
) -> dict:
    """Run bench/node/fanout_peers.mjs against a server process; add the server's CPU."""
    cpu = {"start": cpu_seconds(pid)}
    busy: dict[str, float] = {}
    gen = subprocess.Popen(
        [
            "node",
            str(NODE / "fanout_peers.mjs"),
            kind,
            url,
            doc,
            token,
            *(str(x) for x in (clients, edits, wait_s, rate)),
        ],
        cwd=NODE,
        env={**os.environ, "FANOUT_PRESENCE": "on" if presence else "off"},  # (and FANOUT_GROW)
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert gen.stdout is not None
    result: dict = {}
    for line in gen.stdout:
        line = line.strip()
        if line.startswith("phase "):
            cpu[line.split()[1]] = cpu_seconds(pid)
            busy[line.split()[1]] = main_thread_busy_s(pid)
        elif line.startswith("{"):
            result = json.loads(line)
    stderr = gen.stderr.read() if gen.stderr else ""
    gen.wait(timeout=60)
    if not result:
        return {
            "clients": clients,
            "edits_per_client": edits,
            "failed": next(
                (ln for ln in stderr.splitlines() if re.match(r"\w*Error\b", ln)),
                stderr.strip()[-300:],
            )[:300]
            or "no output",
        }
    result["connect_server_cpu_s"] = round(cpu["edit"] - cpu["start"], 2)
    result["server_cpu_s"] = round(cpu["done"] - cpu["edit"], 2)
    secs = max(result["seconds"], 0.01)
    result["server_cores"] = round(result["server_cpu_s"] / secs, 2)
    result["generator_cores"] = round(result["generator_cpu_s"] / secs, 2)
    result["server_loop_busy"] = round((busy["done"] - busy["edit"]) / secs, 2)
    add_derived(result)
    result["server_peak_rss_mb"] = rss_mb(pid, "VmHWM")
    return result


# Two runs were offered the same load when their generators sent edits at rates within 5%
# of each other; only then is a latency comparison a comparison of the servers.
SAME_LOAD = 0.95


def offered_per_s(result: dict) -> int | None:
    """Edits/s the generator offered: N x the rounds per second it kept between its first
    and last round (round j was made j / rate s in, or as soon as its loop got to it)."""
    rounds, span = result["edits_per_client"] - 1, result.get("last_round_at_s")
    if rounds < 1 or not span:
        return None
    return round(result["clients"] * rounds / span)


def add_derived(result: dict) -> None:
    """Figures computed from a run's own: the edits/s offered, whether a paced generator
    kept its schedule (round j at j / rate s), and CPU per 1,000 deliveries, which unlike rates does not
    depend on how much of a core the machine's other tenants left each side."""
    if "failed" in result:
        return
    if "last_round_at_s" in result:  # older result files kept their own figure
        # the load each client library actually offered: at full speed it is the
        # generator's own pace, and latency counts from when an edit was made
        result["sent_per_s"] = offered_per_s(result)
    if result.get("rate", 0) > 0:
        result["scheduled_per_s"] = round(result["clients"] * result["rate"])
        result["kept_pace"] = (result["sent_per_s"] or 0) >= SAME_LOAD * result["scheduled_per_s"]
    per_k = 1000 * 1000 / max(result["delivered"], 1)
    result["server_cpu_ms_per_1k"] = round(result["server_cpu_s"] * per_k, 2)
    result["generator_cpu_ms_per_1k"] = round(result["generator_cpu_s"] * per_k, 2)


def matched_rate(all_runs: dict, size: str) -> float:
    """Edits/s per client that Hocuspocus's own client reached at full speed on ``size``
    earlier in this invocation: ``NxM@hocuspocus`` paces every server at that offered load."""
    sends = [
        r["sent_per_s"] / r["clients"]
        for r in all_runs.get(size, {}).get("hocuspocus", [])
        if r.get("sent_per_s")
    ]
    if not sends:
        raise SystemExit(
            f"{size}@hocuspocus needs a full-speed {size} row with hocuspocus before it"
        )
    return round(statistics.median(sends), 1)


def run_once(
    peer_name: str, clients: int, edits: int, rate: float, wait_s: int, presence: bool = True
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        peer = Peer(peer_name, Path(tmp))
        try:
            result = run_generator(
                peer.pid,
                peer.kind,
                peer.url,
                peer.doc,
                peer.token,
                clients,
                edits,
                rate,
                wait_s,
                presence,
            )
            result["server"] = peer_name
            result["server_log_errors"] = sum(
                1 for ln in peer.log().splitlines() if "Traceback" in ln or " ERROR" in ln
            )
        finally:
            peer.stop()
    return result


KEYS = (
    "sent_per_s",
    "delivered_per_s",
    "p50_ms",
    "p99_ms",
    "warmup_p99_ms",
    "connect_ms",
    "grow_ms",
    "seconds",
    "server_cpu_s",
    "generator_cpu_s",
    "server_cores",
    "generator_cores",
    "server_loop_busy",
    "generator_loop_busy",
    "server_cpu_ms_per_1k",
    "generator_cpu_ms_per_1k",
    "connect_server_cpu_s",
    "server_peak_rss_mb",
)


def summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if "failed" not in r]
    out: dict = {"runs": len(runs), "completed_runs": sum(1 for r in ok if r["complete"])}
    # a run whose copies differ at the end had edits refused (or lost): not plain fan-out
    out["converged_runs"] = sum(1 for r in ok if r.get("converged"))
    if len(ok) < len(runs):
        out["failures"] = [r["failed"] for r in runs if "failed" in r]
    for key in KEYS:
        values = [r[key] for r in ok if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    paced = [r for r in ok if "kept_pace" in r]
    if paced:
        out["scheduled_per_s"] = paced[0]["scheduled_per_s"]
        out["kept_pace"] = f"{sum(r['kept_pace'] for r in paced)}/{len(paced)}"
    if ok:
        out["delivered_fraction"] = round(
            statistics.median(r["delivered"] / r["expected"] for r in ok), 4
        )
        gen, srv = out["generator_loop_busy"], out["server_loop_busy"]
        if gen is not None and srv is not None:
            out["bound_by"] = "generator" if gen > srv else "server"
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def same_load(a: float | None, b: float | None) -> bool:
    """Offered rates within 5%; two single-round runs (None) offered the same burst."""
    if a is None and b is None:
        return True
    if not a or not b:
        return False
    return min(a, b) >= SAME_LOAD * max(a, b)


def targets(t: dict, h: dict, paced: bool) -> dict[str, bool | None]:
    """The issue's targets for Tandem (``t``) against Hocuspocus (``h``).

    Rate: at full speed only (a paced run delivers what its schedule offers).
    p99, a comparison of servers only where the loads allow one (at full speed each
    client library sets its own pace, and a generator that makes edits faster waits
    longer for its own arrivals):

    - the same offered load: Tandem's p99 <= Hocuspocus's;
    - Tandem offered more and had the lower p99: met; offered less and had the higher
      p99: not met;
    - otherwise None: not comparable."""
    out: dict[str, bool | None] = {}
    if not paced:
        out["rate_at_least_hocuspocus"] = (t["delivered_per_s"] or 0) >= (h["delivered_per_s"] or 0)
    tp99, hp99 = t["p99_ms"], h["p99_ms"]
    more_load = (t["sent_per_s"] or 0) > (h["sent_per_s"] or 0)
    if tp99 is None or hp99 is None:
        out["p99_no_worse_than_hocuspocus"] = False
    elif same_load(t["sent_per_s"], h["sent_per_s"]) or (more_load and tp99 <= hp99):
        out["p99_no_worse_than_hocuspocus"] = tp99 <= hp99
    elif not more_load and tp99 > hp99:  # offered less, and still slower
        out["p99_no_worse_than_hocuspocus"] = False
    else:
        out["p99_no_worse_than_hocuspocus"] = None
    return out


def compare(runs: dict[str, list[dict]]) -> dict:
    """Medians per server, Tandem's ratios to each peer, and the issue's two targets."""
    peers = list(runs)
    summary: dict[str, Any] = {p: summarize(runs[p]) for p in peers}
    if "tandem" in summary:
        t = summary["tandem"]
        for other in peers:
            if other == "tandem":
                continue
            o = summary[other]
            summary[f"tandem_over_{other}"] = {
                "delivered_per_s": ratio(t["delivered_per_s"], o["delivered_per_s"]),
                "p50_ms": ratio(t["p50_ms"], o["p50_ms"]),
                "p99_ms": ratio(t["p99_ms"], o["p99_ms"]),
                "connect_ms": ratio(t["connect_ms"], o["connect_ms"]),
                "server_cpu_s": ratio(t["server_cpu_s"], o["server_cpu_s"]),
                "server_cpu_ms_per_1k": ratio(t["server_cpu_ms_per_1k"], o["server_cpu_ms_per_1k"]),
            }
        if "hocuspocus" in summary:
            h = summary["hocuspocus"]
            summary["same_offered_load"] = same_load(t["sent_per_s"], h["sent_per_s"])
            summary["targets"] = targets(t, h, paced=t.get("scheduled_per_s") is not None)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes",
        default=",".join(SWEEP),
        help="NxM[@edits/s per client][-np], comma separated; no @: full speed;"
        " @hocuspocus: the per-client rate Hocuspocus's own client reached at full speed"
        " on NxM earlier in this run; -np: clients without presence state",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--pycrdt-repeat",
        type=int,
        default=1,
        help="runs of the stock pycrdt-websocket server (each takes up to --wait)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma separated; tandem+TANDEM_SETTING=value adds a Tandem variant (A/B);"
        " tandem@DIR runs the Tandem of the checkout in DIR (its own .venv) as a peer",
    )
    parser.add_argument(
        "--field",
        choices=("description", "title"),
        default="description",
        help="the task text the clients type in (runs before 2026-12-02 used the title, which"
        " Tandem now limits to 500 characters: past that its gate refuses every edit)",
    )
    parser.add_argument(
        "--grow",
        type=int,
        default=0,
        help="a grown document: before the others connect, client 0 makes this many edits"
        " (nine characters typed, one deleted) to a task of its own; 0: a fresh document",
    )
    parser.add_argument("--name", default="fanout_peers", help="results file: results/NAME.json")
    parser.add_argument("--wait", type=int, default=60, help="seconds to wait for deliveries")
    parser.add_argument(
        "--resummarize",
        action="store_true",
        help="recompute the summary of bench/results/fanout_peers.json from its runs",
    )
    args = parser.parse_args()
    if args.resummarize:
        path = RESULTS / f"{args.name}.json"
        data = json.loads(path.read_text())
        for run_list in (
            r for by_peer in data["runs"].values() for rs in by_peer.values() for r in rs
        ):
            add_derived(run_list)
        data["summary"] = {key: compare(runs) for key, runs in data["runs"].items()}
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(json.dumps(data["summary"], indent=2))
        return
    os.environ["FANOUT_FIELD"] = args.field  # read by the generator
    os.environ["FANOUT_GROW"] = str(args.grow)
    peers = args.peers.split(",")
    table: dict = {}
    all_runs: dict = {}
    for key in args.sizes.split(","):
        size, rate, presence = parse_key(key)
        n, m = (int(x) for x in size.split("x"))
        per_client = matched_rate(all_runs, size) if rate == "hocuspocus" else float(rate or 0)
        runs: dict[str, list[dict]] = {p: [] for p in peers}
        for i in range(args.repeat):
            for p in peers:  # interleaved, so drift hits every server alike
                if p == "pycrdt" and i >= args.pycrdt_repeat:
                    continue
                r = run_once(p, n, m, per_client, args.wait, presence)
                print(key, p, json.dumps(r), flush=True)
                runs[p].append(r)
        summary = compare(runs)
        if rate == "hocuspocus":
            summary["edits_per_s_per_client"] = per_client
        print(key, json.dumps(summary, indent=2), flush=True)
        table[key] = summary
        all_runs[key] = runs
    path = write_result(
        args.name,
        {
            "command": "python -m bench.fanout_peers " + " ".join(sys.argv[1:]),
            "args": vars(args),
            "statistic": "median",
            "summary": table,
            "runs": all_runs,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
