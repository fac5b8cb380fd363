"""Peak-memory estimates made before anything is allocated, and the refusal in words when they do not fit.

Every family estimates its peak from its config and the data's sizes (`Recommender.memory_estimate`);
`check_fits` compares that with what the machine can give and raises a ResourceError naming the
option that would make it fit. The estimates are deliberately on the high side: being refused with
a reason beats being killed by the kernel halfway through.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import psutil

from recsys_core.errors import ResourceError

#: the share of the available memory a job may plan to use (the rest: Python, libraries, the OS)
USABLE_SHARE = 0.8
#: the evaluator's score block (users x items float32 elements), see eval/evaluator.py
SCORE_BLOCK_ELEMENTS = 1 << 25


@dataclass(frozen=True)
class DataSizes:
    """What the memory of a model depends on, read off the training history."""

    n_users: int
    n_items: int
    n_interactions: int
    max_user_length: int = 0
    #: sum over users of (interactions)^2: an upper bound on co-occurring item pairs
    co_occurrence_bound: int = 0
    #: the training batch size (0: the family's default)
    batch_size: int = 0

    @classmethod
    def of(cls, user_counts: np.ndarray, n_items: int, batch_size: int = 0) -> "DataSizes":
        counts = np.asarray(user_counts, dtype=np.int64)
        return cls(len(counts), int(n_items), int(counts.sum()), int(counts.max(initial=0)),
                   int((counts.astype(np.float64) ** 2).sum()), int(batch_size))

    @property
    def history_bytes(self) -> int:
        """The training and prediction-time histories (CSR) and the interaction frames behind them."""
        return int(self.n_interactions * (8 + 4 + 4 + 48) * 2 + self.n_users * 8 * 2)

    @property
    def scoring_bytes(self) -> int:
        """One evaluation block: scores, masks and the rank comparison's work space."""
        return int(min(SCORE_BLOCK_ELEMENTS, min(4096, max(1, self.n_users)) * self.n_items) * 4 * 4)


@dataclass
class MemoryEstimate:
    """Peak bytes by part, with the option that changes the estimate most."""

    parts: dict[str, int]
    note: str = ""
    option: str | None = None
    seconds: float | None = None  # an estimate of the fitting time, where it is the limit (EASE)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def describe(self) -> str:
        biggest = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return f"about {format_bytes(self.total)} (" + ", ".join(f"{k} {format_bytes(v)}" for k, v in biggest) + ")"

    def as_dict(self) -> dict:
        return {"bytes": self.total, "parts": dict(self.parts), "note": self.note, "option": self.option,
                "seconds": self.seconds}


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


def available_bytes() -> int:
    """Memory this process can still take: the lower of the machine's free memory and a cgroup limit."""
    free = int(psutil.virtual_memory().available)
    limit = _cgroup_limit()
    if limit is not None:
        # page cache (e.g. the file just read) counts as used in a cgroup but is given back on demand
        used = max(0, (_cgroup_usage() or 0) - _cgroup_reclaimable())
        free = min(free, max(0, limit - used))
    override = os.environ.get("RECTUNE_MEMORY_LIMIT_BYTES")  # for tests and shared machines
    if override:
        free = min(free, int(float(override)))
    return free


def _read_int(path: str) -> int | None:
    try:
        text = open(path).read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_limit() -> int | None:
    return _read_int("/sys/fs/cgroup/memory.max") or _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_reclaimable() -> int:
    for path, key in (("/sys/fs/cgroup/memory.stat", "inactive_file"),
                      ("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file")):
        try:
            for line in open(path):
                name, _, value = line.partition(" ")
                if name == key and value.strip().isdigit():
                    return int(value)
        except OSError:
            continue
    return 0


def _cgroup_usage() -> int | None:
    return _read_int("/sys/fs/cgroup/memory.current") or _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")


def check_fits(family: str, estimate: MemoryEstimate, available: int | None = None) -> None:
    """Refuse in one line, before allocating, when the estimate exceeds what this machine can give."""
    available = available_bytes() if available is None else available
    budget = int(available * USABLE_SHARE)
    if estimate.total <= budget:
        return
    hint = f"; lower {estimate.option} or use a smaller catalogue (--min-item-interactions)" if estimate.option else \
        "; use fewer items (--min-item-interactions) or users (--min-user-interactions)"
    raise ResourceError(f"{family} would need {estimate.describe()}, but this machine can give about "
                        f"{format_bytes(budget)}{hint}", field=estimate.option)
