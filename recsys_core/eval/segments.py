"""Per-segment summaries of per-user metrics (e.g. users by activity)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def activity_segments(n_known: np.ndarray, n_bins: int = 4) -> pd.Series:
    """Label users by quantile bins of how many training interactions they have, e.g. '20-35'."""
    n_known = np.asarray(n_known)
    if n_known.size == 0:
        return pd.Series([], dtype=object)
    edges = np.unique(np.quantile(n_known, np.linspace(0, 1, n_bins + 1)).round().astype(int))
    if len(edges) < 2:
        return pd.Series([f"{edges[0]}"] * len(n_known))
    idx = np.clip(np.searchsorted(edges, n_known, side="right") - 1, 0, len(edges) - 2)
    # Bins are [edge_j, edge_j+1) except the last, which is closed; labels show the integer range.
    labels = [f"{edges[j]}-{edges[j + 1] - 1 if j < len(edges) - 2 else edges[j + 1]}" for j in range(len(edges) - 1)]
    return pd.Series([labels[j] for j in idx])


def segment_summary(per_user: pd.DataFrame, segment: pd.Series | np.ndarray, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean of each metric per segment, with the number of users in it."""
    metrics = metrics or [c for c in per_user.columns if "@" in c]
    frame = per_user[metrics].copy()
    frame["segment"] = np.asarray(segment)
    out = frame.groupby("segment", sort=False)[metrics].mean()
    out.insert(0, "users", frame.groupby("segment", sort=False).size())
    order = sorted(out.index, key=_segment_key)
    return out.loc[order].reset_index()


def _segment_key(label: str) -> tuple:
    head = str(label).split("-")[0]
    return (0, float(head)) if head.replace(".", "", 1).isdigit() else (1, str(label))


def by_activity(per_user: pd.DataFrame, n_bins: int = 4, metrics: list[str] | None = None) -> pd.DataFrame:
    """Segment summary by training activity (needs the evaluator's `n_known` column)."""
    return segment_summary(per_user, activity_segments(per_user["n_known"].to_numpy(), n_bins), metrics)
