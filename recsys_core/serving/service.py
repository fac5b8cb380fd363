"""The service's state behind the HTTP routes: the current model version, the event log, request metrics.

The current version is one reference. A swap replaces it, so in-flight requests finish on the version
they started with and no request is dropped or sees half a model. Posted events land in the log at
once; a refresher thread folds them into the served history (so recommendations stop repeating what a
user just did, and history-reading models react) at most a fraction of a second later.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.serving.events import EventLog
from recsys_core.serving.served import ServedModel
from recsys_core.storage.atomic import atomic_write_json, read_json

LATENCY_WINDOW = 10_000  # recent requests the latency percentiles are computed over
REFRESH_SECONDS = 0.2


class Metrics:
    """Request counts by route and status, and recent latencies (milliseconds) by route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.latency: dict[str, deque] = defaultdict(lambda: deque(maxlen=LATENCY_WINDOW))

    def record(self, route: str, status: int, ms: float) -> None:
        with self._lock:
            self.counts[route][str(status)] += 1
            self.latency[route].append(ms)

    def snapshot(self) -> dict:
        with self._lock:
            routes = {}
            for route, by_status in self.counts.items():
                values = np.array(self.latency[route], dtype=float)
                routes[route] = {"requests": int(sum(by_status.values())), "by_status": dict(by_status),
                                 "errors_5xx": int(sum(n for s, n in by_status.items() if s.startswith("5"))),
                                 **latency_summary(values)}
        return {"uptime_seconds": round(time.time() - self.started, 1), "routes": routes,
                "requests": sum(r["requests"] for r in routes.values())}


def latency_summary(values: np.ndarray) -> dict:
    if not len(values):
        return {"latency_ms": {}}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"latency_ms": {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3),
                           "max": round(float(values.max()), 3), "window": int(len(values))}}


class Service:
    """What `rectune serve` holds: the current version, the events, the metrics and the version history."""

    def __init__(self, state_dir: str | Path, served: ServedModel) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log = EventLog(self.state_dir / "events.jsonl")
        self.metrics = Metrics()
        self.current = served.with_events(self.log.frame())
        self._folded = self.log.count  # events the current history holds
        self._swap_lock = threading.Lock()
        self.updater = None  # set by the updater when one runs
        self._stop = threading.Event()
        self._refresher = threading.Thread(target=self._refresh_loop, name="history-refresher", daemon=True)
        self._refresher.start()

    # ------------------------------------------------------------ versions
    def swap(self, served: ServedModel, trained_events: int) -> None:
        """Serve `served` from now on (with every event posted so far in its history)."""
        with self._swap_lock:
            count = self.log.count
            self.current = served.with_events(self.log.frame())
            self._folded = count
            atomic_write_json(self.state_dir / "current.json", {**served.describe(), "trained_events": trained_events})

    def saved_current(self) -> dict | None:
        """The version this state folder served last (current.json), so a restart resumes it."""
        return read_json(self.state_dir / "current.json")

    # ------------------------------------------------------------ events
    def add_events(self, frame: pd.DataFrame) -> dict:
        """Store a validated batch; report how many of its users and items the current version knows."""
        total = self.log.append(frame)
        served = self.current
        new_users = int((served.users.indices(frame["user"].tolist(), missing="minus_one") < 0).sum())
        new_items = int((served.items.indices(frame["item"].tolist(), missing="minus_one") < 0).sum())
        return {"accepted": int(len(frame)), "events_total": total, "unknown_users": new_users,
                "unknown_items": new_items, "version": served.version}

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            if self.log.count != self._folded:
                with self._swap_lock:
                    count = self.log.count
                    self.current = self.current.with_events(self.log.frame())
                    self._folded = count

    def close(self) -> None:
        self._stop.set()
        if self.updater is not None:
            self.updater.close()
