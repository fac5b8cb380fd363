"""SQLite index of runs (WAL mode) for quick listing; rebuilt from the run directories, which are the truth."""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from recsys_core.storage.rundir import RunDir

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    run_dir TEXT NOT NULL,
    family TEXT, data TEXT, base TEXT, strategy TEXT,
    state TEXT, error TEXT,
    created REAL, updated REAL,
    valid_ndcg REAL, test_ndcg REAL, test_recall REAL,
    train_seconds REAL, trainable_params INTEGER, total_params INTEGER, device TEXT,
    config TEXT
)
"""
COLUMNS = ["run_id", "run_dir", "family", "data", "base", "strategy", "state", "error", "created", "updated",
           "valid_ndcg", "test_ndcg", "test_recall", "train_seconds", "trainable_params", "total_params", "device", "config"]


class RunIndex:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / "index.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(SCHEMA)
        return conn

    def upsert(self, run: RunDir) -> None:
        row = row_for(run)
        if row is None:
            return
        with closing(self._connect()) as conn:
            conn.execute(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                         [row[c] for c in COLUMNS])

    def remove(self, run_id: str) -> None:
        with closing(self._connect()) as conn:
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def list(self) -> list[dict]:
        """Every row, newest first. Reads only: no folder, table or journal mode is created here."""
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        with closing(conn):
            conn.execute("PRAGMA busy_timeout=30000")
            conn.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY created DESC")]
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

    def sync(self) -> list[dict]:
        """Re-read every run directory under the root; drop rows whose directory is gone (an explicit rebuild)."""
        seen = set()
        if self.root.exists():
            for cfg in sorted(self.root.glob("*/config.json")):
                run = RunDir(cfg.parent)
                self.upsert(run)
                seen.add(run.run_id)
        with closing(self._connect()) as conn:
            for (run_id,) in conn.execute("SELECT run_id FROM runs").fetchall():
                if run_id not in seen and not Path(conn.execute("SELECT run_dir FROM runs WHERE run_id=?", (run_id,)).fetchone()[0]).exists():
                    conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        return self.list()


def row_for(run: RunDir) -> dict | None:
    try:
        config = run.read_config()
    except Exception:
        return None
    status = run.read_status()
    ev = run.read_eval() or {}
    strategy = config.get("strategy") or {}
    return {
        "run_id": run.run_id, "run_dir": str(run.path), "family": config.get("model", {}).get("family"),
        "data": config.get("data", {}).get("path"), "base": config.get("base", "none"),
        "strategy": strategy.get("name") if isinstance(strategy, dict) else str(strategy),
        "state": status.get("state", "queued"), "error": status.get("error"),
        "created": status.get("created", time.time()), "updated": status.get("updated"),
        "valid_ndcg": (ev.get("valid") or {}).get("ndcg@10"), "test_ndcg": (ev.get("test") or {}).get("ndcg@10"),
        "test_recall": (ev.get("test") or {}).get("recall@10"), "train_seconds": ev.get("train_seconds"),
        "trainable_params": ev.get("trainable_params"), "total_params": ev.get("total_params"),
        "device": status.get("device"), "config": json.dumps(config),
    }
