"""Every model family trains through the real run machinery on tiny data (table-driven)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.torch import load_file

from recsys_core.cli import main
from recsys_core.runs.index import RunIndex
from recsys_core.runs.execute import execute_run
from recsys_core.runs.finished import load_finished
from recsys_core.runs.spec import RunSpec

# Small but real configurations per family.
FAMILY_CONFIGS = {
    "pop": ({}, {}),
    "itemknn": ({}, {}),
    "ease": ({"l2": 50.0}, {}),
    "mf": ({"dim": 16}, {"epochs": 3, "batch_size": 64}),
    "ncf": ({"dim": 16, "hidden": [32]}, {"epochs": 3, "batch_size": 64}),
    "sasrec": ({"hidden": 16, "heads": 2, "inner": 32, "max_len": 10}, {"epochs": 3, "batch_size": 16}),
    "lightgcn": ({"dim": 16, "layers": 2}, {"epochs": 3, "batch_size": 64}),
    "two_tower": ({"dim": 16, "history": 10}, {"epochs": 3, "batch_size": 64}),
    "text_ctr": ({"candidates": 5, "samples_per_epoch": 16, "max_length": 48}, {"epochs": 1, "batch_size": 8}),
}
NEURAL = ["mf", "ncf", "sasrec", "lightgcn", "two_tower", "text_ctr"]


def _run(tmp_path, data, family, seed=0, **train_over):
    model_cfg, train_cfg = FAMILY_CONFIGS[family]
    spec = RunSpec.create(str(data), family, model=model_cfg, train={**train_cfg, **train_over}, seed=seed, device="cpu")
    return execute_run(spec.save(tmp_path / "runs" / f"{family}-{seed}"))


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_family_trains_saves_and_reloads(tmp_path, tiny_folder, family: str) -> None:
    result = _run(tmp_path, tiny_folder, family)
    run = result.run
    assert result.status == "finished", run.read_status()
    assert run.read_status()["state"] == "finished"
    assert {"ndcg@10", "hr@10", "n_users"} <= set(result.test)
    assert result.total_params > 0
    ev = run.read_eval()
    assert ev["test"] == result.test
    finished = load_finished(run)
    model, ds, split = finished.model, finished.ds, finished.split
    users = np.arange(min(8, ds.n_users))
    from recsys_core.eval import evaluate
    again = evaluate(model, split, "test").metrics
    assert again["ndcg@10"] == pytest.approx(result.test["ndcg@10"], abs=1e-6)
    if family in NEURAL:
        steps = [m for m in run.read_metrics() if m["type"] == "step"]
        evals = [m for m in run.read_metrics() if m["type"] == "eval"]
        assert steps and evals
        assert {"loss", "lr", "step", "epoch", "throughput"} <= set(steps[0])
        assert np.isfinite([s["loss"] for s in steps]).all()
        assert result.trainable_params == result.total_params  # scratch trains everything
    if family == "text_ctr":
        assert {"accuracy", "precision", "recall", "f1", "auc", "log_loss"} <= set(ev["classification"])
    assert model.full_scores(users, split.train_history).shape == (len(users), ds.n_items)


@pytest.mark.parametrize("family", ["mf", "sasrec", "ncf"])
def test_same_config_and_seed_give_the_same_metrics(tmp_path, tiny_folder, family: str) -> None:
    a = _run(tmp_path / "a", tiny_folder, family, seed=7)
    b = _run(tmp_path / "b", tiny_folder, family, seed=7)
    assert a.test == b.test and a.valid == b.valid
    losses = lambda r: [m["loss"] for m in r.run.read_metrics() if m["type"] == "step"]  # noqa: E731
    assert losses(a) == losses(b)


def test_exploding_loss_fails_the_run_with_a_reason(tmp_path, tiny_folder) -> None:
    result = _run(tmp_path, tiny_folder, "mf", lr=1e12, optimizer="sgd", grad_clip=0.0, epochs=5)
    assert result.status == "failed"
    status = result.run.read_status()
    assert status["state"] == "failed"
    assert "loss" in status["error"] and ("NaN" in status["error"] or "nan" in status["error"] or "exploded" in status["error"] or "inf" in status["error"])


def test_checkpoint_files_are_safetensors_and_weights_only(tmp_path, tiny_folder) -> None:
    import torch

    run = _run(tmp_path, tiny_folder, "sasrec").run
    ckpt = run.checkpoint_dir
    assert load_file(str(ckpt / "model.safetensors"))
    state = torch.load(ckpt / "trainer.pt", weights_only=True)
    assert {"optimizer", "scheduler", "generator", "torch_rng"} <= set(state)
    assert json.loads((ckpt / "loop.json").read_text())["epoch"] == 3
    assert (run.model_dir / "weights.safetensors").exists()


def test_sqlite_index_lists_runs(tmp_path, tiny_folder, capsys) -> None:
    _run(tmp_path, tiny_folder, "pop")
    _run(tmp_path, tiny_folder, "mf")
    rows = RunIndex(tmp_path / "runs").sync()
    assert {r["family"] for r in rows} == {"pop", "mf"}
    assert all(r["state"] == "finished" and r["test_ndcg"] is not None for r in rows)
    assert main(["runs", "list", "--root", str(tmp_path / "runs"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["runs"]) == 2


def test_cli_train_json_contract_and_recommend(tmp_path, tiny_folder, capsys) -> None:
    run_dir = tmp_path / "runs" / "cli-mf"
    code = main(["train", "--data", str(tiny_folder), "--model", "mf", "--epochs", "2", "--device", "cpu",
                 "--run-dir", str(run_dir), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(out) >= {"run_dir", "status", "device", "valid", "test", "train_seconds", "trainable_params", "total_params"}
    assert out["status"] == "finished" and out["device"].startswith("cpu")
    assert main(["recommend", "--run", str(run_dir), "--user", "u3", "--k", "10", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert len(rec["items"]) == 10 and rec["items"][0]["title"].startswith("Movie")
    seen = {f"i{j}" for j in range(40)}  # every item is an id the data knows
    assert {r["item"] for r in rec["items"]} <= seen
    assert main(["recommend", "--run", str(run_dir), "--user", "nobody"]) == 2
    assert "unknown user 'nobody'" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run_dir), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["ndcg@10"] == pytest.approx(out["test"]["ndcg@10"])


@pytest.mark.parametrize("optimizer,schedule,extra", [
    ("adam", "constant", {}),
    ("adamw", "cosine", {"warmup_frac": 0.2, "weight_decay": 0.01}),
    ("sgd", "step", {"step_epochs": 1, "gamma": 0.5, "l1": 1e-6}),
    ("adam", "plateau", {"gamma": 0.5}),
])
def test_optimizers_and_schedules(tmp_path, tiny_folder, optimizer, schedule, extra) -> None:
    result = _run(tmp_path, tiny_folder, "mf", optimizer=optimizer, schedule=schedule, epochs=4, log_every=1,
                  lr=0.01, **extra)
    assert result.status == "finished"
    lrs = [m["lr"] for m in result.run.read_metrics() if m["type"] == "step"]
    if schedule == "constant":
        assert set(lrs) == {0.01}
    elif schedule == "cosine":
        peak = lrs.index(max(lrs))
        assert peak > 0 and lrs[-1] < max(lrs)  # warms up, then decays
    elif schedule == "step":
        assert lrs[-1] == pytest.approx(0.01 * 0.5 ** 3)  # halved after each of epochs 1..3
    assert result.run.read_config()["train"]["optimizer"] == optimizer


def test_compiled_training_step_trains_without_falling_back(tmp_path, tiny_folder) -> None:
    """`compile: true` runs the step through torch.compile (inductor on CPU) and learns like eager mode."""
    import warnings

    results = {}
    for compiled in (False, True):
        spec = RunSpec.create(str(tiny_folder), "mf", train={"epochs": 3, "batch_size": 64, "compile": compiled,
                                                             "log_every": 1}, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # the eager fallback warns: it must not happen here
            res = execute_run(spec.save(tmp_path / f"compiled-{compiled}"))
        assert res.status == "finished"
        losses = [m["loss"] for m in res.run.read_metrics() if m["type"] == "step"]
        assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
        results[compiled] = res.test["ndcg@10"]
    assert results[True] == pytest.approx(results[False], abs=0.1)
