"""Events posted to the service: validated like file input, then appended to a durable log.

A batch is accepted whole or refused whole, with every bad event's position and reason, so a client
never has to guess which half of a batch landed. Accepted events are appended to `events.jsonl` (one
JSON object per line, flushed before the reply) and the updater trains from that log.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_core.errors import RecTuneError

MAX_BATCH = 10_000  # events per POST: larger batches are refused (413) rather than held in memory at once
ID_MAX_LENGTH = 200
FIELDS = ("user", "item", "rating", "timestamp")


class BadEvents(RecTuneError):
    """A batch with at least one invalid event; `problems` names each one (position: reason)."""

    def __init__(self, problems: list[str], status: int = 422) -> None:
        self.problems, self.status = problems, status
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"{len(problems)} bad event(s), nothing was stored: {shown}")


def _id(value: Any, name: str) -> tuple[str | None, str | None]:
    """(the id as text, None) or (None, why it is not an id)."""
    if value is None:
        return None, f"missing '{name}'"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None, f"'{name}' must be a string or an integer, not {type(value).__name__}"
    text = str(value).strip()
    if not text:
        return None, f"'{name}' is empty"
    if len(text) > ID_MAX_LENGTH:
        return None, f"'{name}' is longer than {ID_MAX_LENGTH} characters"
    return text, None


def _number(value: Any, name: str, default: float) -> tuple[float | None, str | None]:
    if value is None:
        return default, None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"'{name}' must be a number, not {type(value).__name__}"
    if not math.isfinite(float(value)):
        return None, f"'{name}' must be finite, not {value}"
    return float(value), None


def validate_events(payload: Any, now: float | None = None) -> pd.DataFrame:
    """A frame user, item, rating, timestamp from `{"events": [...]}` or a bare list; BadEvents otherwise.

    A missing rating counts as 1 (an implicit interaction); a missing timestamp is the time it arrived.
    """
    events = payload.get("events") if isinstance(payload, dict) else payload
    if not isinstance(events, list):
        raise BadEvents(["the body must be a JSON list of events or an object {\"events\": [...]}"], 400)
    if not events:
        raise BadEvents(["the batch is empty"], 400)
    if len(events) > MAX_BATCH:
        raise BadEvents([f"{len(events):,} events in one batch; send at most {MAX_BATCH:,} per request"], 413)
    now = time.time() if now is None else now
    rows, problems = [], []
    for k, event in enumerate(events):
        if not isinstance(event, dict):
            problems.append(f"event {k}: must be an object with user and item, not {type(event).__name__}")
            continue
        unknown = sorted(set(event) - set(FIELDS))
        user, bad_user = _id(event.get("user"), "user")
        item, bad_item = _id(event.get("item"), "item")
        rating, bad_rating = _number(event.get("rating"), "rating", 1.0)
        stamp, bad_stamp = _number(event.get("timestamp"), "timestamp", now)
        reasons = [r for r in (bad_user, bad_item, bad_rating, bad_stamp) if r]
        if unknown:
            reasons.append(f"unknown field(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(FIELDS)})")
        if reasons:
            problems.append(f"event {k}: " + ", ".join(reasons))
        else:
            rows.append((user, item, rating, stamp))
    if problems:
        raise BadEvents(problems)
    return pd.DataFrame(rows, columns=list(FIELDS))


class EventLog:
    """The service's accepted events, appended to `events.jsonl` and kept in memory in arrival order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._frames = [read_event_log(self.path)]
        self.count = len(self._frames[0])

    def append(self, frame: pd.DataFrame) -> int:
        """Store a validated batch durably; returns the log's new length."""
        lines = "".join(json.dumps(r) + "\n" for r in frame.to_dict("records"))
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())
            self._frames.append(frame)
            self.count += len(frame)
            return self.count

    def frame(self, start: int = 0) -> pd.DataFrame:
        """Events from position `start` on (all of them by default)."""
        with self._lock:
            if len(self._frames) > 1:
                self._frames = [pd.concat(self._frames, ignore_index=True)]
            return self._frames[0].iloc[start:].reset_index(drop=True)


def read_event_log(path: str | Path) -> pd.DataFrame:
    """The events a log holds; a torn last line (a crash mid-write) is skipped, never fatal."""
    path = Path(path)
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    frame = pd.DataFrame(rows, columns=list(FIELDS))
    frame["user"] = frame["user"].astype(str)
    frame["item"] = frame["item"].astype(str)
    return frame.astype({"rating": float, "timestamp": float})
