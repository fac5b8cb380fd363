"""Experiment results: saved as JSON for the studio, and printed as a table for the terminal."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

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


def comparisons(result: dict) -> dict[str, dict]:
    """The arms' comparisons with the experiment's reference (vs_scratch or vs_retrain)."""
    return result.get("vs_scratch") or result.get("vs_retrain") or {}


def reference_name(result: dict) -> str:
    return result.get("reference") or ("scratch" if "vs_scratch" in result else "retrain")


def experiment_rows(result: dict) -> list[dict]:
    """One row per strategy and reference: validation and test NDCG@10, cost, and the corrected comparison."""
    rows = []
    forgetting = result.get("forgetting", {})
    versus = comparisons(result)
    for kind in ("strategies", "references"):
        for name, f in result.get(kind, {}).items():
            row = {"kind": "strategy" if kind == "strategies" else "reference", "name": name,
                   "valid ndcg@10": (f.get("valid") or {}).get("ndcg@10"), "ndcg@10": f.get("ndcg@10"),
                   "recall@10": f.get("recall@10"), "seconds": f.get("seconds"),
                   "trainable_params": f.get("trainable_params"), "epochs_run": f.get("epochs_run"),
                   "best_epoch": f.get("best_epoch")}
            if name in forgetting:
                row["forgetting"] = forgetting[name]
            if name in versus:
                v = versus[name]
                row.update({"diff": v["diff"], "ci_low_adj": v.get("ci_low_adj"), "ci_high_adj": v.get("ci_high_adj"),
                            "p": v.get("p", v.get("p_value")), "p_holm": v.get("p_holm"),
                            "significant": v.get("significant")})
            rows.append(row)
    return rows


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def verdict(result: dict) -> str:
    """One plain sentence of what the evidence supports, after correcting for the number of comparisons."""
    ref, versus = reference_name(result), comparisons(result)
    if not versus:
        return "No comparison was made."
    k = next(iter(versus.values())).get("comparisons", len(versus))
    better = [n for n, v in versus.items() if v.get("significant") and v["diff"] > 0]
    worse = [n for n, v in versus.items() if v.get("significant") and v["diff"] < 0]
    parts = []
    if better:
        parts.append(f"{_names(better)} beat{'s' if len(better) == 1 else ''} {ref}")
    if worse:
        parts.append(f"{_names(worse)} {'is' if len(worse) == 1 else 'are'} worse than {ref}")
    if not parts:
        sentence = f"No arm is distinguishable from {ref} (no significant difference after correction for {k} comparisons)."
    else:
        sentence = "; ".join(parts) + f", significantly after correction for {k} comparisons (Holm, 95%)."
        rest = [n for n in versus if n not in better + worse]
        if rest:
            sentence += f" {_names(rest)}: no significant difference."
    best = result.get("best")
    if best:
        sentence += f" Best on validation: {best}."
    return sentence


def experiment_table(result: dict) -> str:
    proto = result["protocol"]
    lines = [f"{proto['name']} experiment, {proto.get('model')} on {result.get('data', '?')} "
             f"({result.get('seconds', 0):.0f}s on {proto.get('device', '?')}); budget {result.get('budget', {})}"]
    ref = reference_name(result)
    lines.append(f"{'':<10} {'name':<14} {'valid':>7} {'test':>7} {'seconds':>8} {'trainable':>10} {'epochs':>6}  "
                 f"vs {ref} (test ndcg@10, simultaneous 95% interval, Holm p)")
    for r in experiment_rows(result):
        valid = f"{r['valid ndcg@10']:.4f}" if r["valid ndcg@10"] is not None else "-"
        tail = ""
        if "diff" in r:
            mark = "significant" if r["significant"] else "not significant"
            tail = (f"{r['diff']:+.4f} [{r['ci_low_adj']:+.4f}, {r['ci_high_adj']:+.4f}] p_holm {r['p_holm']:.3f} "
                    f"({mark})")
        if "forgetting" in r:
            tail += f"  forgetting {r['forgetting']:+.4f}"
        lines.append(f"{r['kind']:<10} {r['name']:<14} {valid:>7} {r['ndcg@10']:>7.4f} {r['seconds']:>8.1f} "
                     f"{r['trainable_params']:>10,} {r['epochs_run'] if r['epochs_run'] is not None else '-':>6}  {tail}")
    lines.append(f"best strategy (chosen on validation NDCG@10): {result.get('best')}")
    lines.append(verdict(result))
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines)


def forest_frame(result: dict) -> pd.DataFrame:
    """One row per arm compared with the reference: difference, simultaneous interval, significance."""
    rows = [{"arm": name, "diff": v["diff"], "low": v.get("ci_low_adj", v["ci_low"]),
             "high": v.get("ci_high_adj", v["ci_high"]), "p_holm": v.get("p_holm"),
             "significant": "significant" if v.get("significant") else "not significant"}
            for name, v in comparisons(result).items()]
    return pd.DataFrame(rows, columns=["arm", "diff", "low", "high", "p_holm", "significant"])


def window_frame(result: dict) -> pd.DataFrame:
    """Test NDCG@10 of every arm in every scored window (incremental experiments)."""
    rows = []
    for window in result.get("windows", []):
        for name, figures in window.items():
            if isinstance(figures, dict) and "ndcg@10" in figures:
                rows.append({"window": window["window"], "arm": name, "ndcg@10": figures["ndcg@10"]})
    return pd.DataFrame(rows, columns=["window", "arm", "ndcg@10"])
