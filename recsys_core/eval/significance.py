"""Paired bootstrap confidence interval for the difference between two models on the same users."""
from __future__ import annotations

import numpy as np

from recsys_core.errors import ConfigError


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Mean of (a - b) over users, with a percentile bootstrap interval resampling users.

    `a` and `b` are per-user metric values of two models on the same users in the same order.
    `p_value` is the two-sided share of resamples whose difference has the other sign (or is zero).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError("paired bootstrap needs two per-user vectors over the same users")
    if len(a) == 0:
        raise ConfigError("paired bootstrap needs at least one user")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # resample in blocks to bound memory on many users
        stop = min(start + 256, n_boot)
        idx = rng.integers(0, len(diff), size=(stop - start, len(diff)))
        means[start:stop] = diff[idx].mean(1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    observed = float(diff.mean())
    if observed > 0:
        p = 2 * float((means <= 0).mean())
    elif observed < 0:
        p = 2 * float((means >= 0).mean())
    else:
        p = 1.0
    return {"diff": observed, "ci_low": float(lo), "ci_high": float(hi), "p_value": min(1.0, p),
            "n_users": int(len(diff)), "n_boot": int(n_boot), "confidence": 1 - alpha}


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of k p-values (controls the family-wise error rate)."""
    order = sorted(p_values, key=lambda n: p_values[n])
    k, running, out = len(order), 0.0, {}
    for rank, name in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p_values[name]))
        out[name] = running
    return out


def _cluster_means(diff: np.ndarray, clusters: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of `diff` [n, arms] resampling whole clusters (users), each carrying all its rows."""
    codes, inverse = np.unique(clusters, return_inverse=True)
    sums = np.zeros((len(codes), diff.shape[1]))
    np.add.at(sums, inverse, diff)
    counts = np.bincount(inverse, minlength=len(codes)).astype(float)
    out = np.empty((n_boot, diff.shape[1]))
    for start in range(0, n_boot, 256):  # resample in blocks to bound memory on many users
        stop = min(start + 256, n_boot)
        idx = rng.integers(0, len(codes), size=(stop - start, len(codes)))
        out[start:stop] = sums[idx].sum(1) / counts[idx].sum(1, keepdims=True)
    return out


def _two_sided_p(observed: float, means: np.ndarray) -> float:
    if observed > 0:
        return min(1.0, 2 * float((means <= 0).mean()))
    if observed < 0:
        return min(1.0, 2 * float((means >= 0).mean()))
    return 1.0


def compare_to_reference(arms: dict[str, np.ndarray], reference: np.ndarray, clusters: np.ndarray | None = None,
                         n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict[str, dict]:
    """Each arm minus one reference, per user (or per row, resampled by `clusters`), on one joint bootstrap.

    Every arm is resampled with the same users, so the intervals are simultaneous: `ci_*_adj` are
    Bonferroni intervals at level 1 - alpha/k, and `p_holm` is Holm's adjustment of the raw `p`
    (k = number of arms). `significant` means p_holm < alpha.
    """
    names = list(arms)
    if not names:
        return {}
    reference = np.asarray(reference, dtype=float)
    diff = np.column_stack([np.asarray(arms[n], dtype=float) - reference for n in names])
    if diff.shape[0] == 0:
        raise ConfigError("a comparison needs at least one scored user")
    groups = np.arange(diff.shape[0]) if clusters is None else np.asarray(clusters)
    means = _cluster_means(diff, groups, n_boot, np.random.default_rng(seed))
    k = len(names)
    raw = {n: _two_sided_p(float(diff[:, j].mean()), means[:, j]) for j, n in enumerate(names)}
    adjusted = holm(raw)
    out = {}
    for j, name in enumerate(names):
        lo, hi = np.quantile(means[:, j], [alpha / 2, 1 - alpha / 2])
        lo_adj, hi_adj = np.quantile(means[:, j], [alpha / (2 * k), 1 - alpha / (2 * k)])
        out[name] = {"diff": round(float(diff[:, j].mean()), 6), "ci_low": round(float(lo), 6),
                     "ci_high": round(float(hi), 6), "p": round(raw[name], 6), "p_holm": round(adjusted[name], 6),
                     "ci_low_adj": round(float(lo_adj), 6), "ci_high_adj": round(float(hi_adj), 6),
                     "significant": bool(adjusted[name] < alpha), "comparisons": k,
                     "n_users": int(len(np.unique(groups))), "n_boot": int(n_boot), "confidence": 1 - alpha}
    return out
