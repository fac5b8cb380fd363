"""Listing runs for the studio and `rectune runs list`: the index read as it is, with liveness derived.

Listing never writes on its own. The index is kept current by the workers (at every state change);
`reconcile` is the explicit, rate-limited check that also records runs whose folders appeared,
vanished or whose worker died without saying so, and it writes only what disagrees with the folders.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from recsys_core.runs.index import RunIndex
from recsys_core.runs.launcher import check_alive, live_status
from recsys_core.storage.rundir import ACTIVE, RunDir

_last_reconcile: dict[str, float] = {}
_lock = threading.Lock()


def reconcile(root: Path) -> None:
    """Make the index agree with the run folders: add missing runs, drop vanished ones, mark dead workers."""
    index = RunIndex(root)
    listed = {row["run_id"]: row for row in index.list()}
    folders = {p.parent.name: RunDir(p.parent) for p in root.glob("*/config.json")}
    for run_id, run in folders.items():
        row = listed.get(run_id)
        status = check_alive(run) if row is None or row["state"] in ACTIVE else None
        if row is None or (status is not None and status.get("state") != row["state"]):
            index.upsert(run)
    for run_id in set(listed) - set(folders):
        if not Path(listed[run_id]["run_dir"]).exists():
            index.remove(run_id)


def list_runs(root: Path, reconcile_every: float = 30.0) -> list[dict]:
    """Runs under `root`, newest first, each row's state as readers should show it.

    At most every `reconcile_every` seconds per root (0: now) the index is reconciled with the folders.
    """
    if not root.exists():
        return []
    key = str(root.resolve())
    with _lock:
        due = time.monotonic() - _last_reconcile.get(key, float("-inf")) >= reconcile_every
        if due:
            _last_reconcile[key] = time.monotonic()
    if due:
        reconcile(root)
    rows = []
    for row in RunIndex(root).list():
        run = RunDir(row["run_dir"])
        if not run.config_path.exists():
            continue  # its folder was removed: not shown (reconcile drops the row later)
        if row["state"] in ACTIVE:
            status = live_status(run)
            row = {**row, "state": status.get("state", row["state"]), "error": status.get("error")}
        rows.append(row)
    return rows
