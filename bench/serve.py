"""Latency and throughput of `rectune serve` under a bounded local load (loopback only, fixed count, stops by itself).

    python bench/serve.py [--families mf,sasrec] [--requests 2000] [--clients 1,4] [--no-write]

For each family: train a run on the demo (or reuse one under tmp), start `rectune serve --port 0 --no-updates`,
warm up with 50 requests, then send exactly --requests GET /recommend?user=U&k=10 for random known users from
C keep-alive clients at once, and 100 POST /events batches of 25 events. Client-side p50/p95/p99 latency and
requests/s; the service's own /metrics p99 beside it. Writes docs/BENCHMARKS.md (section 'serve').
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402
from recsys_core.serving.replay import Client  # noqa: E402


def _load(url: str, users: list[str], n: int, clients: int) -> dict:
    latencies, errors, lock = [], [], threading.Lock()
    share = [n // clients + (1 if k < n % clients else 0) for k in range(clients)]

    def run(count: int, seed: int) -> None:
        client, rng = Client(url), np.random.default_rng(seed)
        for _ in range(count):
            start = time.perf_counter()
            status, _ = client.call("GET", f"/recommend?user={users[rng.integers(len(users))]}&k=10")
            with lock:
                latencies.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    errors.append(status)

    threads = [threading.Thread(target=run, args=(c, k)) for k, c in enumerate(share)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"requests": n, "clients": clients, "errors": len(errors), "rps": round(n / wall, 1),
            "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2)}


def bench_family(tmp: Path, family: str, n: int, clients: list[int]) -> dict:
    run = tmp / family
    if not (run / "model" / "model.json").exists():
        subprocess.run([sys.executable, "-m", "recsys_core", "--quiet", "train", "--data", "demo", "--model", family,
                        "--epochs", "5", "--run-dir", str(run)], check=True, cwd=ROOT)
    state = tmp / f"state-{family}"
    proc = subprocess.Popen([sys.executable, "-m", "recsys_core", "--quiet", "serve", "--run", str(run), "--port", "0",
                             "--no-updates", "--state-dir", str(state)], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        while not (state / "server.json").exists():
            time.sleep(0.2)
        url = json.loads((state / "server.json").read_text())["url"]
        users = [str(u) for u in range(1, 611)]
        _load(url, users, 50, 1)  # warm-up
        rows = [_load(url, users, n, c) for c in clients]
        client, start = Client(url), time.perf_counter()
        for b in range(100):
            client.call("POST", "/events", [{"user": "1", "item": str(1 + (b * 25 + k) % 500)} for k in range(25)])
        events = {"batches": 100, "events_per_s": round(2500 / (time.perf_counter() - start), 1)}
        server = client.call("GET", "/metrics")[1]["routes"]["GET /recommend"]["latency_ms"]
        return {"recommend": rows, "events": events, "server_p99_ms": server.get("p99")}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="mf,sasrec")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", default="1,4")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = {f: bench_family(Path(tmp), f, args.requests, clients) for f in args.families.split(",")}
    command = " ".join(["python bench/serve.py", *sys.argv[1:]])
    lines = [f"Command: `{command}` on {machine()}; client and service share the machine's cores (loopback). "
             "Demo data (610 users, 9,724 items), full ranking per request.", "",
             "| model | clients | requests | errors | requests/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|---|---|"]
    for family, r in results.items():
        for row in r["recommend"]:
            lines.append(f"| {family} | {row['clients']} | {row['requests']:,} | {row['errors']} | {row['rps']:,.0f} | "
                         f"{row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} |")
    lines += ["", "POST /events (batches of 25, one client): " + ", ".join(
        f"{f} {r['events']['events_per_s']:,.0f} events/s" for f, r in results.items())]
    if not args.no_write:
        write_section("serve", "\n".join(lines))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
