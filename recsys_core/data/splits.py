"""Train/validation/test splits and the user-history view models score from.

The default protocol (DESIGN.md): leave-last-out per user by time with a stable sort; users with fewer
than 3 interactions stay in training only; data without timestamps falls back to a seeded random
leave-one-out, and the split's name says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_core.data.dataset import Dataset
from recsys_core.errors import ConfigError, DataError

COLUMNS = ["u", "i", "rating", "timestamp", "row"]


def chronological(frame: pd.DataFrame) -> pd.DataFrame:
    """Order by time; equal timestamps keep their order in the input file."""
    if frame["timestamp"].notna().all():
        return frame.sort_values(["timestamp", "row"], kind="stable")
    return frame.sort_values("row", kind="stable")


class History:
    """What is known about each user at prediction time: a binary matrix and time-ordered sequences."""

    def __init__(self, frame: pd.DataFrame, n_users: int, n_items: int) -> None:
        self.frame = chronological(frame[COLUMNS])
        self.n_users = n_users
        self.n_items = n_items

    @cached_property
    def csr(self) -> sp.csr_matrix:
        f = self.frame
        m = sp.csr_matrix((np.ones(len(f), dtype=np.float32), (f["u"].to_numpy(), f["i"].to_numpy())),
                          shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def _per_user(self, column: str) -> list[np.ndarray]:
        """Per user, the column's values in time order (empty for users without history)."""
        u = self.frame["u"].to_numpy()
        order = np.argsort(u, kind="stable")
        values = self.frame[column].to_numpy()[order]
        bounds = np.searchsorted(u[order], np.arange(self.n_users + 1))
        return [values[bounds[k]:bounds[k + 1]] for k in range(self.n_users)]

    @cached_property
    def sequences(self) -> list[np.ndarray]:
        """Per user, item indices in time order (empty for users without history)."""
        return self._per_user("i")

    @cached_property
    def sequence_rows(self) -> list[np.ndarray]:
        """Per user, the `row` ids of the interactions in `sequences`, in the same order."""
        return self._per_user("row")

    @cached_property
    def item_counts(self) -> np.ndarray:
        return np.bincount(self.frame["i"].to_numpy(), minlength=self.n_items)

    @cached_property
    def user_counts(self) -> np.ndarray:
        return np.bincount(self.frame["u"].to_numpy(), minlength=self.n_users)


@dataclass
class Split:
    """A train frame, and validation and test targets; frames hold dense indices `u`, `i`."""

    name: str
    description: str
    n_users: int
    n_items: int
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    meta: dict = field(default_factory=dict)
    #: interactions known when predicting test but never trained on (e.g. a user's earlier clicks in the
    #: window being predicted, in the incremental protocol)
    test_context: pd.DataFrame | None = None

    def targets(self, stage: str) -> pd.DataFrame:
        if stage not in ("valid", "test"):
            raise ConfigError(f"stage must be 'valid' or 'test', not {stage!r}")
        return self.valid if stage == "valid" else self.test

    def known(self, stage: str) -> pd.DataFrame:
        """Interactions known when predicting `stage`: train for validation, train + validation for test."""
        if stage == "valid":
            return self.train
        parts = [self.train, self.valid] + ([self.test_context] if self.test_context is not None else [])
        return pd.concat(parts, ignore_index=True)

    @cached_property
    def train_history(self) -> History:
        """What models fit on."""
        return History(self.train, self.n_users, self.n_items)

    def history(self, stage: str) -> History:
        """What is known at prediction time for `stage`: the model's input there, and the items ranked out."""
        if stage == "valid":
            return self.train_history
        key = "_history_test"
        if key not in self.__dict__:
            self.__dict__[key] = History(self.known("test"), self.n_users, self.n_items)
        return self.__dict__[key]

    def summary(self) -> dict:
        return {"name": self.name, "description": self.description, "train": len(self.train),
                "valid": len(self.valid), "test": len(self.test),
                "valid_users": int(self.valid["u"].nunique()), "test_users": int(self.test["u"].nunique()), **self.meta}


