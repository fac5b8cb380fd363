"""Leakage audit: does anything a model trains on, stops early on, or reads at prediction time hold an answer?

Rows are compared by their `row` id (their position in the loaded file), so an interaction copied into
another frame is still recognised.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_core.data.splits import Split


def _rows(frame: pd.DataFrame | None) -> set[int]:
    return set() if frame is None or not len(frame) else set(frame["row"].astype(np.int64).tolist())


def leaks(split: Split, trained: pd.DataFrame, selected: pd.DataFrame | None = None,
          scored_after: bool = False) -> list[str]:
    """What leaks, in words (empty when nothing does).

    `trained`: every interaction the model read while training (targets and context); `selected`: what
    early stopping validated on (default: the split's validation targets). With `scored_after`, the whole
    test period (targets and their context) must lie after everything trained on, as in a time-window
    protocol; otherwise each user's training interactions must not be later than that user's test item.
    """
    valid, test = _rows(split.valid), _rows(split.test)
    selected_rows = valid if selected is None else _rows(selected)
    trained_rows = _rows(trained)
    problems = []
    if trained_rows & (valid | test):
        problems.append(f"training read {len(trained_rows & (valid | test))} validation or test rows")
    if selected_rows & test:
        problems.append(f"early stopping validated on {len(selected_rows & test)} test rows")
    if _rows(split.known("valid")) & (valid | test):
        problems.append("the history known when predicting validation holds validation or test rows")
    if _rows(split.known("test")) & test:
        problems.append("the history known when predicting test holds test rows")
    problems += _time_leaks(split, trained, scored_after)
    return problems


def _time_leaks(split: Split, trained: pd.DataFrame, scored_after: bool) -> list[str]:
    if not len(trained) or not len(split.test) or trained["timestamp"].isna().any():
        return []
    if scored_after:
        scored = pd.concat([split.test, split.test_context]) if split.test_context is not None else split.test
        later = int((trained["timestamp"] > scored["timestamp"].min()).sum())
        return [f"{later} trained rows are later than the start of the scored period"] if later else []
    first_test = split.test.groupby("u")["timestamp"].min()
    when = trained["u"].map(first_test)
    later = int((trained["timestamp"] > when).sum())  # users without a test item map to NaN: never later
    return [f"{later} trained rows are later than their user's test item"] if later else []
