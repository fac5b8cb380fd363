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
