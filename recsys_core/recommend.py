"""Top-K recommendations from a finished run: the one path behind the CLI, the studio, explanations and exports.

`exclude` says what the model knows about the users and so what it must not recommend again:
- "all": every interaction in the run's data (what a deployed model would know now);
- "test": what was known when predicting the held-out test item (training + validation), so a
  recommended test item shows up as a hit.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from recsys_core.data.splits import History
from recsys_core.errors import ConfigError, UnknownIdError
from recsys_core.eval.evaluator import mask_known
from recsys_core.runs.finished import FinishedRun

EXCLUDE = ("all", "test")
COLUMNS = ["user", "rank", "item", "title", "score", "hit"]


def known_history(run: FinishedRun, exclude: str) -> History:
    """The interactions the model scores from and that are excluded from its recommendations."""
    if exclude == "all":
        ds = run.ds
        return History(ds.interactions, ds.n_users, ds.n_items)
    if exclude == "test":
        return run.split.history("test")
    raise ConfigError(f"exclude must be one of {', '.join(EXCLUDE)}, not {exclude!r}")


def user_indices(run: FinishedRun, users: Sequence[str]) -> np.ndarray:
    """Dense indices of raw user ids; an unknown id is an error naming a few known ones."""
    ds = run.ds
    for user in users:
        if user not in ds.users:
            raise UnknownIdError(f"unknown user {user!r}: the run's data has {ds.n_users:,} users "
                                 f"(e.g. {', '.join(ds.users.ids[:3])})")
    return np.array([ds.users.index(u) for u in users], dtype=np.int64)


def top_items(run: FinishedRun, users: np.ndarray, k: int, history: History) -> tuple[np.ndarray, np.ndarray]:
    """(items [B, k], scores [B, k]) of the best unseen items per user; -inf scores where fewer than k exist."""
    scores = mask_known(run.model.full_scores(users, history), users, history).float().cpu()
    top = torch.topk(scores, min(k, scores.shape[1]))
    return top.indices.numpy(), top.values.numpy()


def recommend(run: FinishedRun, users: Sequence[str] | None = None, k: int = 10, exclude: str = "all",
              block: int = 256) -> pd.DataFrame:
    """Top-k per user (all users when `users` is None) as rows user, rank, item, title, score, hit.

    `hit` marks the user's held-out test item (it can only appear with exclude="test").
    """
    history = known_history(run, exclude)
    idx = np.arange(run.ds.n_users) if users is None else user_indices(run, list(users))
    titles = run.ds.item_titles()
    held = run.split.test.groupby("u")["i"].agg(set).to_dict()
    parts = []
    for lo in range(0, len(idx), block):
        chunk = idx[lo: lo + block]
        items, scores = top_items(run, chunk, k, history)
        for row, u in enumerate(chunk):
            ok = np.isfinite(scores[row])
            top = items[row][ok]
            parts.append(pd.DataFrame({
                "user": run.ds.users.raw(int(u)), "rank": np.arange(1, len(top) + 1),
                "item": [run.ds.items.raw(int(i)) for i in top], "title": [titles[int(i)] for i in top],
                "score": scores[row][ok], "hit": [int(i) in held.get(int(u), ()) for i in top]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)


def recommend_for_user(run: FinishedRun, user: str, k: int = 10) -> dict:
    """One user's top-k from everything known about them (`rectune recommend`)."""
    u = int(user_indices(run, [user])[0])
    frame = recommend(run, [user], k=k, exclude="all")
    items = [{"rank": int(r.rank), "item": r.item, "title": r.title, "score": float(r.score)}
             for r in frame.itertuples()]
    history = known_history(run, "all")
    return {"run": run.run_id, "user": user, "k": len(items), "history_size": int(history.user_counts[u]),
            "items": items}