def _frame(ds: Dataset) -> pd.DataFrame:
    return ds.interactions[COLUMNS]


def leave_last_out(ds: Dataset, seed: int = 0, min_interactions: int = 3) -> Split:
    """Last interaction per user is test, the one before validation (random order without timestamps)."""
    frame = _frame(ds)
    if ds.has_timestamp:
        ordered = chronological(frame)
        name, how = "leave-last-out", "by timestamp (stable sort)"
    elif ds.order == "file":
        ordered = frame.sort_values("row", kind="stable")
        name, how = "leave-last-out-by-file-order", "by file order (the data has no timestamps; rows are in time order)"
    else:
        rng = np.random.default_rng(seed)
        ordered = frame.assign(_key=rng.random(len(frame))).sort_values("_key", kind="stable").drop(columns="_key")
        name, how = "random-leave-one-out", f"at random (seed {seed}) because the data has no timestamps"
    from_end = ordered.groupby("u", sort=False).cumcount(ascending=False).to_numpy()
    counts = ordered.groupby("u", sort=False)["i"].transform("size").to_numpy()
    evaluable = counts >= min_interactions
    test_mask = evaluable & (from_end == 0)
    valid_mask = evaluable & (from_end == 1)
    train = ordered[~(test_mask | valid_mask)]
    if not test_mask.any():
        raise DataError(f"no user has {min_interactions} or more interactions, so nothing can be held out for testing")
    desc = (f"per user, the last interaction {how} is test and the one before is validation; "
            f"users with fewer than {min_interactions} interactions are in training only")
    return Split(name, desc, ds.n_users, ds.n_items, train.reset_index(drop=True),
                 ordered[valid_mask].reset_index(drop=True), ordered[test_mask].reset_index(drop=True),
                 meta={"train_only_users": int((~evaluable & (from_end == 0)).sum())})


def temporal_cutoff(ds: Dataset, valid_frac: float = 0.1, test_frac: float = 0.1) -> Split:
    """One global time cut: the latest `test_frac` of interactions is test, the `valid_frac` before it validation."""
    if not ds.has_timestamp:
        raise DataError("a temporal split needs timestamps, and this data has none")
    _check_fracs(valid_frac, test_frac)
    ordered = chronological(_frame(ds)).reset_index(drop=True)
    n = len(ordered)
    t0, t1 = int(n * (1 - valid_frac - test_frac)), int(n * (1 - test_frac))
    return Split("temporal-cutoff", f"global time cut: first {1 - valid_frac - test_frac:.0%} train, "
                 f"next {valid_frac:.0%} validation, last {test_frac:.0%} test", ds.n_users, ds.n_items,
                 ordered.iloc[:t0], ordered.iloc[t0:t1].reset_index(drop=True), ordered.iloc[t1:].reset_index(drop=True))


def random_split(ds: Dataset, valid_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0) -> Split:
    """Interactions assigned to train/validation/test at random (seeded)."""
    _check_fracs(valid_frac, test_frac)
    rng = np.random.default_rng(seed)
    frame = _frame(ds).reset_index(drop=True)
    draw = rng.random(len(frame))
    test = draw < test_frac
    valid = (draw >= test_frac) & (draw < test_frac + valid_frac)
    return Split("random", f"interactions drawn at random (seed {seed}): {test_frac:.0%} test, {valid_frac:.0%} validation",
                 ds.n_users, ds.n_items, frame[~(test | valid)], frame[valid].reset_index(drop=True),
                 frame[test].reset_index(drop=True))


