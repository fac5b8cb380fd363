"""The job launcher with real subprocesses: stop, SIGKILL -> interrupted -> resume, dead-worker detection."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from recsys_core.runs.launcher import check_alive, launch, pid_alive, poll, stop
from recsys_core.storage.atomic import atomic_write_json
from recsys_core.storage.rundir import RunDir
from tests.conftest import ROOT

SLOW_SASREC = ["--model", "sasrec", "--epochs", "400", "--device", "cpu", "--config"]


def _config(tmp_path: Path) -> str:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"model": {"hidden": 16, "heads": 2, "inner": 32, "max_len": 10},
                                "train": {"batch_size": 4, "patience": 0}}))
    return str(path)


def _wait(predicate, timeout: float = 120.0, every: float = 0.2) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def _checkpoint_epoch(run: RunDir) -> int:
    try:
        return json.loads((run.checkpoint_dir / "loop.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_sigkill_marks_interrupted_and_resume_finishes(tmp_path, tiny_folder) -> None:
    run = launch(["--data", str(tiny_folder), *SLOW_SASREC, _config(tmp_path)], tmp_path / "runs" / "killed")
    assert _wait(lambda: _checkpoint_epoch(run) >= 2), run.log_path.read_text()
    pid = run.read_status()["pid"]
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    assert _wait(lambda: not pid_alive(pid), 10)
    assert _wait(lambda: check_alive(run).get("state") == "interrupted", 10)
    status = run.read_status()
    assert "resume with" in status["error"]
    # The last checkpoint is intact and loadable.
    epoch_at_kill = _checkpoint_epoch(run)
    assert load_file(str(run.checkpoint_dir / "model.safetensors"))
    # Resume in a real subprocess with fewer epochs left so it finishes quickly.
    cfg = run.read_config()
    cfg["train"]["epochs"] = epoch_at_kill + 2
    atomic_write_json(run.config_path, cfg)  # the test shortens the run by hand; the library never rewrites it
    res = subprocess.run([sys.executable, "-m", "recsys_core", "train", "--resume", str(run.path), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "finished"
    assert f"resumed at epoch {epoch_at_kill}" in res.stderr
    assert run.read_status()["state"] == "finished"
    evals = [m["epoch"] for m in run.read_metrics() if m["type"] == "eval"]
    assert evals[-1] == epoch_at_kill + 2  # continued, not restarted


def test_stop_is_clean_and_keeps_the_model(tmp_path, tiny_folder) -> None:
    run = launch(["--data", str(tiny_folder), *SLOW_SASREC, _config(tmp_path)], tmp_path / "runs" / "stopped")
    assert _wait(lambda: len([m for m in run.read_metrics() if m["type"] == "step"]) >= 3), run.log_path.read_text()
    status = stop(run, grace=60)
    assert status["state"] == "stopped"
    assert "stop requested" in status.get("reason", "")  # stopped by itself at the next step, not killed
    assert (run.model_dir / "weights.safetensors").exists()
    assert run.read_eval()["test"]["n_users"] > 0


def test_poll_reports_metrics_while_running(tmp_path, tiny_folder) -> None:
    run = launch(["--data", str(tiny_folder), *SLOW_SASREC, _config(tmp_path)], tmp_path / "runs" / "polled")
    try:
        assert _wait(lambda: len([m for m in poll(run)["metrics"] if m["type"] == "step"]) >= 2)
        state = poll(run)["status"]
        assert state["state"] == "running" and pid_alive(state["pid"])
    finally:
        stop(run, grace=30)


def test_dead_worker_before_any_status_is_detected(tmp_path) -> None:
    run = RunDir(tmp_path / "runs" / "ghost")
    atomic_write_json(run.config_path, {"model": {"family": "mf"}, "data": {"path": "demo"}})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status("running", pid=proc.pid)
    time.sleep(2.1)
    assert check_alive(run)["state"] == "interrupted"
