"""AppTest for the Live page: a real replay job's figures, its update decisions, saved prequential results,
and Start replay launching a real job named in the URL."""
from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from recsys_core.data.source import DataSource
from recsys_core.runs.launcher import live_status
from recsys_core.serving.jobs import list_live_jobs, live_snapshot, replay_frame, replay_summary
from recsys_core.serving.replay import LiveSpec, execute_live, stop_live_job
from recsys_core.storage.atomic import atomic_write_json
from recsys_core.storage.rundir import RunDir
from tests.conftest import ROOT, make_interactions
from tests.test_jobs import _wait


@pytest.fixture(scope="module")
def live_runs(tmp_path_factory):
    """A runs folder holding one finished replay (run in this process: base, service, stream) and a saved
    prequential comparison (a real run_prequential on the same tiny data)."""
    from recsys_core.data.source import load_source
    from recsys_core.experiments.common import ExperimentOptions
    from recsys_core.experiments.prequential import run_prequential
    from recsys_core.experiments.report import save_experiment

    root = tmp_path_factory.mktemp("live") / "runs"
    data = tmp_path_factory.mktemp("data") / "tiny.csv"
    make_interactions(n_users=40, n_items=40, per_user=9).to_csv(data, index=False)
    job = RunDir(root / "live" / "live-mf-1")
    job.path.mkdir(parents=True)
    spec = LiveSpec(DataSource(str(data)), "mf", speed=0, batch=10, update_every=40, update_epochs=2, base_epochs=3)
    atomic_write_json(job.path / "live.json", spec.to_json())
    assert execute_live(job) == "finished"
    options = ExperimentOptions(family="mf", train={"epochs": 2, "patience": 0, "batch_size": 64}, seed=0, device="cpu")
    result = run_prequential(load_source(DataSource(str(data))), options, updates=2, score_batch=50)
    save_experiment({**result, "data": "tiny.csv"}, root / "experiments" / "prequential")
    return root, data


@pytest.fixture
def app(live_runs, tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("RECTUNE_RUNS_DIR", str(live_runs[0]))
    monkeypatch.setenv("RECTUNE_UPLOADS_DIR", str(tmp_path / "uploads"))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)


def test_snapshot_figures_add_up_for_a_finished_replay(live_runs) -> None:
    root, data = live_runs
    row = next(r for r in list_live_jobs(root / "live") if r["job_id"] == "live-mf-1")
    assert (row["state"], row["family"], row["dataset"]) == ("finished", "mf", "tiny.csv")
    snapshot = live_snapshot(RunDir(row["path"]))
    summary = replay_summary(snapshot)
    stream = len(pd.read_csv(data)) - int(360 * 0.6)
    assert summary["replayed"] == summary["total"] == stream
    frame = replay_frame(snapshot["records"])
    assert frame["events"].sum() == stream and frame["events replayed"].is_monotonic_increasing
    # the rolling mean is the size-weighted mean of the last batches, so it stays within their range
    assert frame["ndcg@10 (rolling)"].between(frame["ndcg@10"].min(), frame["ndcg@10"].max()).all()
    assert summary["accepted"] + summary["rejected"] == len(snapshot["versions"])


def test_live_page_shows_the_replay_its_versions_and_the_saved_comparison(app: AppTest, live_runs) -> None:
    app.run()
    app.switch_page("pages/live.py").run()
    assert not app.exception, app.exception
    assert app.query_params["live"] == "live-mf-1"  # the page names the replay it shows, so a reload keeps it
    tiles = {m.label: m.value for m in app.metric}
    assert tiles["State"] == "finished"
    assert tiles["Events replayed"] == "144"
    assert any("Finished: 144 events replayed" in s.value for s in app.success)
    saved = app.dataframe[-1].value
    assert set(saved["arm"]) == {"no_update", "retrain", "streaming"}
    assert saved.loc[saved["arm"] == "retrain", "verdict"].item() == "reference"
    assert not [b for b in app.button if b.label in ("Stop", "Resume")]  # nothing to stop or resume when finished


def test_start_replay_launches_a_job_named_in_the_url_and_stop_settles_it(app: AppTest, live_runs, tmp_path) -> None:
    app.run()
    app.switch_page("pages/live.py").run()
    app.selectbox(key="live.family").set_value("mf")
    app.number_input(key="live.base_epochs").set_value(2)
    app.number_input(key="live.speed").set_value(20.0)
    app.button(key="live.start").click().run()
    assert not app.exception and not app.error, (app.exception, [e.value for e in app.error])
    started = app.query_params["live"]
    assert started != "live-mf-1"
    job = RunDir(live_runs[0] / "live" / started)
    try:
        assert live_status(job)["state"] in ("queued", "running")
        assert app.selectbox(key="live.chosen").value == started  # the new job is the one shown, not picked by hand
    finally:
        assert stop_live_job(job)["state"] in ("stopped", "finished", "failed")
    assert _wait(lambda: live_status(job)["state"] not in ("queued", "running"), timeout=30)