def user_group_split(ds: Dataset, source_frac: float = 0.8, shots: int = 10, source_cutoff: bool = True) -> Split:
    """Transfer to new users: the earliest users are the source, the rest give few-shot data, validation, test.

    Target users keep only their first `shots` + 2 interactions (fewer if they have fewer, at least 3).
    With `source_cutoff` (and timestamps), source interactions later than the start of the target users'
    held-out period are dropped, so nothing trains on the future of what is scored.
    """
    if not 0 <= source_frac < 1:
        raise ConfigError("source_frac must be at least 0 and below 1")
    if shots < 0:
        raise ConfigError("shots cannot be negative")
    ordered = chronological(_frame(ds))
    first_seen = ordered.groupby("u", sort=False).cumcount()
    starts = ordered[first_seen == 0]["u"].to_numpy()  # users in order of first interaction
    n_source = int(round(len(starts) * source_frac))
    source_users = set(starts[:n_source].tolist())
    is_source = ordered["u"].isin(source_users).to_numpy()
    target = ordered[~is_source]
    pos = target.groupby("u", sort=False).cumcount().to_numpy()
    counts = target.groupby("u", sort=False)["i"].transform("size").to_numpy()
    used = np.minimum(counts, shots + 2)
    keep = (pos < used) & (used >= 3)
    target = target[keep]
    pos, used = pos[keep], used[keep]
    test = target[pos == used - 1]
    valid = target[pos == used - 2]
    few = target[pos < used - 2]
    source, cutoff, dropped = ordered[is_source], None, 0
    held = pd.concat([valid, test])
    if source_cutoff and len(held) and ds.has_timestamp and held["timestamp"].notna().all():
        cutoff = float(held["timestamp"].min())
        later = source["timestamp"] > cutoff
        source, dropped = source[~later], int(later.sum())
    train = pd.concat([source, few], ignore_index=True)
    cut = f"; source interactions after the target users' first held-out one dropped ({dropped:,})" if cutoff else ""
    return Split("user-group", f"earliest {source_frac:.0%} of users are the source; each later user gives "
                 f"{shots} interactions for training, the next for validation, the one after for test{cut}",
                 ds.n_users, ds.n_items, train, valid.reset_index(drop=True), test.reset_index(drop=True),
                 meta={"source_users": n_source, "target_users": int(test["u"].nunique()), "shots": shots,
                       "source_rows": int(len(source)), "source_cutoff": cutoff, "source_rows_dropped": dropped})


def time_windows(ds: Dataset, base_frac: float = 0.6, n_windows: int = 4) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Incremental protocol: the first `base_frac` of interactions in time, then `n_windows` equal windows."""
    if not ds.has_timestamp:
        raise DataError("time windows need timestamps, and this data has none")
    if not 0 < base_frac < 1 or n_windows < 1:
        raise ConfigError("base_frac must be in (0, 1) and n_windows at least 1")
    ordered = chronological(_frame(ds)).reset_index(drop=True)
    n = len(ordered)
    cut = int(n * base_frac)
    edges = np.linspace(cut, n, n_windows + 1).astype(int)
    windows = [ordered.iloc[edges[k]:edges[k + 1]].reset_index(drop=True) for k in range(n_windows)]
    return ordered.iloc[:cut].reset_index(drop=True), windows


def _check_fracs(valid_frac: float, test_frac: float) -> None:
    if not (0 <= valid_frac < 1 and 0 < test_frac < 1 and valid_frac + test_frac < 1):
        raise ConfigError("validation and test fractions must be in [0, 1) and sum to less than 1")


SPLITS = {
    "leave-last-out": leave_last_out,
    "temporal": temporal_cutoff,
    "random": random_split,
    "user-group": user_group_split,
}


def make_split(ds: Dataset, name: str = "leave-last-out", seed: int = 0) -> Split:
    if name not in SPLITS:
        raise ConfigError(f"unknown split {name!r}; choose from {', '.join(SPLITS)}")
    fn = SPLITS[name]
    return fn(ds, seed=seed) if name in ("leave-last-out", "random") else fn(ds)
