"""Explicit, reported cleaning: every removed row is counted under a reason."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from recsys_core.errors import ConfigError

DEDUPE_CHOICES = ("last", "first", "none")


@dataclass
class CleaningOptions:
    """What to remove before training. Defaults keep every valid interaction, one per (user, item)."""

    drop_invalid: bool = field(default=False, metadata={"help": "drop rows with a missing id, rating or timestamp instead of failing"})
    dedupe: str = field(default="last", metadata={"help": "repeated (user, item) pairs: keep the last, the first, or all ('none')"})
    min_rating: float | None = field(default=None, metadata={"help": "drop interactions rated below this"})
    min_user_interactions: int = field(default=0, metadata={"help": "drop users with fewer interactions (after the steps above)"})
    min_item_interactions: int = field(default=0, metadata={"help": "drop items with fewer interactions (after the steps above)"})

    def __post_init__(self) -> None:
        if self.dedupe not in DEDUPE_CHOICES:
            raise ConfigError(f"dedupe must be one of {', '.join(DEDUPE_CHOICES)}, not {self.dedupe!r}")
        if self.min_user_interactions < 0 or self.min_item_interactions < 0:
            raise ConfigError("minimum interaction counts cannot be negative")


@dataclass
class CleaningStep:
    step: str
    reason: str
    rows_before: int
    rows_after: int

    @property
    def removed(self) -> int:
        return self.rows_before - self.rows_after

    def as_dict(self) -> dict:
        return {**asdict(self), "removed": self.removed}


def pair_codes(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (user, item) pair, so repeats are found by hashing one integer column, not two of text."""
    user, item = (_codes(frame[c]) for c in ("user", "item"))
    return user * (int(item.max(initial=0)) + 1) + item


def _codes(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64)
    return pd.factorize(column)[0].astype(np.int64)


def repeated_pairs(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose (user, item) pair occurs more than once (every occurrence)."""
    return pd.Series(pair_codes(frame)).duplicated(keep=False).to_numpy()


def _dedupe(frame: pd.DataFrame, keep: str, has_timestamp: bool) -> pd.DataFrame:
    """One row per (user, item); only the rows of repeated pairs are sorted, which is few in real logs."""
    repeated = repeated_pairs(frame)
    if not repeated.any():
        return frame
    rows = frame[repeated].assign(_pos=np.flatnonzero(repeated))
    # 'Last' means latest in time, then latest in the file: the stable sort keeps file order on ties.
    ordered = rows.sort_values(["timestamp", "row"], kind="stable") if has_timestamp else rows
    kept = ordered.drop_duplicates(["user", "item"], keep=keep)["_pos"].to_numpy()
    mask = ~repeated
    mask[kept] = True
    return frame[mask]


def clean(frame: pd.DataFrame, invalid: np.ndarray, options: CleaningOptions, has_timestamp: bool) -> tuple[pd.DataFrame, list[CleaningStep]]:
    """Apply the cleaning steps in a fixed order and report each one, including those that removed nothing."""
    steps: list[CleaningStep] = []

    def record(step: str, reason: str, before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
        steps.append(CleaningStep(step, reason, len(before), len(after)))
        return after

    out = frame
    if options.drop_invalid:
        out = record("drop_invalid", "missing user, item, rating or timestamp", out, out[~invalid])
    if options.min_rating is not None:
        out = record("min_rating", f"rating below {options.min_rating:g}", out, out[out["rating"] >= options.min_rating])
    if options.dedupe != "none":
        out = record("dedupe", f"repeated (user, item) pair, kept the {options.dedupe}", out,
                     _dedupe(out, options.dedupe, has_timestamp))
    if options.min_user_interactions > 1:
        counts = out.groupby("user")["item"].transform("size")
        out = record("min_user_interactions", f"user with fewer than {options.min_user_interactions} interactions",
                     out, out[counts >= options.min_user_interactions])
    if options.min_item_interactions > 1:
        counts = out.groupby("item")["user"].transform("size")
        out = record("min_item_interactions", f"item with fewer than {options.min_item_interactions} interactions",
                     out, out[counts >= options.min_item_interactions])
    return out.reset_index(drop=True), steps
