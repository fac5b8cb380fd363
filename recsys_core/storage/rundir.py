"""A run directory: config.json, status.json, metrics.jsonl, model/, checkpoints/last/, eval.json.

The directory is the truth; the SQLite index only lists runs for quick browsing.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from recsys_core.errors import RecTuneError
from recsys_core.storage.atomic import atomic_write_json, read_json

STATES = ("queued", "running", "finished", "failed", "stopped", "interrupted")
ACTIVE = ("queued", "running")


def runs_root() -> Path:
    return Path(os.environ.get("RECTUNE_RUNS_DIR", "runs")).resolve()


def new_run_id(family: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{family}-{secrets.token_hex(2)}"


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    @property
    def run_id(self) -> str:
        return self.path.name

    # paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.json"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints" / "last"

    @property
    def stop_path(self) -> Path:
        return self.path / "STOP"

    @property
    def log_path(self) -> Path:
        return self.path / "worker.log"

    @property
    def heartbeat_path(self) -> Path:
        return self.path / "heartbeat"

    def exists(self) -> bool:
        return self.config_path.exists()

    # config (written once by RunSpec.save; never rewritten)
    def read_config(self) -> dict:
        config = read_json(self.config_path)
        if config is None:
            raise RecTuneError(f"{self.path}: not a run directory (config.json missing or unreadable)")
        return config

    # status
    def read_status(self) -> dict:
        return read_json(self.status_path, default={}) or {}

    def write_status(self, state: str | None = None, **fields: Any) -> dict:
        status = self.read_status()
        now = time.time()
        if state is not None:
            assert state in STATES, state
            status["state"] = state
            if state == "running" and "started" not in status:
                status["started"] = now
            if state not in ACTIVE:
                status["finished"] = now
        status.setdefault("created", now)
        status.setdefault("host", socket.gethostname())
        status.update(fields)
        status["updated"] = now
        atomic_write_json(self.status_path, status)
        return status

    # metrics
    def append_metrics(self, record: dict) -> None:
        line = json.dumps(record, default=float)
        with open(self.metrics_path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()

    def read_metrics(self) -> list[dict]:
        """Every complete JSON line (a line being written right now is skipped)."""
        if not self.metrics_path.exists():
            return []
        out = []
        with open(self.metrics_path) as fh:
            for line in fh:
                if line.endswith("\n"):
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return out

    # liveness (written by the worker only)
    def beat(self) -> None:
        """The worker is alive now (the heartbeat file's modification time)."""
        self.heartbeat_path.touch()

    def heartbeat_age(self) -> float | None:
        """Seconds since the worker last beat, or None if it never did."""
        try:
            return max(0.0, time.time() - self.heartbeat_path.stat().st_mtime)
        except OSError:
            return None

    # stop
    def request_stop(self) -> None:
        self.stop_path.write_text(str(time.time()))

    def stop_requested(self) -> bool:
        return self.stop_path.exists()

    def read_eval(self) -> dict | None:
        return read_json(self.eval_path)
