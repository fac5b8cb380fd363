"""One model version as the service holds it: the trained model, its id maps, and what is known about users.

A `ServedModel` is immutable once built. The service swaps whole versions by replacing one reference,
so a request that began on version 3 finishes on version 3 while the next one already sees version 4.
Interactions posted after a version was trained are kept in raw ids; each version maps them through its
own id maps (a user or item its model does not know yet waits for the next update).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys_core.compress import load_compressed
from recsys_core.data.idmap import IdMap
from recsys_core.data.splits import History
from recsys_core.errors import ConfigError, UnknownIdError
from recsys_core.eval.evaluator import mask_known
from recsys_core.models import family_class
from recsys_core.models.base import Recommender
from recsys_core.runs.finished import load_finished
from recsys_core.storage.rundir import RunDir

RAW_COLUMNS = ["user", "item", "rating", "timestamp"]


@dataclass(frozen=True)
class ServedModel:
    """A loaded run: its model, id maps and titles, and the history it scores and excludes from."""

    version: int
    run_dir: Path
    model: Recommender
    users: IdMap
    items: IdMap
    titles: dict[int, str]
    base_frame: pd.DataFrame  # the version's own data (u, i, rating, timestamp, row); stream events come on top
    history: History
    compressed: bool = False
    loaded_at: float = field(default_factory=time.time)

    @property
    def family(self) -> str:
        return self.model.family

    def describe(self) -> dict:
        return {"version": self.version, "run": str(self.run_dir), "family": self.family,
                "n_users": len(self.users), "n_items": len(self.items), "compressed": self.compressed,
                "loaded_at": self.loaded_at}

    # ------------------------------------------------------------ scoring
    def recommend_user(self, user: str, k: int) -> list[dict]:
        """Top-k unseen items of a known user, from everything known about them (stream events included)."""
        if user not in self.users:
            raise UnknownIdError(f"unknown user {user!r}: this model version knows {len(self.users):,} users; "
                                 f"POST /recommend with the user's recent items to score a new one")
        u = np.array([self.users.index(user)], dtype=np.int64)
        with torch.no_grad():
            scores = mask_known(self.model.full_scores(u, self.history), u, self.history)[0]
        return self._top(scores, k)

    def recommend_history(self, items: list[str], k: int) -> tuple[list[dict], str, list[str]]:
        """Top-k for someone the model has no row for, from their recent items: (items, method, ignored ids).

        Families that score from history alone read a one-user history; the others (per-user weights)
        fold the user in as the mean of their items' vectors, which is what 'similar items' means to the model.
        """
        known = [self.items.index(i) for i in items if i in self.items]
        ignored = [i for i in items if i not in self.items]
        if not known:
            raise UnknownIdError("none of the posted items is known to this model version"
                                 + (f" (unknown: {', '.join(map(repr, ignored[:3]))})" if ignored else ""))
        seq = pd.DataFrame({"u": 0, "i": np.array(known, dtype=np.int64), "rating": 1.0,
                            "timestamp": np.arange(len(known), dtype=float), "row": np.arange(len(known))})
        one = History(seq, 1, len(self.items))
        with torch.no_grad():
            if family_class(self.family).scores_from_history_alone:
                scores, method = self.model.full_scores(np.zeros(1, dtype=np.int64), one)[0], "history"
            else:
                vectors = self.model.item_embedding_matrix()
                if vectors is None:
                    raise ConfigError(f"{self.family} cannot score a user it has no weights for")
                scores, method = vectors @ vectors[known].mean(0), "item-vector fold-in"
        scores = scores.float().cpu().clone()
        scores[known] = -torch.inf
        return self._top(scores, k), method, ignored

    def _top(self, scores: torch.Tensor, k: int) -> list[dict]:
        scores = scores.float().cpu()
        top = torch.topk(scores, min(k, scores.shape[0]))
        return [{"rank": r + 1, "item": self.items.raw(int(i)), "title": self.titles.get(int(i), self.items.raw(int(i))),
                 "score": round(float(s), 6)}
                for r, (i, s) in enumerate(zip(top.indices.tolist(), top.values.tolist())) if np.isfinite(s)]

    # ------------------------------------------------------------ stream events
    def with_events(self, events: pd.DataFrame) -> "ServedModel":
        """This version with every posted event (raw ids) it can map added to its history."""
        return _replace_history(self, _history_for(self, events))


def _history_for(served: ServedModel, events: pd.DataFrame) -> History:
    """The version's own data plus the stream events whose user and item it knows (in its indices)."""
    base = served.base_frame
    if not len(events):
        return served.history if len(served.history.frame) == len(base) else History(base, len(served.users),
                                                                                   len(served.items))
    u = served.users.indices(events["user"].astype(str).tolist(), missing="minus_one")
    i = served.items.indices(events["item"].astype(str).tolist(), missing="minus_one")
    ok = (u >= 0) & (i >= 0)
    extra = pd.DataFrame({"u": u[ok], "i": i[ok], "rating": events["rating"].to_numpy(dtype=float)[ok],
                          "timestamp": events["timestamp"].to_numpy(dtype=float)[ok],
                          "row": np.arange(len(base), len(base) + int(ok.sum()))})
    return History(pd.concat([base, extra], ignore_index=True), len(served.users), len(served.items))


def _replace_history(served: ServedModel, history: History) -> ServedModel:
    return ServedModel(served.version, served.run_dir, served.model, served.users, served.items, served.titles,
                       served.base_frame, history, served.compressed, served.loaded_at)


def load_served(run_dir: str | Path, version: int = 0, compressed: bool = False) -> ServedModel:
    """Load a finished run (or its compressed model, `rectune compress`) as a servable version."""
    run = RunDir(run_dir)
    finished = load_finished(run)
    model = finished.model
    if compressed:
        target = run.path / "compressed"
        if not (target / "model.json").exists():
            raise ConfigError(f"{run.path}: no compressed model; make one with: rectune compress --run {run.path}")
        texts = finished.ds.item_texts() if model.needs_item_text else None
        model = load_compressed(target, texts)
    if isinstance(model, torch.nn.Module):
        model.eval()
    ds = finished.ds
    frame = ds.interactions[["u", "i", "rating", "timestamp", "row"]]
    return ServedModel(version, run.path, model, ds.users, ds.items, ds.item_titles(), frame,
                       History(frame, ds.n_users, ds.n_items), compressed)
