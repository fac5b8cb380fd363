"""Five browser sessions tour the studio at once while two training jobs run: no errors, no locked database,
and the job table agrees with the run folders throughout. (Latency percentiles: bench/concurrency.py.)"""
from __future__ import annotations

import threading
import time

from recsys_core.runs.index import RunIndex
from recsys_core.runs.launcher import stop
from recsys_core.runs.execute import execute_run
from recsys_core.runs.spec import RunSpec
from tests.conftest import make_interactions
from tests.e2e.load import browse_concurrently, start_training_jobs
from tests.e2e.test_studio_e2e import pytestmark, start_studio  # noqa: F401  (skip without chromium)

SESSIONS = 5


def test_five_sessions_browse_while_two_jobs_train(tmp_path) -> None:
    data = tmp_path / "shop.csv"
    make_interactions(n_users=60, n_items=40, per_user=10).to_csv(data, index=False)
    shown = execute_run(RunSpec.create(str(data), "mf", train={"epochs": 2}, device="cpu").save(
        tmp_path / "runs" / "shown"))
    assert shown.status == "finished"
    jobs = start_training_jobs(str(data), tmp_path, n=2)
    index_errors: list[str] = []
    listings: list[dict] = []
    done = threading.Event()

    def watch_the_index() -> None:  # a third reader of the SQLite index while the pages and the workers use it
        while not done.is_set():
            try:
                listings.append({r["run_id"]: r["state"] for r in RunIndex(tmp_path / "runs").sync()})
            except Exception as exc:  # noqa: BLE001
                index_errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_the_index, daemon=True)
    try:
        with start_studio(tmp_path) as url:
            watcher.start()
            result = browse_concurrently(f"{url}/?run=shown", sessions=SESSIONS, rounds=1)
            states = [j.read_status().get("state") for j in jobs]
    finally:
        done.set()
        for job in jobs:
            stop(job, grace=10)
    watcher.join(5)
    log = (tmp_path / "streamlit.log").read_text()

    assert result.errors == [], result.errors
    assert result.interactions == SESSIONS * 6
    assert states == ["running", "running"], states  # the jobs trained throughout the browsing
    assert index_errors == [] and "database is locked" not in log
    # once listed, a run stays listed, and its state only moves forward (no flapping between readers)
    order = {"queued": 0, "running": 1, "stopped": 2, "interrupted": 2, "finished": 2, "failed": 2}
    assert listings and {"shown", "load-job-0", "load-job-1"} <= set(listings[-1])
    for earlier, later in zip(listings, listings[1:]):
        assert set(earlier) <= set(later)
        assert all(order[later[r]] >= order[earlier[r]] for r in earlier)
    final = {r["run_id"]: r["state"] for r in RunIndex(tmp_path / "runs").sync()}
    for job in jobs:  # the table agrees with the run folders, which are the truth
        assert final[job.path.name] == job.read_status()["state"] in ("stopped", "interrupted")
    assert final["shown"] == "finished"
