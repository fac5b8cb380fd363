"""Read paths never write: polling, listing and loading a run leave every file as it was.

Liveness is decided by the writer side (the worker's heartbeat and status) or by the explicit,
rate-limited `reconcile`, which writes only where the index disagrees with the run folders.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys_core.insights import all_topk, user_recommendations
from recsys_core.recommend import recommend, recommend_for_user
from recsys_core.runs.execute import execute_run
from recsys_core.runs.finished import load_finished
from recsys_core.runs.index import RunIndex
from recsys_core.runs.launcher import check_alive, live_status, poll
from recsys_core.runs.listing import list_runs, reconcile
from recsys_core.runs.spec import RunSpec
from recsys_core.runs.worker import heartbeat
from recsys_core.storage.atomic import atomic_write_json
from recsys_core.storage.rundir import RunDir


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file's time and bytes; SQLite's -shm (readers' shared-memory marks, not data) is left out."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith("-shm")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from tests.conftest import make_interactions

    root = tmp_path_factory.mktemp("read")
    make_interactions(n_users=30, n_items=40, per_user=8).to_csv(root / "data.csv", index=False)
    spec = RunSpec.create(str(root / "data.csv"), "mf", model={"dim": 8}, train={"epochs": 2, "batch_size": 64},
                          device="cpu")
    result = execute_run(spec.save(root / "runs" / "done"))
    assert result.status == "finished"
    return root / "runs", result.run


def _ghost(root: Path, name: str) -> RunDir:
    """A run whose worker died without a word: status 'running' with a pid that is gone."""
    run = RunDir(root / name)
    atomic_write_json(run.config_path, {"model": {"family": "mf"}, "data": {"path": "demo"}})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    _status(run, "running", pid=proc.pid, host=socket.gethostname())
    return run


def _status(run: RunDir, state: str, **fields) -> None:
    """status.json as a worker that last wrote 10 s ago left it (past the launch grace)."""
    atomic_write_json(run.status_path, {"state": state, "created": time.time() - 60, "updated": time.time() - 10,
                                        **fields})


def test_polling_listing_and_loading_write_nothing(finished) -> None:
    root, run = finished
    list_runs(root, reconcile_every=3600)  # a process's first listing reconciles; later ones within the hour do not
    ghost = _ghost(root, "ghost")
    before = _snapshot(root)
    assert poll(run)["status"]["state"] == "finished"
    assert poll(ghost)["status"]["state"] == "interrupted"  # derived for the reader ...
    assert ghost.read_status()["state"] == "running"  # ... not written
    for _ in range(3):
        list_runs(root, reconcile_every=3600)
    loaded = load_finished(run)
    recommend(loaded, k=5)
    assert _snapshot(root) == before


def test_reconcile_writes_only_what_disagrees_with_the_folders(finished) -> None:
    root, run = finished
    ghost = _ghost(root, "ghost-2")
    reconcile(root)
    assert ghost.read_status()["state"] == "interrupted" and "resume with" in ghost.read_status()["error"]
    assert {r["run_id"]: r["state"] for r in RunIndex(root).list()}["ghost-2"] == "interrupted"
    settled = _snapshot(root)
    reconcile(root)  # nothing disagrees any more: nothing is written
    assert _snapshot(root) == settled


def test_a_live_worker_stays_running_and_a_stale_remote_one_is_gone(finished) -> None:
    root, _ = finished
    run = RunDir(root / "remote")
    atomic_write_json(run.config_path, {"model": {"family": "mf"}, "data": {"path": "demo"}})
    with heartbeat(run, every=0.1):
        _status(run, "running", pid=123456789, host="another-host")
        time.sleep(0.3)
        assert live_status(run)["state"] == "running"  # its heartbeat is fresh
    old = time.time() - 120
    os.utime(run.heartbeat_path, (old, old))
    assert live_status(run)["state"] == "interrupted"
    assert check_alive(run)["state"] == "interrupted"


def test_one_top_k_path_serves_cli_page_and_export(finished) -> None:
    _, run = finished
    loaded = load_finished(run)
    user = loaded.ds.users.ids[0]
    cli = recommend_for_user(loaded, user, k=7)
    table = recommend(loaded, [user], k=7, exclude="all")
    assert [r["item"] for r in cli["items"]] == table["item"].tolist()
    export = all_topk(loaded, k=7)
    assert export.loc[export["user"] == user, "item"].tolist() == table["item"].tolist()
    page = user_recommendations(loaded, user, k=7)
    at_test = recommend(loaded, [user], k=7, exclude="test")
    assert [r["item"] for r in page["items"]] == at_test["item"].tolist()
    assert page["hits"] == int(at_test["hit"].sum())
    assert not table["hit"].any()  # with every interaction excluded the held-out item cannot come back
    known = set(loaded.ds.interactions.loc[loaded.ds.interactions["user"] == user, "item"])
    assert not known & set(table["item"])
