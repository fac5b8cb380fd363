"""Faults end in a defined state with a message, never lose an earlier checkpoint, and resume where possible.

SIGKILL and SIGTERM at random steps of a real worker process, a full disk while checkpointing (simulated
at the file-writing call), a NaN loss, damaged checkpoint files, and a run folder deleted while the
studio shows it.
"""
from __future__ import annotations

import errno
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_core.storage.atomic import verify_manifest
from recsys_core.runs.launcher import check_alive, launch, pid_alive
from recsys_core.storage.rundir import RunDir
from recsys_core.runs.execute import execute_run
from recsys_core.runs.spec import RunSpec
from recsys_core.storage.atomic import atomic_write_json
from tests.conftest import ROOT
from tests.test_jobs import SLOW_SASREC, _checkpoint_epoch, _wait

STEPS = random.Random(2026)  # the random steps are drawn once, reproducibly
SMALL = {"hidden": 16, "heads": 2, "inner": 32, "max_len": 10}


def _slow_config(tmp_path: Path) -> str:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"model": SMALL, "train": {"batch_size": 4, "patience": 0, "log_every": 1}}))
    return str(path)


def _last_step(run: RunDir) -> int:
    steps = [m["step"] for m in run.read_metrics() if m["type"] == "step"]
    return max(steps, default=0)


