"""What the Live page shows, read from the live jobs' directories (reading only: nothing here writes).

A live job's directory holds its spec (live.json), its status and per-batch metrics (as a training run
does), the base it trained (base/, an ordinary run) and the service's state (serve/: the stored events
and versions.jsonl, one record per update decision).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys_core.errors import RecTuneError
from recsys_core.experiments.report import experiments_dir
from recsys_core.runs.launcher import live_status
from recsys_core.serving.replay import SPEC_FILE, live_root, load_live_spec
from recsys_core.serving.updater import read_versions
from recsys_core.storage.atomic import read_json
from recsys_core.storage.rundir import RunDir

#: batches averaged in the page's "recent NDCG@10" (the per-batch figure is too noisy to read)
ROLLING_BATCHES = 8


def list_live_jobs(root: str | Path | None = None) -> list[dict]:
    """Live jobs, newest first: id, family, dataset, state (a dead worker reads 'interrupted'), stage, progress."""
    folder = Path(root or live_root())
    if not folder.is_dir():
        return []
    rows = []
    for path in folder.iterdir():
        spec = read_json(path / SPEC_FILE, default=None)
        if not isinstance(spec, dict):
            continue
        job = RunDir(path)
        status = live_status(job)
        data = spec.get("data") or {}
        rows.append({"job_id": path.name, "path": str(path), "family": spec.get("family", "?"),
                     "dataset": data.get("name") or Path(str(data.get("path") or "demo")).name,
                     "state": status.get("state", "queued"), "stage": status.get("stage", ""),
                     "created": status.get("started") or path.stat().st_mtime})
    return sorted(rows, key=lambda r: r["created"], reverse=True)


def live_snapshot(job: RunDir) -> dict:
    """Everything the page draws for one job: status, spec, per-batch records, update decisions, base status."""
    try:
        spec = load_live_spec(job)
    except (RecTuneError, TypeError, ValueError) as exc:
        raise RecTuneError(f"{job.path.name}: its live.json cannot be read ({exc})") from exc
    status = live_status(job)
    records = job.read_metrics()
    base = RunDir(job.path / "base")
    return {"status": status, "spec": spec, "records": records, "versions": read_versions(job.path / "serve"),
            "base_status": live_status(base) if base.status_path.exists() else {},
            "base_metrics": base.read_metrics() if base.metrics_path.exists() else []}


def replay_frame(records: list[dict]) -> pd.DataFrame:
    """Per batch: events replayed so far, its NDCG@10, a rolling mean, latency percentiles, served version."""
    rows = [r for r in records if "offset" in r and "ndcg@10" in r]
    if not rows:
        return pd.DataFrame(columns=["events replayed", "ndcg@10", "ndcg@10 (rolling)", "latency p50 (ms)",
                                     "latency p99 (ms)", "version", "time"])
    frame = pd.DataFrame({"events replayed": [r["offset"] for r in rows], "ndcg@10": [r["ndcg@10"] for r in rows],
                          "latency p50 (ms)": [r.get("latency_p50_ms") for r in rows],
                          "latency p99 (ms)": [r.get("latency_p99_ms") for r in rows],
                          "version": [r.get("version", 0) for r in rows], "time": [r.get("time") for r in rows],
                          "events": [r.get("events", 0) for r in rows]})
    # weighted by batch size, so a short last batch does not swing the curve
    weighted = (frame["ndcg@10"] * frame["events"]).rolling(ROLLING_BATCHES, min_periods=1).sum()
    frame["ndcg@10 (rolling)"] = weighted / frame["events"].rolling(ROLLING_BATCHES, min_periods=1).sum()
    return frame


def replay_summary(snapshot: dict) -> dict:
    """The tiles: events replayed of total, served version, recent NDCG@10, latest latency, update counts."""
    status, frame = snapshot["status"], replay_frame(snapshot["records"])
    versions = snapshot["versions"]
    last = frame.iloc[-1] if len(frame) else None
    total = status.get("total") or (snapshot["records"][-1].get("total") if snapshot["records"] else None)
    return {"state": status.get("state", "queued"), "stage": status.get("stage", ""), "error": status.get("error"),
            "url": status.get("url"), "replayed": int(last["events replayed"]) if last is not None else 0,
            "total": int(total) if total else None, "version": int(last["version"]) if last is not None else 0,
            "ndcg_recent": float(last["ndcg@10 (rolling)"]) if last is not None else None,
            "p50_ms": float(last["latency p50 (ms)"]) if last is not None else None,
            "p99_ms": float(last["latency p99 (ms)"]) if last is not None else None,
            "accepted": sum(v.get("decision") == "accepted" for v in versions),
            "rejected": sum(v.get("decision") == "rejected" for v in versions)}


def versions_frame(versions: list[dict]) -> pd.DataFrame:
    """One row per update decision, in the words the page uses."""
    rows = [{"version": v.get("version"), "parent": v.get("parent"), "decision": v.get("decision"),
             "new events": v.get("new_events"), "held back": v.get("held_back"),
             "NDCG@10 served": v.get("ndcg_served"), "NDCG@10 candidate": v.get("ndcg_candidate"),
             "difference": v.get("diff"), "95% CI low": v.get("ci_low"), "95% CI high": v.get("ci_high"),
             "train seconds": v.get("train_seconds")} for v in versions]
    return pd.DataFrame(rows)


def list_prequential_results(root: str | Path | None = None) -> list[tuple[Path, dict]]:
    """Saved `rectune experiment prequential` results, newest first (unreadable files are skipped)."""
    folder = experiments_dir(root) / "prequential"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = read_json(path, default=None)
        if isinstance(data, dict) and "curve" in data and "arms" in data:
            out.append((path, data))
    return out


def prequential_curve_frame(result: dict) -> pd.DataFrame:
    """A saved replay's curve, long form: one row per (time bin, arm) with the bin's mean NDCG@10."""
    arms = list(result.get("arms", {}))
    rows = [{"bin": c["bin"], "period start": pd.to_datetime(c["t_start"], unit="s"), "arm": arm,
             "ndcg@10": c[arm]} for c in result.get("curve", []) for arm in arms if arm in c]
    return pd.DataFrame(rows)


def arms_frame(result: dict) -> pd.DataFrame:
    """A saved replay's arms: mean NDCG@10, versions, update cost, and the corrected comparison with retraining."""
    rows = []
    for name, arm in result.get("arms", {}).items():
        versus = result.get("vs_retrain", {}).get(name)
        rows.append({"arm": name, "NDCG@10": arm.get("ndcg@10"), "versions": arm.get("versions"),
                     "seconds per update": arm.get("seconds_per_update"), "update seconds": arm.get("update_seconds"),
                     "vs retrain": None if versus is None else round(versus["diff"], 4),
                     "95% CI (Holm)": None if versus is None else
                     f"[{versus['ci_low_adj']:+.4f}, {versus['ci_high_adj']:+.4f}]",
                     "verdict": "reference" if versus is None else
                     ("significant" if versus["significant"] else "no significant difference")})
    return pd.DataFrame(rows)
