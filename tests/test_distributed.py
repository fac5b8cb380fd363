"""Data-parallel training: `rectune train --nproc 2` launches torchrun, 2 CPU ranks train with DDP over gloo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_core.train.distributed import Dist, shard, steps_per_rank, strip_nproc, torchrun_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("n_batches,world", [(7, 2), (8, 2), (1, 2), (5, 3), (2, 4)])
def test_shards_are_disjoint_cover_everything_and_have_equal_step_counts(n_batches, world) -> None:
    seen = []
    for rank in range(world):
        got = list(shard(({"j": j} for j in range(n_batches)), n_batches, Dist(rank, world)))
        assert len(got) == steps_per_rank(n_batches, Dist(rank, world))  # equal steps: no rank waits forever
        seen.append({b["j"] for b in got})
    assert set().union(*seen) == set(range(n_batches))
    if n_batches >= world:
        assert sum(len(s) for s in seen) <= n_batches + world - 1


def test_nproc_is_stripped_before_torchrun_relaunches() -> None:
    argv = ["train", "--data", "x.csv", "--nproc", "2", "--model", "mf", "--nproc=3"]
    cmd = torchrun_command(2, strip_nproc(argv))
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in cmd
    assert cmd[-5:] == ["train", "--data", "x.csv", "--model", "mf"]


@pytest.mark.parametrize("family", ["mf", "sasrec"])
def test_two_gloo_ranks_end_with_identical_weights_and_lower_loss(tmp_path, tiny_csv, family) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"train": {"epochs": 4, "batch_size": 16, "lr": 0.01, "log_every": 1,
                                            "patience": 0, "min_epochs": 0}}))
    run_dir = tmp_path / "runs" / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "recsys_core", "train", "--nproc", "2", "--data", str(tiny_csv),
                           "--model", family, "--config", str(config), "--run-dir", str(run_dir), "--device", "cpu",
                           "--json"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["test"]["n_users"] > 0

    ranks = json.loads((run_dir / "distributed.json").read_text())
    assert ranks["world_size"] == 2 and ranks["backend"] == "gloo"
    digests = [r["weights_sha256"] for r in ranks["ranks"]]
    assert len(digests) == 2 and digests[0] == digests[1] and ranks["ranks_agree"]
    assert ranks["ranks"][0]["steps"] == ranks["ranks"][1]["steps"] > 0

    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [s["loss"] for s in steps if s["type"] == "step"]
    per_epoch = {}
    for s in steps:
        if s["type"] == "step":
            per_epoch.setdefault(s["epoch"], []).append(s["loss"])
    first, last = min(per_epoch), max(per_epoch)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert len(losses) >= 4 and mean(per_epoch[last]) < mean(per_epoch[first])
    # only rank 0 wrote: one status, one model, one metrics stream with each step once
    assert [s["step"] for s in steps if s["type"] == "step"] == sorted({s["step"] for s in steps if s["type"] == "step"})
    assert (run_dir / "model" / "model.json").exists()
