"""Ranking metrics from the 0-based ranks of each user's targets (np.inf pads missing targets).

Definitions (K = cut-off, R = the user's targets, r_t = rank of target t, hits = {t: r_t < K}):
  HR@K = 1 if any hit; Recall@K = |hits| / |R|; Precision@K = |hits| / K;
  NDCG@K = sum_hits 1/log2(r_t + 2) / sum_{j < min(|R|, K)} 1/log2(j + 2);
  MRR@K = 1 / (min r_t + 1) if that is a hit, else 0;
  MAP@K = sum over hits, in rank order, of (hits so far / (r_t + 1)), divided by min(|R|, K).
"""
from __future__ import annotations

import numpy as np

ACCURACY_METRICS = ("ndcg", "recall", "hr", "mrr", "map", "precision")


def per_user_metrics(ranks: np.ndarray, n_targets: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user accuracy metrics at cut-off k; `ranks` is [users, max_targets]."""
    ranks = np.asarray(ranks, dtype=float)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    n_targets = np.asarray(n_targets, dtype=float)
    hits = ranks < k
    n_hits = hits.sum(1)
    gains = np.where(hits, 1.0 / np.log2(np.where(hits, ranks, 0) + 2.0), 0.0)
    ideal_table = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    ideal = ideal_table[np.minimum(n_targets, k).astype(int)]
    best = ranks.min(1)
    sorted_ranks = np.sort(ranks, axis=1)
    sorted_hits = sorted_ranks < k
    hits_so_far = np.cumsum(sorted_hits, axis=1)
    precisions = np.where(sorted_hits, hits_so_far / (np.where(sorted_hits, sorted_ranks, 0) + 1.0), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "ndcg": np.where(ideal > 0, gains.sum(1) / np.maximum(ideal, 1e-12), 0.0),
            "recall": np.where(n_targets > 0, n_hits / np.maximum(n_targets, 1), 0.0),
            "hr": (n_hits > 0).astype(float),
            "mrr": np.where(best < k, 1.0 / (best + 1.0), 0.0),
            "map": np.where(ideal > 0, precisions.sum(1) / np.maximum(np.minimum(n_targets, k), 1), 0.0),
            "precision": n_hits / k,
        }


def coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top-K."""
    return float(len(np.unique(topk[topk >= 0])) / max(n_items, 1))


def novelty(topk: np.ndarray, item_counts: np.ndarray, n_users: int) -> float:
    """Mean self-information -log2(p_i) of recommended items, p_i = share of users who had item i (>= 1 user)."""
    shown = topk[topk >= 0]  # -1: no item left to recommend (every remaining score was -inf)
    if not len(shown):
        return 0.0
    p = np.maximum(item_counts[shown], 1) / max(n_users, 1)
    return float(np.mean(-np.log2(np.minimum(p, 1.0))))


def average_popularity(topk: np.ndarray, item_counts: np.ndarray) -> float:
    """Mean number of known interactions of the recommended items."""
    shown = topk[topk >= 0]
    return float(np.mean(item_counts[shown])) if len(shown) else 0.0
