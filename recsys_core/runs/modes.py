"""How finished runs were trained (one process, data-parallel ranks, asynchronous workers) and what it bought.

Read from the run directories only (config.json, eval.json, distributed.json, metrics.jsonl), for the
Learn page's synchronous-vs-asynchronous view and anyone comparing modes from the Python API.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from recsys_core.storage.atomic import read_json
from recsys_core.storage.rundir import RunDir


def training_mode(run: RunDir) -> str:
    """'1 process', 'DDP, N ranks' or 'async, N workers', from what the run recorded."""
    workers = int((run.read_config().get("train") or {}).get("async_workers", 0) or 0)
    if workers:
        return f"async, {workers} workers"
    ranks = (read_json(run.path / "distributed.json") or {}).get("world_size")
    return f"DDP, {ranks} ranks" if ranks else "1 process"


def mode_rows(runs: list[dict]) -> pd.DataFrame:
    """One row per finished or stopped neural run: mode, family, dataset, throughput, staleness, quality."""
    rows = []
    for row in runs:
        if row.get("state") not in ("finished", "stopped"):
            continue
        run = RunDir(row["run_dir"])
        ev = run.read_eval() or {}
        steps = [m for m in run.read_metrics() if m.get("type") == "step"]
        if not steps or not ev:
            continue  # fitted in closed form, or nothing logged
        stats = ev.get("async") or {}
        rows.append({"run_id": row["run_id"], "run_dir": row["run_dir"], "mode": training_mode(run),
                     "family": row.get("family"),
                     "dataset": Path(str(row.get("data", ""))).name or row.get("data"),
                     "samples/s": statistics.median(float(m["throughput"]) for m in steps),
                     "mean staleness": stats.get("staleness_mean", 0.0), "epochs": ev.get("epochs"),
                     "train s": ev.get("train_seconds"), "test NDCG@10": ev.get("test", {}).get("ndcg@10"),
                     "deterministic": ev.get("deterministic", True)})
    return pd.DataFrame(rows)


def loss_curves(run_dirs: dict[str, Path]) -> pd.DataFrame:
    """Logged training loss against wall seconds, per run (label -> run directory)."""
    frames = []
    for label, path in run_dirs.items():
        steps = [m for m in RunDir(path).read_metrics() if m.get("type") == "step"]
        frames.append(pd.DataFrame({"run": label, "seconds": [m["elapsed"] for m in steps],
                                    "loss": [m["loss"] for m in steps], "worker": [m.get("worker", 0) for m in steps]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "seconds", "loss", "worker"])
