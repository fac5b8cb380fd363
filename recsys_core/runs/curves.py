"""A run's metrics.jsonl as tables for charts, and its progress (fraction done, throughput, ETA)."""
from __future__ import annotations

import time

import pandas as pd


def step_frame(records: list[dict]) -> pd.DataFrame:
    """One row per logged training step: step, epoch, loss, lr, throughput, elapsed."""
    rows = [r for r in records if r.get("type") == "step"]
    cols = ["step", "epoch", "loss", "lr", "throughput", "elapsed"]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)


def eval_frame(records: list[dict]) -> pd.DataFrame:
    """One row per validation: epoch, step and every validation metric."""
    rows = [{"epoch": r.get("epoch"), "step": r.get("step"), **r.get("valid", {})} for r in records if r.get("type") == "eval"]
    return pd.DataFrame(rows)


def progress(status: dict, records: list[dict]) -> dict:
    """Where a run stands: step of total, share done, latest loss and throughput, ETA at the current pace."""
    steps = step_frame(records)
    evals = eval_frame(records)
    total = status.get("total_steps") or (int(records[-1].get("total_steps", 0)) if records else 0)
    step = int(steps["step"].iloc[-1]) if len(steps) else 0
    elapsed = float(steps["elapsed"].iloc[-1]) if len(steps) else 0.0
    out = {"state": status.get("state", "unknown"), "device": status.get("device", "?"), "step": step,
           "total_steps": int(total or 0), "fraction": min(1.0, step / total) if total else 0.0,
           "loss": float(steps["loss"].iloc[-1]) if len(steps) else None,
           "throughput": float(steps["throughput"].iloc[-1]) if len(steps) else None,
           "elapsed": elapsed, "epoch": int(steps["epoch"].iloc[-1]) if len(steps) else 0,
           "best_valid_ndcg": float(evals["ndcg@10"].max()) if len(evals) and "ndcg@10" in evals else None,
           "evaluations": int(len(evals)), "error": status.get("error"), "reason": status.get("reason")}
    if out["state"] == "running" and step and total and elapsed:
        # an upper bound: early stopping may end the run sooner
        out["eta_seconds"] = elapsed / step * (total - step)
    if status.get("updated"):
        out["seconds_since_update"] = time.time() - status["updated"]
    return out
