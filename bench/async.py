"""Synchronous vs data-parallel vs asynchronous training on the same cores: throughput and time to quality.

    python bench/async.py [--families mf,lightgcn] [--data demo,xwines] [--epochs 8] [--no-write]

For each family and dataset, three runs with the same config, seed and epoch budget (patience 0, so
every run trains the same number of epochs): one process; DDP with 2 ranks (`--nproc 2`, gloo); and 2
lock-free async workers (`--async-workers 2`). The quality target is fixed before any run: the
validation NDCG@10 of popularity on that dataset ("time to beat Pop"), read from the same split.
Reported per run: samples/s (epochs x training interactions / training wall time, validation
included, which costs every mode the same), the median logged step throughput, seconds until the
first validation at or above the target, the best validation NDCG@10 and its test NDCG@10, and for
async runs the mean staleness. Writes docs/BENCHMARKS.md (section 'async') and docs/results-async.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402

DATASETS = {"demo": "demo", "xwines": str(ROOT.parent / "shared/data/x-wines-slim/XWines_Slim_150K_ratings.csv")}
CONFIGS = {"mf": {"model": {"dim": 64}, "train": {"batch_size": 1024, "lr": 5e-3}},
           "lightgcn": {"model": {"dim": 64, "layers": 3}, "train": {"batch_size": 1024, "lr": 1e-2}},
           "ncf": {"model": {"dim": 32}, "train": {"batch_size": 256, "lr": 1e-3}}}
MODES = {"1 process": [], "DDP, 2 ranks": ["--nproc", "2"], "async, 2 workers": ["--async-workers", "2"]}


def pop_target(data: str) -> tuple[float, int]:
    """Popularity's validation NDCG@10 on the default split: the quality every mode must reach."""
    from recsys_core.eval.evaluator import evaluate
    from recsys_core.models.pop import PopRecommender
    from recsys_core.runs.spec import RunSpec

    spec = RunSpec.create(data, "pop")
    split = spec.make_split(spec.load_data())
    model = PopRecommender(split.n_users, split.n_items).fit(split.train_history)
    return float(evaluate(model, split, "valid", k=10).metrics["ndcg@10"]), len(split.train)


def one_run(tmp: Path, name: str, data: str, family: str, mode: str, epochs: int) -> dict:
    cfg = json.loads(json.dumps(CONFIGS[family]))
    cfg["train"].update({"epochs": epochs, "patience": 0, "log_every": 5})
    path = tmp / f"{name}-{family}-{mode.split(',')[0].replace(' ', '')}.json"
    path.write_text(json.dumps(cfg))
    run_dir = tmp / path.stem
    cmd = [sys.executable, "-m", "recsys_core", "--quiet", "train", "--data", data, "--model", family, "--config",
           str(path), "--device", "cpu", "--run-dir", str(run_dir), "--json", *MODES[mode]]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if res.returncode != 0:
        return {"status": "failed", "error": res.stderr[-500:]}
    ev = json.loads((run_dir / "eval.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"status": "finished", "eval": ev, "metrics": metrics}


def summarise(run: dict, target: float, n_train: int) -> dict:
    if run["status"] != "finished":
        return run
    ev, metrics = run["eval"], run["metrics"]
    steps = [m for m in metrics if m["type"] == "step"]
    evals = [m for m in metrics if m["type"] == "eval"]
    start = steps[0]["time"] - steps[0]["elapsed"]
    reached = next((m for m in evals if m["valid"]["ndcg@10"] >= target), None)
    stats = ev.get("async") or {}
    return {"status": "finished", "epochs": ev.get("epochs"), "train_seconds": ev["train_seconds"],
            "samples_per_s": n_train * ev["epochs"] / max(ev["train_seconds"], 1e-9),
            "median_step_throughput": statistics.median(m["throughput"] for m in steps),
            "seconds_to_target": None if reached is None else reached["time"] - start,
            "epoch_at_target": None if reached is None else reached["epoch"],
            "best_valid_ndcg@10": max(m["valid"]["ndcg@10"] for m in evals), "test_ndcg@10": ev["test"]["ndcg@10"],
            "staleness_mean": stats.get("staleness_mean"), "updates": stats.get("updates")}


def markdown(results: dict, command: str) -> str:
    lines = [f"Command: `{command}` on {machine()}. Every run: the same config, seed and epoch budget (patience 0), "
             "on the same 2 cores, one after another. Target: Pop's validation NDCG@10 on the same split.", "",
             "| data | model | mode | samples/s | median step samples/s | s to target (epoch) | best valid NDCG@10 "
             "| test NDCG@10 | mean staleness |", "|---|---|---|---|---|---|---|---|---|"]
    for key, block in results.items():
        data, family = key.split("/")
        for mode, r in block["modes"].items():
            if r["status"] != "finished":
                lines.append(f"| {data} | {family} | {mode} | failed: {r.get('error', '')[:80]} |||||")
                continue
            reach = "not reached" if r["seconds_to_target"] is None else f"{r['seconds_to_target']:.1f} ({r['epoch_at_target']})"
            stale = "-" if r["staleness_mean"] is None else f"{r['staleness_mean']:.2f} ({r['updates']} updates)"
            lines.append(f"| {data} | {family} | {mode} | {r['samples_per_s']:,.0f} | {r['median_step_throughput']:,.0f} | "
                         f"{reach} | {r['best_valid_ndcg@10']:.4f} | {r['test_ndcg@10']:.4f} | {stale} |")
        lines.append(f"| {data} | {family} | target (Pop, valid) | | | {block['target']:.4f} | | | |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="mf,lightgcn")
    p.add_argument("--data", default="demo,xwines")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.data.split(","):
            data = DATASETS.get(name, name)
            target, n_train = pop_target(data)
            for family in args.families.split(","):
                block = results.setdefault(f"{name}/{family}", {"target": target, "modes": {}})
                for mode in MODES:
                    run = one_run(Path(tmp), name, data, family, mode, args.epochs)
                    block["modes"][mode] = summarise(run, target, n_train)
                    print(f"[{name}/{family}/{mode}] {json.dumps(block['modes'][mode])}", file=sys.stderr, flush=True)
    command = " ".join(["python bench/async.py", *sys.argv[1:]])
    if not args.no_write:
        (ROOT / "docs/results-async.json").write_text(json.dumps({"machine": machine(), "command": command,
                                                                  "results": results}, indent=1))
        write_section("async", markdown(results, command))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
