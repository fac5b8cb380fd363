"""Full-ranking evaluation, chunked over users so at most a bounded block of scores exists at once.

Models are fitted on the training interactions. At prediction time a model is given what is known
then (training interactions for validation; training plus validation for test), and every item is
ranked except those known items. Models that read a user's history (sequential, two-tower) thus see
the validation item when predicting the test item, as in RecBole; closed-form baselines score from
the matrix they were fitted on unless configured with fold_in (see recsys_core/models/base.py).
Ties are never broken in a target's favour: a target ranks behind every non-target item with an
equal score.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd
import torch

from recsys_core.data.splits import History, Split
from recsys_core.eval.metrics import ACCURACY_METRICS, average_popularity, coverage, novelty, per_user_metrics

# Bound on the elements of one block of [users x targets x items] comparisons (and of score rows).
MAX_BLOCK_ELEMENTS = 1 << 25


class Scorer(Protocol):
    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor: ...


@dataclass
class EvalResult:
    """Mean metrics, per-user rows and each user's top-K item indices."""

    metrics: dict[str, float]
    per_user: pd.DataFrame
    topk: np.ndarray
    users: np.ndarray
    stage: str
    split: str
    eval_seconds: float
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {**self.metrics, "eval_seconds": round(self.eval_seconds, 3)}


def group_targets(targets: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    """Users (sorted) and each one's distinct target items."""
    pairs = targets[["u", "i"]].drop_duplicates()
    pairs = pairs.sort_values(["u"], kind="stable")
    users, starts = np.unique(pairs["u"].to_numpy(), return_index=True)
    items = pairs["i"].to_numpy()
    bounds = list(starts) + [len(items)]
    return users, [items[bounds[j]:bounds[j + 1]] for j in range(len(users))]


def mask_known(scores: torch.Tensor, users: np.ndarray, history: History) -> torch.Tensor:
    """Set the scores of each user's known items to -inf and NaN scores to -inf.

    Works in place on a fresh score block (one pass less over a large catalogue); a view into a
    model's own tensor (e.g. popularity broadcast to every user) is copied first.
    """
    if scores.dtype != torch.float32 or scores._base is not None or not scores.is_contiguous():
        scores = scores.float().clone()
    scores.nan_to_num_(nan=float("-inf"))
    rows = history.csr[users]
    row_idx = np.repeat(np.arange(len(users)), np.diff(rows.indptr))
    if len(row_idx):
        scores[torch.as_tensor(row_idx, device=scores.device), torch.as_tensor(rows.indices, device=scores.device, dtype=torch.long)] = float("-inf")
    return scores


def pessimistic_ranks(scores: torch.Tensor, target_idx: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target where ties go against it; padded targets get +inf.

    rank(t) = #items scoring higher + #non-target items scoring equal + #earlier targets scoring equal.
    """
    s_t = scores.gather(1, target_idx)  # [B, T]
    # greater + equal in one pass over the catalogue (int32 sums are much faster than bool -> int64 on CPU)
    at_least = (scores.unsqueeze(1) >= s_t.unsqueeze(2)).sum(-1, dtype=torch.int32)
    same = (s_t.unsqueeze(2) == s_t.unsqueeze(1)) & target_mask.unsqueeze(1)  # [B, T, T]
    t = torch.arange(s_t.shape[1], device=scores.device)
    earlier_same = (same & (t.unsqueeze(0) < t.unsqueeze(1)).unsqueeze(0)).sum(-1)
    ranks = (at_least - same.sum(-1) + earlier_same).float()
    return torch.where(target_mask, ranks, torch.full_like(ranks, float("inf")))


def evaluate(model: Scorer, split: Split, stage: str = "test", k: int = 10, ks: Sequence[int] | None = None,
             users: np.ndarray | None = None, progress: Callable[[int, int], None] | None = None,
             max_block_elements: int = MAX_BLOCK_ELEMENTS) -> EvalResult:
    """Rank all items for every user with a `stage` target and compute metrics at each cut-off."""
    start = time.perf_counter()
    ks = sorted(set(ks or [k]) | {k})
    targets = split.targets(stage)
    if users is not None:
        targets = targets[targets["u"].isin(users)]
    eval_users, target_lists = group_targets(targets)
    history = split.history(stage)
    popularity = split.train_history
    n_items = split.n_items
    max_t = max((len(t) for t in target_lists), default=1)
    block = max(1, min(4096, max_block_elements // max(1, n_items * max_t)))
    kmax = min(max(ks), n_items)
    all_ranks = np.full((len(eval_users), max_t), np.inf)
    topk = np.full((len(eval_users), kmax), -1, dtype=np.int64)
    with torch.no_grad():
        for lo in range(0, len(eval_users), block):
            hi = min(lo + block, len(eval_users))
            chunk = eval_users[lo:hi]
            scores = mask_known(model.full_scores(chunk, history), chunk, history)
            tgt = np.zeros((hi - lo, max_t), dtype=np.int64)
            msk = np.zeros((hi - lo, max_t), dtype=bool)
            for j, items in enumerate(target_lists[lo:hi]):
                tgt[j, : len(items)] = items
                msk[j, : len(items)] = True
            dev = scores.device
            ranks = pessimistic_ranks(scores, torch.as_tensor(tgt, device=dev), torch.as_tensor(msk, device=dev))
            all_ranks[lo:hi] = ranks.cpu().numpy()
            top = torch.topk(scores, kmax, dim=1)
            # an item scored -inf (known, or outside a pruned model's catalogue) is not a recommendation
            topk[lo:hi] = torch.where(torch.isfinite(top.values), top.indices, -1).cpu().numpy()
            if progress:
                progress(hi, len(eval_users))
    n_targets = np.array([len(t) for t in target_lists])
    per_user = pd.DataFrame({"u": eval_users, "n_targets": n_targets,
                             "n_known": history.user_counts[eval_users] if len(eval_users) else []})
    metrics: dict[str, float] = {}
    item_counts = popularity.item_counts
    n_hist_users = int((popularity.user_counts > 0).sum())
    for kk in ks:
        values = per_user_metrics(all_ranks, n_targets, kk)
        for name in ACCURACY_METRICS:
            per_user[f"{name}@{kk}"] = values[name]
            metrics[f"{name}@{kk}"] = float(values[name].mean()) if len(eval_users) else 0.0
        top = topk[:, :kk]
        metrics[f"coverage@{kk}"] = coverage(top, n_items) if len(eval_users) else 0.0
        metrics[f"novelty@{kk}"] = novelty(top, item_counts, n_hist_users) if len(eval_users) else 0.0
        metrics[f"arp@{kk}"] = average_popularity(top, item_counts) if len(eval_users) else 0.0
    per_user["best_rank"] = all_ranks.min(1) if len(eval_users) else []
    metrics["n_users"] = int(len(eval_users))
    return EvalResult(metrics, per_user, topk, eval_users, stage, split.name, time.perf_counter() - start)


def ranking_progress(progress: Callable[[str], None] | None, stage: str, every: float = 5.0) -> Callable[[int, int], None] | None:
    """The evaluator's (done, total) callback as a message every `every` seconds (long rankings only)."""
    if progress is None:
        return None
    last = [time.perf_counter()]

    def report(done: int, total: int) -> None:
        if time.perf_counter() - last[0] >= every and done < total:
            last[0] = time.perf_counter()
            progress(f"ranking {stage}: {done:,} of {total:,} users")
    return report
