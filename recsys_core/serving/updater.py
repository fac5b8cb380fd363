"""Learning from the stream: every N events (or T seconds) train a new version and swap it in if it is not worse.

Each update is an ordinary run directory (`STATE/versions/vNNNN/`): its config.json names the served
version as its `run:` base and trains with the incremental strategy (id tables grow for new users and
items, old data is replayed, L2-SP keeps shared weights near the parent's); a closed-form model is refitted.
Its data is the origin run's data plus every event so far except a held-back slice: each user's last new
event (for users with at least two new ones). Both the served version and the candidate rank those
held-back events; the candidate is swapped in unless it is significantly worse (the paired bootstrap's
95% interval of candidate minus served NDCG@10 lies wholly below zero). Every decision is kept in
`STATE/versions.jsonl` and in the version's own `version.json`.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.config_fields import check_fields
from recsys_core.errors import RecTuneError
from recsys_core.eval.pointwise import ndcg_at, target_ranks
from recsys_core.eval.significance import paired_bootstrap
from recsys_core.models import family_class
from recsys_core.runs.launcher import pid_alive, spawn
from recsys_core.runs.spec import RunSpec
from recsys_core.serving.served import RAW_COLUMNS, ServedModel, load_served
from recsys_core.storage.atomic import atomic_write_json
from recsys_core.storage.rundir import RunDir

MIN_HELD_BACK = 10  # below this many users with two new events, the latest 10% of new events are held back


@dataclass(frozen=True)
class UpdatePolicy:
    """When to update and with what budget (fixed before the stream is seen)."""

    every_events: int = field(default=1000, metadata={"help": "update after this many new events (0 = only on request)",
                                                      "min": 0})
    every_seconds: float = field(default=0.0, metadata={"help": "also update when events wait this long (0 = off)",
                                                        "min": 0.0})
    epochs: int = field(default=8, metadata={"help": "most epochs an update trains", "min": 1})
    patience: int = field(default=2, metadata={"help": "validations without improvement before an update stops",
                                               "min": 0})
    timeout: float = field(default=1800.0, metadata={"help": "seconds an update may take before it is abandoned",
                                                     "min": 1.0})

    def __post_init__(self) -> None:
        check_fields(self, "update option")


def held_back_mask(events: pd.DataFrame) -> np.ndarray:
    """Which new events are held back to judge the candidate: each user's last one (users with two or more)."""
    position = events.groupby("user", sort=False).cumcount().to_numpy()
    count = events.groupby("user", sort=False)["item"].transform("size").to_numpy()
    mask = (count >= 2) & (position == count - 1)
    if mask.sum() < MIN_HELD_BACK:
        mask = np.zeros(len(events), dtype=bool)
        mask[len(events) - max(1, len(events) // 10):] = True
    return mask


def heldback_ndcg(served: ServedModel, known_events: pd.DataFrame, held: pd.DataFrame) -> np.ndarray:
    """NDCG@10 of each held-back event under `served`, knowing `known_events` on top of its own data."""
    view = served.with_events(known_events) if len(known_events) else served
    users = served.users.indices(held["user"].astype(str).tolist(), missing="minus_one")
    items = served.items.indices(held["item"].astype(str).tolist(), missing="minus_one")
    return ndcg_at(target_ranks(view.model, view.history, users, items))


class Updater:
    """The background thread that turns posted events into new versions."""

    def __init__(self, service, origin: str | Path, policy: UpdatePolicy, trained_events: int = 0) -> None:
        self.service, self.policy = service, policy
        self.origin = RunDir(origin)
        spec = RunSpec.load(self.origin.path)
        self.origin_spec = spec
        frame = spec.load_data().interactions
        self.origin_frame = pd.DataFrame({"user": frame["user"].astype(str), "item": frame["item"].astype(str),
                                          "rating": frame["rating"].astype(float),
                                          "timestamp": frame["timestamp"].astype(float)})
        self.trained_events = trained_events  # events (a prefix of the log) the served version's data holds
        self.attempted = trained_events  # events seen by the last attempt, accepted or not
        self.state, self.last = "idle", None
        self._requested, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stream-updater", daemon=True)
        self._last_time = time.time()
        service.updater = self
        self._thread.start()

    def request(self) -> None:
        """Update now, whatever the policy says (POST /update)."""
        self._requested.set()

    def status(self) -> dict:
        pending = self.service.log.count - self.trained_events
        return {"state": self.state, "pending_events": pending, "trained_events": self.trained_events,
                "policy": asdict(self.policy), "last": self.last}

    def close(self) -> None:
        self._stop.set()

    def _due(self) -> bool:
        fresh = self.service.log.count - self.attempted
        if self._requested.is_set():
            return self.service.log.count > self.trained_events
        p = self.policy
        return fresh > 0 and ((p.every_events and fresh >= p.every_events) or
                              (p.every_seconds and time.time() - self._last_time >= p.every_seconds))

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            if not self._due():
                continue
            self._requested.clear()
            try:
                self.last = self.update_once()
            except RecTuneError as exc:  # a failed update is recorded; the served version stays
                self.last = {"decision": "failed", "error": str(exc), "at": time.time()}
                self._record(self.last)
            finally:
                self.state, self._last_time = "idle", time.time()

    # ------------------------------------------------------------ one update
    def update_once(self) -> dict:
        served, log = self.service.current, self.service.log
        end = log.count
        events = log.frame()[:end]
        new = events.iloc[self.trained_events:].reset_index(drop=True)
        self.attempted = end
        held_mask = held_back_mask(new)
        held = new[held_mask]
        train_events = pd.concat([events.iloc[: self.trained_events], new[~held_mask]], ignore_index=True)
        version = self._next_version()
        run = self._write_version(version, served, train_events)
        self.state = "training"
        started = time.time()
        self._train(run)
        seconds = time.time() - started
        self.state = "evaluating"
        candidate = load_served(run.path, version=version)
        now_scores = heldback_ndcg(served, train_events.iloc[self.trained_events:], held)
        new_scores = heldback_ndcg(candidate, train_events.iloc[:0], held)
        test = paired_bootstrap(new_scores, now_scores, seed=version)
        accepted = bool(test["ci_high"] >= 0)
        record = {"version": version, "run_dir": str(run.path), "parent": str(served.run_dir),
                  "parent_version": served.version, "new_events": int(len(new)), "held_back": int(len(held)),
                  "trained_on": int(len(self.origin_frame) + len(train_events)), "train_seconds": round(seconds, 2),
                  "ndcg_served": round(float(now_scores.mean()), 6), "ndcg_candidate": round(float(new_scores.mean()), 6),
                  "diff": round(test["diff"], 6), "ci_low": round(test["ci_low"], 6), "ci_high": round(test["ci_high"], 6),
                  "decision": "accepted" if accepted else "rejected", "at": time.time()}
        if accepted:
            self.service.swap(candidate, trained_events=end)
            self.trained_events = end
        atomic_write_json(run.path / "version.json", record)
        self._record(record)
        return record

    def _next_version(self) -> int:
        root = self.service.state_dir / "versions"
        taken = [int(p.name[1:]) for p in root.glob("v[0-9]*") if p.name[1:].isdigit()] if root.exists() else []
        return max(taken, default=0) + 1

    def _write_version(self, version: int, served: ServedModel, train_events: pd.DataFrame) -> RunDir:
        """The version's run directory: its data file and a RunSpec whose base is the served version."""
        path = self.service.state_dir / "versions" / f"v{version:04d}"
        path.mkdir(parents=True, exist_ok=True)
        data = pd.concat([self.origin_frame, train_events[RAW_COLUMNS]], ignore_index=True)
        data.to_csv(path / "stream-data.csv", index=False)
        spec0 = self.origin_spec
        source = spec0.data.over_csv(path / "stream-data.csv",
                                     f"{spec0.data.name or Path(spec0.data.path).name} + stream v{version}")
        trainable = family_class(spec0.family).trainable
        train = {**spec0.train.as_dict(), "epochs": self.policy.epochs, "patience": self.policy.patience,
                 "min_epochs": min(spec0.train.min_epochs, self.policy.epochs), "async_workers": 0}
        spec = RunSpec.create(source, spec0.family, model=spec0.model.as_dict(), train=train if trainable else None,
                              base=f"run:{served.run_dir}" if trainable else "none",
                              strategy="incremental" if trainable else None, split=spec0.split.name,
                              seed=spec0.seed + version, device=spec0.device)
        return spec.save(path)

    def _train(self, run: RunDir) -> None:
        """Run the version's spec as a worker process and wait for it (the service keeps serving meanwhile)."""
        pid = spawn(["train", "--run-dir", str(run.path)], run)
        deadline = time.time() + self.policy.timeout
        while pid_alive(pid) and time.time() < deadline and not self._stop.is_set():
            time.sleep(0.2)
        status = run.read_status()
        if status.get("state") != "finished":
            reason = status.get("error") or ("timed out" if time.time() >= deadline else
                                             f"the worker ended in state {status.get('state')!r}")
            raise RecTuneError(f"update {run.path.name} did not finish: {reason} (see {run.log_path})")

    def _record(self, record: dict) -> None:
        with open(self.service.state_dir / "versions.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def read_versions(state_dir: str | Path) -> list[dict]:
    """Every update decision a service recorded, oldest first."""
    path = Path(state_dir) / "versions.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out

