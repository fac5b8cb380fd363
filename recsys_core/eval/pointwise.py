"""NDCG@K of single target events: each (user, item) scored over the full catalogue, one at a time in effect.

The service's held-back check and the prequential replay both ask "where did the model rank the item
this user actually picked next?". A user or item the model has no index for (-1) scores 0: the model
could not have recommended it. Ties are never broken in the target's favour, as in the evaluator.
"""
from __future__ import annotations

import numpy as np
import torch

from recsys_core.data.splits import History
from recsys_core.eval.evaluator import mask_known


def target_ranks(model, history: History, users: np.ndarray, items: np.ndarray, block: int = 256) -> np.ndarray:
    """0-based rank of each target item among the user's unseen items (-1 where it cannot be ranked)."""
    users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    ranks = np.full(len(users), -1, dtype=np.int64)
    ok = np.flatnonzero((users >= 0) & (items >= 0))
    with torch.no_grad():
        for lo in range(0, len(ok), block):
            pick = ok[lo: lo + block]
            u, i = users[pick], torch.from_numpy(items[pick])
            scores = model.full_scores(u, history).float()
            target = scores.gather(1, i.view(-1, 1).to(scores.device))
            scores = mask_known(scores, u, history)
            # every other unseen item scoring at least the target ranks before it (ties against the target)
            ahead = (scores >= target).sum(1) - (scores.gather(1, i.view(-1, 1).to(scores.device)) >= target).view(-1).long()
            ranks[pick] = ahead.cpu().numpy()
    return ranks


def ndcg_at(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-event NDCG@k from 0-based ranks (one relevant item: 1/log2(rank + 2) inside the top k, else 0)."""
    ranks = np.asarray(ranks)
    out = np.zeros(len(ranks))
    hit = (ranks >= 0) & (ranks < k)
    out[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return out
