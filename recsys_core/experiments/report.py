"""Experiment results: saved as JSON for the studio, and printed as a table for the terminal."""
from __future__ import annotations

import time
from pathlib import Path

from recsys_core.storage.atomic import atomic_write_json, read_json
from recsys_core.storage.rundir import runs_root


def experiments_dir(root: str | Path | None = None) -> Path:
    return Path(root) if root else runs_root() / "experiments"


def save_experiment(result: dict, root: str | Path | None = None) -> Path:
    """Write the result as <kind>-<model>-<time>.json (atomically) and return its path."""
    folder = experiments_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{result['protocol']['name']}-{result['protocol'].get('model', 'model')}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path = folder / name
    atomic_write_json(path, {**result, "saved": time.time()})
    return path


def list_experiments(root: str | Path | None = None) -> list[tuple[Path, dict]]:
    """Saved experiment results, newest first (unreadable files are skipped)."""
    folder = experiments_dir(root)
    out = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.exists() else []:
        data = read_json(path, default=None)
        if isinstance(data, dict) and "strategies" in data:
            out.append((path, data))
    return out


def experiment_rows(result: dict) -> list[dict]:
    """One row per strategy and reference: kind, name, NDCG@10, Recall@10, seconds, trainable parameters, extras."""
    rows = []
    forgetting = result.get("forgetting", {})
    versus = result.get("vs_scratch") or result.get("vs_retrain") or {}
    label = "vs_scratch" if "vs_scratch" in result else "vs_retrain"
    for kind in ("strategies", "references"):
        for name, f in result.get(kind, {}).items():
            row = {"kind": "strategy" if kind == "strategies" else "reference", "name": name,
                   "ndcg@10": f.get("ndcg@10"), "recall@10": f.get("recall@10"), "seconds": f.get("seconds"),
                   "trainable_params": f.get("trainable_params")}
            if name in forgetting:
                row["forgetting"] = forgetting[name]
            if name in versus:
                v = versus[name]
                row[label] = f"{v['diff']:+.4f} [{v['ci_low']:+.4f}, {v['ci_high']:+.4f}]"
            rows.append(row)
    return rows


def experiment_table(result: dict) -> str:
    proto = result["protocol"]
    lines = [f"{proto['name']} experiment, {proto.get('model')} on {result.get('data', '?')} "
             f"({result.get('seconds', 0):.0f}s on {proto.get('device', '?')})"]
    rows = experiment_rows(result)
    extras = [e for e in ("forgetting", "vs_retrain", "vs_scratch") if any(e in r for r in rows)]
    lines.append(f"{'':<10} {'name':<14} {'ndcg@10':>8} {'recall@10':>9} {'seconds':>8} {'trainable':>10}  "
                 + "  ".join(extras))
    for r in rows:
        tail = "  ".join(f"{r[e]:+.4f}" if isinstance(r.get(e), float) else str(r.get(e, "")) for e in extras)
        lines.append(f"{r['kind']:<10} {r['name']:<14} {r['ndcg@10']:>8.4f} {r['recall@10']:>9.4f} "
                     f"{r['seconds']:>8.1f} {r['trainable_params']:>10,}  {tail}")
    lines.append(f"best strategy: {result.get('best')}")
    if "best_vs_retrain" in result:
        b = result["best_vs_retrain"]
        lines.append(f"  {b['ndcg_ratio']:.2f}x the NDCG@10 of retraining, in {b['time_ratio']:.2f}x its time; "
                     f"beats no update: {b['beats_no_update']}")
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines)
