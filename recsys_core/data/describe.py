"""Descriptive statistics of a dataset, for `rectune data report` and the studio's Data page."""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.dataset import Dataset

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def distribution(counts: np.ndarray) -> dict:
    """Summary of a count distribution: mean and quantiles."""
    counts = np.asarray(counts)
    if counts.size == 0:
        return {}
    qs = np.quantile(counts, QUANTILES)
    out = {"mean": round(float(counts.mean()), 2)}
    out.update({("min" if q == 0 else "max" if q == 1 else f"p{int(q * 100)}"): float(v) for q, v in zip(QUANTILES, qs)})
    return out


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of item popularity: 0 = all items equally popular, 1 = one item has everything."""
    x = np.sort(np.asarray(counts, dtype=float))
    if x.sum() == 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum()))


def describe(ds: Dataset) -> dict:
    """Counts, sparsity, activity and popularity distributions, time span, ratings and the cleaning report."""
    f = ds.interactions
    user_counts = np.bincount(f["u"].to_numpy(), minlength=ds.n_users)
    item_counts = np.bincount(f["i"].to_numpy(), minlength=ds.n_items)
    sorted_items = np.sort(item_counts)[::-1]
    total = max(int(item_counts.sum()), 1)
    top = lambda share: float(sorted_items[: max(1, int(round(len(sorted_items) * share)))].sum() / total)  # noqa: E731
    out: dict = {
        "name": ds.name,
        "interactions": int(len(f)),
        "users": ds.n_users,
        "items": ds.n_items,
        "density": float(len(f) / max(1, ds.n_users * ds.n_items)),
        "sparsity": float(1 - len(f) / max(1, ds.n_users * ds.n_items)),
        "user_activity": distribution(user_counts),
        "item_popularity": {**distribution(item_counts), "gini": round(gini(item_counts), 4),
                            "share_top_1pct_items": round(top(0.01), 4), "share_top_10pct_items": round(top(0.10), 4),
                            "items_with_1_interaction": int((item_counts == 1).sum())},
        "users_below_3_interactions": int((user_counts < 3).sum()),
        "has_rating": ds.has_rating,
        "has_timestamp": ds.has_timestamp,
        "item_text": ds.item_table is not None,
        "order": ds.order,
    }
    if ds.has_timestamp:
        ts = f["timestamp"].to_numpy()
        first, last = pd.to_datetime(ts.min(), unit="s"), pd.to_datetime(ts.max(), unit="s")
        out["time_span"] = {"first": first.isoformat(), "last": last.isoformat(),
                            "days": round(float((ts.max() - ts.min()) / 86400), 1)}
    if ds.has_rating:
        r = f["rating"]
        values = r.value_counts().sort_index()
        out["ratings"] = {"min": float(r.min()), "max": float(r.max()), "mean": round(float(r.mean()), 4),
                          "distinct": int(r.nunique()),
                          "counts": {f"{k:g}": int(v) for k, v in values.head(50).items()}}
    if ds.report is not None:
        out["report"] = ds.report.as_dict()
    return out


#: points a chart of a distribution is drawn from: aggregated first, so 5M rows cost the same as 100k
CHART_POINTS = 400


def activity_frame(ds: Dataset) -> pd.DataFrame:
    """How many users have how many interactions, in log-spaced bins (for a histogram of user activity)."""
    counts = np.bincount(ds.interactions["u"].to_numpy(), minlength=ds.n_users)
    counts = counts[counts > 0]
    if not len(counts):
        return pd.DataFrame(columns=["interactions_from", "interactions_to", "users"])
    # counts.max() >= 1, so the edges always span at least [1, 2]
    edges = np.unique(np.round(np.geomspace(1, counts.max() + 1, num=60)).astype(np.int64))
    users, _ = np.histogram(counts, bins=edges)
    return pd.DataFrame({"interactions_from": edges[:-1], "interactions_to": edges[1:] - 1, "users": users})


def popularity_frame(ds: Dataset) -> pd.DataFrame:
    """Items by popularity rank (the long tail), at log-spaced ranks: at most CHART_POINTS rows."""
    counts = np.bincount(ds.interactions["i"].to_numpy(), minlength=ds.n_items)
    order = np.argsort(-counts, kind="stable")
    ranks = np.unique(np.round(np.geomspace(1, max(1, len(order)), num=CHART_POINTS)).astype(np.int64))
    picked = order[ranks - 1]
    return pd.DataFrame({"rank": ranks, "item": ds.items.raws(picked), "interactions": counts[picked]})


def timeline_frame(ds: Dataset, freq: str = "auto") -> pd.DataFrame:
    """Interactions per period (month, or week/day for short spans), with the users active in it."""
    if not ds.has_timestamp:
        return pd.DataFrame(columns=["period", "interactions", "active_users"])
    f = ds.interactions
    when = pd.to_datetime(f["timestamp"], unit="s", errors="coerce")
    if freq == "auto":
        days = (when.max() - when.min()).days if len(when) else 0
        freq = "MS" if days > 400 else "W" if days > 60 else "D"
    period = when.dt.to_period({"MS": "M", "W": "W", "D": "D"}[freq]).dt.start_time
    grouped = f.assign(period=period).groupby("period")
    return pd.DataFrame({"interactions": grouped.size(), "active_users": grouped["u"].nunique()}).reset_index()


def rating_frame(ds: Dataset) -> pd.DataFrame:
    """How often each rating value occurs."""
    if not ds.has_rating:
        return pd.DataFrame(columns=["rating", "interactions"])
    counts = ds.interactions["rating"].value_counts().sort_index()
    return pd.DataFrame({"rating": counts.index.astype(float), "interactions": counts.to_numpy()})
