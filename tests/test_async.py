"""Asynchronous (Hogwild) training: real forked workers on shared weights, through the real run machinery.

Two workers train to a loss below the start and both apply updates (counted in the results), the
staleness of their reads is recorded, the checkpoint resumes, async runs say they are not deterministic,
a stop request ends them cleanly, a killed worker ends the run in words, and combinations that cannot
work are refused naming the option.
"""
from __future__ import annotations

import json
import os
import signal

import psutil
import pytest
import torch

from recsys_core.errors import ConfigError
from recsys_core.runs.execute import execute_run
from recsys_core.runs.launcher import check_alive, launch, stop
from recsys_core.runs.spec import RunSpec
from recsys_core.storage.atomic import atomic_write_json
from recsys_core.train.hogwild import check_async
from tests.test_jobs import _checkpoint_epoch, _wait

ASYNC = {"async_workers": 2, "batch_size": 16, "log_every": 1, "patience": 0, "lr": 1e-2}


@pytest.mark.parametrize("family,model", [("mf", {"dim": 8}), ("lightgcn", {"dim": 8, "layers": 2})])
def test_two_workers_train_shared_weights_and_both_apply_updates(tmp_path, tiny_folder, family, model) -> None:
    spec = RunSpec.create(str(tiny_folder), family, model=model, train={**ASYNC, "epochs": 3}, device="cpu")
    run = spec.save(tmp_path / family)
    result = execute_run(run)
    assert result.status == "finished", run.read_status()
    stats = run.read_eval()["async"]
    assert stats["workers"] == 2 and all(n > 0 for n in stats["per_worker_steps"])
    assert sum(stats["per_worker_steps"]) == stats["steps"] == run.read_eval()["steps"]
    assert stats["updates"] == ("sparse" if family == "mf" else "dense")  # mf writes only the rows a batch touched
    steps = [m for m in run.read_metrics() if m["type"] == "step"]
    assert {m["worker"] for m in steps} == {0, 1}
    assert all(m["staleness"] >= 0 for m in steps) and stats["staleness_max"] >= 1  # they did overlap
    first, last = steps[0]["loss"], sum(m["loss"] for m in steps[-6:]) / 6
    assert last < first, (first, last)
    assert run.read_config()["deterministic"] is False and run.read_eval()["deterministic"] is False
    assert result.test["ndcg@10"] > 0
    # validation reads the weights the workers wrote (not vectors cached before they wrote them)
    valid = [m["valid"] for m in run.read_metrics() if m["type"] == "eval"]
    assert len(valid) == 3 and valid[0] != valid[-1]


def test_an_async_checkpoint_resumes(tmp_path, tiny_folder) -> None:
    spec = RunSpec.create(str(tiny_folder), "mf", model={"dim": 8}, train={**ASYNC, "epochs": 2}, device="cpu")
    run = spec.save(tmp_path / "resume")
    assert execute_run(run).status == "finished"
    assert _checkpoint_epoch(run) == 2
    cfg = run.read_config()
    cfg["train"]["epochs"] = 4  # the test extends the run by hand; the library never rewrites a spec
    atomic_write_json(run.config_path, cfg)
    result = execute_run(run, resume=True)
    assert result.status == "finished"
    evals = [m["epoch"] for m in run.read_metrics() if m["type"] == "eval"]
    assert evals == [1, 2, 3, 4]
    assert run.read_eval()["async"]["steps"] > 0


def _workers(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children() if "python" in p.name().lower()]


def _long_async(tmp_path, tiny_folder, name: str):
    cfg = tmp_path / f"{name}.json"
    cfg.write_text(json.dumps({"model": {"dim": 8}, "train": {**ASYNC, "batch_size": 2}}))
    run = launch(["--data", str(tiny_folder), "--model", "mf", "--epochs", "500", "--device", "cpu", "--config", str(cfg)],
                 tmp_path / "runs" / name)
    assert _wait(lambda: any(m["type"] == "eval" for m in run.read_metrics()), 180), run.log_path.read_text()[-2000:]
    pid = run.read_status()["pid"]
    assert _wait(lambda: len(_workers(pid)) >= 2, 30)
    return run, pid


def test_a_stop_request_ends_an_async_run_cleanly(tmp_path, tiny_folder) -> None:
    run, pid = _long_async(tmp_path, tiny_folder, "stopped")
    workers = _workers(pid)
    stop(run, grace=60)
    assert _wait(lambda: check_alive(run).get("state") not in ("running", "queued"), 90)
    status = run.read_status()
    assert status["state"] == "stopped" and "stop requested" in status["reason"]
    assert (run.model_dir / "model.json").exists()
    assert _wait(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 30)


def test_a_killed_worker_ends_the_run_in_words(tmp_path, tiny_folder) -> None:
    run, pid = _long_async(tmp_path, tiny_folder, "killed")
    os.kill(_workers(pid)[0].pid, signal.SIGKILL)
    assert _wait(lambda: check_alive(run).get("state") not in ("running", "queued"), 90)
    status = run.read_status()
    assert status["state"] == "failed", status
    assert "async worker" in status["error"] and "exit code -9" in status["error"] and "resume" in status["error"]


def test_combinations_that_cannot_work_are_refused_naming_the_option() -> None:
    check_async(0, torch.device("cuda"), 4)  # synchronous: nothing to check
    with pytest.raises(ConfigError, match="device cpu") as err:
        check_async(2, torch.device("cuda"), 1)
    assert err.value.field == "async_workers"
    with pytest.raises(ConfigError, match="--nproc"):
        check_async(2, torch.device("cpu"), 2)
