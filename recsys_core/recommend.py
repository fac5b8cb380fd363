"""Per-user recommendations from a trained run, with titles and the user's history."""
from __future__ import annotations

import numpy as np
import torch

from recsys_core.data.splits import History
from recsys_core.errors import UnknownIdError
from recsys_core.eval.evaluator import mask_known
from recsys_core.runs.rundir import RunDir


def recommend_for_user(run: RunDir, user: str, k: int = 10) -> dict:
    """Top-k unseen items for `user`, scored from everything known about them (all their interactions)."""
    from recsys_core.train.run import load_run_model

    model, ds, split = load_run_model(run)
    if user not in ds.users:
        raise UnknownIdError(f"unknown user {user!r}: the run's data has {ds.n_users:,} users "
                             f"(e.g. {', '.join(ds.users.ids[:3])})")
    u = ds.users.index(user)
    full = History(ds.interactions, ds.n_users, ds.n_items)
    users = np.array([u])
    scores = mask_known(model.full_scores(users, full), users, full)[0]
    k = min(k, int(torch.isfinite(scores).sum()))
    top = torch.topk(scores, k)
    titles = ds.item_titles()
    items = [{"rank": r + 1, "item": ds.items.raw(int(i)), "title": titles[int(i)], "score": float(s)}
             for r, (i, s) in enumerate(zip(top.indices.tolist(), top.values.tolist()))]
    return {"run": run.run_id, "user": user, "k": k, "history_size": int(full.user_counts[u]), "items": items}