def _resume(run: RunDir, extra_epochs: int = 1) -> subprocess.CompletedProcess:
    cfg = run.read_config()
    cfg["train"]["epochs"] = max(_checkpoint_epoch(run), 0) + extra_epochs
    atomic_write_json(run.config_path, cfg)  # the test shortens the run by hand; the library never rewrites it
    return subprocess.run([sys.executable, "-m", "recsys_core", "train", "--resume", str(run.path), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def _checkpoint_is_sound(run: RunDir) -> None:
    from safetensors.torch import load_file

    assert verify_manifest(run.checkpoint_dir) is None
    assert load_file(str(run.checkpoint_dir / "model.safetensors"))


@pytest.mark.parametrize("sig,step", [(signal.SIGKILL, STEPS.randint(20, 80)), (signal.SIGKILL, STEPS.randint(80, 200)),
                                      (signal.SIGTERM, STEPS.randint(20, 80)), (signal.SIGTERM, STEPS.randint(80, 200))],
                         ids=lambda v: getattr(v, "name", str(v)))
def test_a_signal_at_a_random_step_leaves_a_resumable_run(tmp_path, tiny_folder, sig, step) -> None:
    run = launch(["--data", str(tiny_folder), *SLOW_SASREC, _slow_config(tmp_path)], tmp_path / "runs" / "victim")
    assert _wait(lambda: _last_step(run) >= step and _checkpoint_epoch(run) >= 1, 180), run.log_path.read_text()[-2000:]
    pid = run.read_status()["pid"]
    os.killpg(os.getpgid(pid), sig)
    assert _wait(lambda: not pid_alive(pid), 30)
    assert _wait(lambda: check_alive(run).get("state") not in ("running", "queued"), 15)
    status = run.read_status()
    if sig == signal.SIGKILL:
        assert status["state"] == "interrupted" and "resume with" in status["error"]
    else:  # SIGTERM asks for a clean stop: the kept model is evaluated and saved
        assert status["state"] == "stopped" and "stop requested" in status["reason"]
        assert (run.model_dir / "model.json").exists()
    _checkpoint_is_sound(run)
    epoch = _checkpoint_epoch(run)
    res = _resume(run)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["status"] == "finished"
    assert f"resumed at epoch {epoch}" in res.stderr
    assert [m["epoch"] for m in run.read_metrics() if m["type"] == "eval"][-1] == epoch + 1


def _train(tmp_path: Path, tiny_folder: Path, name: str, epochs: int = 4, **train) -> RunDir:
    spec = RunSpec.create(str(tiny_folder), "mf", train={"epochs": epochs, "batch_size": 32, "patience": 0, **train},
                          device="cpu")
    return spec.save(tmp_path / "runs" / name)


def test_disk_full_while_checkpointing_fails_in_words_keeps_the_last_checkpoint_and_resumes(
        tmp_path, tiny_folder, monkeypatch) -> None:
    import safetensors.torch

    real_save = safetensors.torch.save_file
    calls = {"n": 0}

    def full_disk(tensors, filename, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:  # epochs 1 and 2 (model + best each) fit; epoch 3 finds the disk full half-way
            Path(filename).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        return real_save(tensors, filename, *args, **kwargs)

    import recsys_core.runs.checkpoints

    monkeypatch.setattr(recsys_core.runs.checkpoints, "save_file", full_disk)  # the checkpoint writer's own name
    run = _train(tmp_path, tiny_folder, "full-disk")
    result = execute_run(run)
    assert result.status == "failed"
    assert "No space left on device" in result.error and "the checkpoint of epoch 2 is intact" in result.error
    assert run.read_status()["state"] == "failed" and "rectune train --resume" in run.read_status()["error"]
    _checkpoint_is_sound(run)
    assert _checkpoint_epoch(run) == 2
    assert not list(run.path.glob("checkpoints/.*tmp"))  # the half-written checkpoint was cleaned up

    monkeypatch.setattr(recsys_core.runs.checkpoints, "save_file", real_save)  # space was freed
    messages: list[str] = []
    resumed = execute_run(run, resume=True, progress=messages.append)
    assert resumed.status == "finished" and any("resumed at epoch 2" in m for m in messages)


def test_a_nan_loss_fails_the_run_with_its_step_and_keeps_the_checkpoint(tmp_path, tiny_folder, monkeypatch) -> None:
    from recsys_core.models.mf import MF

    real_loss = MF.loss
    calls = {"n": 0}
    nan_at = STEPS.randint(20, 28)  # 8 steps an epoch: somewhere in epoch 3 or 4

    def poisoned(self, batch):
        calls["n"] += 1
        loss = real_loss(self, batch)
        return loss * math.nan if calls["n"] == nan_at else loss

    monkeypatch.setattr(MF, "loss", poisoned)
    run = _train(tmp_path, tiny_folder, "nan", epochs=6)
    result = execute_run(run)
    assert result.status == "failed" and "nan" in result.error.lower() and f"step {nan_at}" in result.error
    assert run.read_status()["state"] == "failed"
    epoch = _checkpoint_epoch(run)
    assert epoch == (nan_at - 1) // 8
    _checkpoint_is_sound(run)
    monkeypatch.setattr(MF, "loss", real_loss)  # e.g. a lower learning rate
    assert execute_run(run, resume=True).status == "finished"


def test_a_damaged_checkpoint_falls_back_to_the_previous_one_then_fails_in_words(tmp_path, tiny_folder) -> None:
    run = _train(tmp_path, tiny_folder, "damaged", epochs=3)
    assert execute_run(run).status == "finished"
    last, previous = run.checkpoint_dir, run.checkpoint_dir.with_name("previous")
    assert _checkpoint_epoch(run) == 3 and json.loads((previous / "loop.json").read_text())["epoch"] == 2
    blob = bytearray((last / "model.safetensors").read_bytes())
    blob[-5] ^= 0xFF  # one flipped bit in the weights: the file still parses, the checksum does not match
    (last / "model.safetensors").write_bytes(bytes(blob))
    res = _resume(run, extra_epochs=2)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "does not match its checksum" in res.stderr and "using the previous checkpoint (epoch 2)" in res.stderr

    for d in (run.checkpoint_dir, run.checkpoint_dir.with_name("previous")):
        (d / "trainer.pt").write_bytes(b"garbage")
    before = sorted(p.name for p in run.path.rglob("*"))
    res = subprocess.run([sys.executable, "-m", "recsys_core", "train", "--resume", str(run.path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 2 and "no usable checkpoint" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in run.path.rglob("*")) == before  # nothing deleted


@pytest.mark.parametrize("page", ["pages/train.py", "pages/recommendations.py", "pages/compare.py"])
def test_a_run_folder_deleted_while_the_studio_shows_it(tmp_path, tiny_folder, monkeypatch, page) -> None:
    from streamlit.testing.v1 import AppTest

    runs = tmp_path / "runs"
    for name in ("keeper", "doomed"):
        assert execute_run(_train(tmp_path, tiny_folder, name, epochs=1)).status == "finished"
    monkeypatch.setenv("RECTUNE_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["run"] = "doomed"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    shutil.rmtree(runs / "doomed")
    at.run()
    assert not at.exception, at.exception
    warnings = [w.value for w in [*at.warning, *at.sidebar.warning]]
    assert any("doomed no longer exist" in w for w in warnings), warnings
    at.run()  # the studio let go of the deleted run: no error, no repeated warning
    assert not at.exception and not any("doomed" in w.value for w in [*at.warning, *at.sidebar.warning])
