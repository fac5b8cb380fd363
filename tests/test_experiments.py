"""The transfer and incremental experiments on tiny data: the JSON contract of DESIGN.md, real figures,
and cross-catalogue transfer through item text (movies split into two catalogues by genre)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys_core.cli import main
from recsys_core.data.dataset import Dataset
from recsys_core.experiments.incremental import run_incremental
from recsys_core.experiments.common import ExperimentOptions
from recsys_core.experiments.transfer import run_transfer

SASREC = {"hidden": 16, "heads": 2, "inner": 32, "max_len": 20}
METRICS = {"ndcg@10", "recall@10", "seconds", "trainable_params"}


def interleaved(n_users: int = 60, n_items: int = 40, per_user: int = 16, seed: int = 0) -> pd.DataFrame:
    """Users active at the same time (unlike make_interactions), each preferring a block of items, in order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        block = (u % 4) * (n_items // 4)
        start = rng.integers(0, 10_000)
        items = rng.permutation(np.arange(block, block + n_items // 4))
        items = np.concatenate([items, rng.integers(0, n_items, per_user)])[:per_user]
        for k, i in enumerate(items):
            rows.append((f"u{u}", f"i{i}", 4.0, int(start + 500 * k + rng.integers(0, 400))))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset.from_frame(interleaved())


def test_transfer_experiment_contract_and_figures(ds) -> None:
    opts = ExperimentOptions(family="sasrec", model=SASREC, train={"epochs": 8, "log_every": 1000, "patience": 0})
    r = run_transfer(ds, opts, shots=6)
    assert r["protocol"]["name"] == "transfer" and r["protocol"]["shots"] == 6
    assert set(r["references"]) == {"scratch", "retrain", "no_update", "similar_users"}
    assert set(r["strategies"]) == {"full", "frozen", "partial", "lora", "incremental"}
    target_users = r["protocol"]["target_users"]
    for figures in [*r["strategies"].values(), *r["references"].values()]:
        assert METRICS <= set(figures)
        assert figures["n_users"] == figures["valid"]["n_users"] == target_users  # every arm scored on the same users
        assert figures["epochs_run"] <= r["budget"]["epochs"] and figures["best_epoch"] <= figures["epochs_run"]
    assert r["budget"] == {"epochs": 8, "patience": 0, "min_epochs": 20, "eval_every": 1}  # one budget for all (sasrec min)
    assert r["references"]["no_update"]["trainable_params"] == 0  # zero-shot: the base as it is
    total = r["strategies"]["full"]["trainable_params"]
    assert r["strategies"]["frozen"]["trainable_params"] < total and r["strategies"]["lora"]["trainable_params"] < total
    _check_comparisons(r["vs_scratch"], arms=8)
    # the winner is chosen on validation, never on test
    assert r["selected_on"] == "valid"
    assert r["best"] == max(r["strategies"], key=lambda n: r["strategies"][n]["valid"]["ndcg@10"])
    # the base knows the item blocks: fine-tuning it beats learning 6 shots per user from nothing
    assert r["vs_scratch"][r["best"]]["significant"] and r["vs_scratch"][r["best"]]["ci_low_adj"] > 0
    # source_cutoff: no source interaction later than the target users' first held-out one trains anything
    assert r["protocol"]["source_cutoff"] is not None and r["protocol"]["source_rows_dropped"] > 0


def _check_comparisons(versus: dict, arms: int) -> None:
    from recsys_core.eval.significance import holm

    assert len(versus) == arms
    for name, v in versus.items():
        assert {"diff", "ci_low", "ci_high", "p", "p_holm", "ci_low_adj", "ci_high_adj"} <= set(v), name
        assert v["comparisons"] == arms and v["p_holm"] >= v["p"]
        assert v["ci_low_adj"] <= v["ci_low"] and v["ci_high_adj"] >= v["ci_high"]
        assert v["significant"] == (v["p_holm"] < 0.05)
    assert holm({n: v["p"] for n, v in versus.items()}) == pytest.approx({n: v["p_holm"] for n, v in versus.items()},
                                                                          abs=1e-6)


def test_incremental_experiment_contract_forgetting_and_growth(ds) -> None:
    opts = ExperimentOptions(family="mf", model={"dim": 8}, train={"epochs": 6, "log_every": 1000},
                             strategies=("full", "frozen", "lora", "incremental"))
    r = run_incremental(ds, opts, windows=3)
    assert r["protocol"]["windows"] == 3
    assert set(r["references"]) == {"retrain", "no_update", "similar_users"}
    assert set(r["strategies"]) == {"full", "frozen", "incremental"}  # lora does not apply to mf
    assert "lora" in r["skipped"] and "transformer" in r["skipped"]["lora"]
    assert len(r["windows"]) == 3 and r["windows"][0]["window"] == 1
    for row in r["windows"][1:]:
        assert {"retrain", "no_update", "full", "incremental"} <= set(row)
    assert set(r["forgetting"]) >= {"full", "frozen", "incremental", "retrain", "no_update"}
    assert r["forgetting"]["no_update"] == 0.0
    assert r["strategies"]["incremental"]["n_windows"] == 2
    assert {"ndcg_ratio", "time_ratio", "beats_no_update", "significant"} <= set(r["best_vs_retrain"])
    assert r["selected_on"] == "valid" and r["budget"]["epochs"] == 6
    assert r["best"] == max(r["strategies"], key=lambda n: r["strategies"][n]["valid"]["ndcg@10"])
    _check_comparisons(r["vs_retrain"], arms=5)  # 3 strategies + no_update + similar_users
    # pooled over windows, users are the resampling unit
    assert r["vs_retrain"]["full"]["n_users"] < sum(row["test_users"] for row in r["windows"][1:])


def test_similar_users_by_interactions_and_by_text() -> None:
    import torch

    from recsys_core.experiments.common import similar_users

    # target user 0 had items 0-1; candidates: 1 shares item 1, 2 has items 2-3 (similar text to 0-1), 3 has 4-5
    train = pd.DataFrame({"u": [0, 0, 1, 1, 2, 2, 3, 3], "i": [0, 1, 1, 6, 2, 3, 4, 5]})
    candidates = np.array([1, 2, 3])
    assert similar_users(train, np.array([0]), candidates, 7, share=0.34).tolist() == [1]
    text = torch.zeros(7, 2)
    text[[0, 1, 2, 3], 0] = 1.0  # items 0-3 are described alike
    text[[4, 5, 6], 1] = 1.0
    assert similar_users(train, np.array([0]), candidates, 7, share=0.34, item_text=text).tolist() == [2]


def test_experiment_cli_json_and_table(tmp_path, ds, capsys) -> None:
    path = tmp_path / "inter.csv"
    interleaved(40, 32, 14).to_csv(path, index=False)
    code = main(["--quiet", "experiment", "incremental", "--data", str(path), "--model", "mf", "--windows", "2",
                 "--epochs", "2", "--strategies", "full,incremental", "--out", str(tmp_path / "exp"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"protocol", "strategies", "references", "best", "windows", "forgetting"} <= set(out)
    assert list((tmp_path / "exp").glob("incremental-mf-*.json"))
    code = main(["--quiet", "experiment", "transfer", "--data", str(path), "--model", "ease"])
    assert code == 2
    assert "trainable" in capsys.readouterr().err


def test_incremental_experiment_runs_lightgcn_like_the_other_families(tmp_path, capsys) -> None:
    path = tmp_path / "inter.csv"
    interleaved(40, 32, 14).to_csv(path, index=False)
    code = main(["--quiet", "experiment", "incremental", "--data", str(path), "--model", "lightgcn", "--windows", "2",
                 "--epochs", "2", "--out", str(tmp_path / "exp"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"]["model"] == "lightgcn" and out["selected_on"] == "valid"
    assert {"full", "incremental"} <= set(out["strategies"]) and {"retrain", "no_update"} <= set(out["references"])
    assert out["windows"] and set(out["forgetting"]) <= set(out["strategies"]) | set(out["references"])
    assert all(0 <= arm["ndcg@10"] <= 1 for arm in out["strategies"].values())


def test_cli_train_from_a_run_base_with_lora(tmp_path, tiny_folder, capsys) -> None:
    runs = tmp_path / "runs"
    cfg = json.dumps({"model": SASREC, "train": {"epochs": 2, "batch_size": 16}})
    (tmp_path / "cfg.json").write_text(cfg)
    assert main(["--quiet", "train", "--data", str(tiny_folder), "--model", "sasrec", "--config", str(tmp_path / "cfg.json"),
                 "--device", "cpu", "--run-dir", str(runs / "base"), "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    assert main(["--quiet", "train", "--data", str(tiny_folder), "--model", "sasrec", "--base", f"run:{runs / 'base'}",
                 "--strategy", "lora:rank=2", "--epochs", "1", "--device", "cpu", "--run-dir", str(runs / "lora"),
                 "--json"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["status"] == "finished"
    assert tuned["trainable_params"] < base["trainable_params"] == tuned["total_params"]
    plan = json.loads((runs / "lora" / "plan.json").read_text())
    assert plan["strategy"] == "lora" and any(g["state"] == "LoRA adapters" for g in plan["groups"])
    # the merged model loads like any other run and serves recommendations
    assert main(["--quiet", "recommend", "--run", str(runs / "lora"), "--user", "u1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["items"]) == 10
    # a strategy that does not fit the base is refused before any work, in one line
    assert main(["--quiet", "train", "--data", str(tiny_folder), "--model", "mf", "--base", f"run:{runs / 'base'}",
                 "--strategy", "full", "--run-dir", str(runs / "bad")]) == 2
    assert "cannot start a mf model" in capsys.readouterr().err


def test_cross_catalogue_transfer_through_text(demo_genre_catalogues) -> None:
    """A text two-tower pretrained on one catalogue recommends in another whose item ids do not overlap."""
    source, target = demo_genre_catalogues
    assert not set(source.items.ids) & set(target.items.ids)
    model = {"dim": 32, "item_repr": "text", "user_tower": "mean", "history": 20}
    opts = ExperimentOptions(family="two_tower", model=model, train={"epochs": 4, "batch_size": 256, "log_every": 1000},
                             strategies=("frozen", "full"))
    from recsys_core.experiments.catalogue import run_cross_catalogue

    r = run_cross_catalogue(source, target, opts, shots=5)
    zero, scratch = r["references"]["no_update"], r["references"]["scratch"]
    assert r["protocol"]["shared_items"] == 0
    assert zero["ndcg@10"] > r["references"]["random"]["ndcg@10"]  # zero-shot knows something about a new catalogue
    assert max(f["ndcg@10"] for f in r["strategies"].values()) > scratch["ndcg@10"]


def test_an_experiment_runs_as_a_background_job_with_live_per_arm_progress(tmp_path, monkeypatch) -> None:
    import time

    from recsys_core.data.source import DataSource
    from recsys_core.experiments.job import ExperimentSpec, job_result, new_job
    from recsys_core.experiments.report import verdict
    from recsys_core.runs.launcher import live_status

    monkeypatch.setenv("RECTUNE_RUNS_DIR", str(tmp_path / "runs"))
    path = tmp_path / "inter.csv"
    interleaved(40, 32, 14).to_csv(path, index=False)
    spec = ExperimentSpec("incremental", DataSource(str(path)), "mf", strategies=("full", "incremental"), windows=2,
                          train={"epochs": 2, "log_every": 1000}, device="cpu")
    job = new_job(spec)
    assert json.loads((job.path / "experiment.json").read_text()) == spec.to_json()
    deadline = time.time() + 240
    while live_status(job).get("state") in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    assert live_status(job)["state"] == "finished", job.log_path.read_text()[-2000:]
    events = job.read_metrics()
    arms_seen = {e["arm"] for e in events if e["type"] == "arm_epoch"}
    assert {"base", "retrain", "similar_users", "full", "incremental"} <= arms_seen
    assert {e["arm"] for e in events if e["type"] == "arm_done"} >= arms_seen
    result = job_result(job)
    assert result["selected_on"] == "valid" and result["spec"] == spec.to_json()
    assert list((tmp_path / "runs" / "experiments").glob("incremental-mf-*.json"))  # listed with the others
    sentence = verdict(result)
    assert "retrain" in sentence and "correction for 4 comparisons" in sentence
