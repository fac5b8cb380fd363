"""No held-out row (nor anything later than the scored window) reaches training, early stopping or a
prediction-time history: plain training and both experiments, instrumented on tiny data."""
from __future__ import annotations

import pandas as pd
import pytest

import recsys_core.train.finetune as finetune
from recsys_core.data.dataset import Dataset
from recsys_core.eval.leakage import leaks
from recsys_core.experiments.common import ExperimentOptions
from recsys_core.experiments.incremental import run_incremental
from recsys_core.experiments.transfer import run_transfer
from recsys_core.runs.execute import execute_run
from recsys_core.runs.spec import RunSpec
from recsys_core.train.trainer import Trainer
from tests.test_experiments import interleaved


@pytest.fixture
def trainers(monkeypatch) -> list[tuple[pd.DataFrame, object]]:
    """Every Trainer built while the test runs: (all it read in training, the split it validated and scored on)."""
    seen = []

    class Recording(Trainer):
        def __init__(self, model, data, split, *args, **kwargs) -> None:
            frame = data.history.frame
            seen.append((frame, split))
            super().__init__(model, data, split, *args, **kwargs)

    monkeypatch.setattr(finetune, "Trainer", Recording)
    return seen


def _audit(seen, scored_after) -> None:
    assert seen, "nothing was trained"
    for trained, split in seen:
        assert leaks(split, trained, scored_after=scored_after(split)) == [], split.name


def test_plain_training_reads_no_held_out_row(trainers, tmp_path, tiny_folder) -> None:
    spec = RunSpec.create(str(tiny_folder), "mf", model={"dim": 8}, train={"epochs": 2, "batch_size": 64},
                          device="cpu")
    assert execute_run(spec.save(tmp_path / "run")).status == "finished"
    _audit(trainers, lambda split: False)


def test_transfer_arms_read_no_held_out_row_and_no_source_future(trainers) -> None:
    ds = Dataset.from_frame(interleaved(n_users=40, n_items=32, per_user=12))
    opts = ExperimentOptions(family="mf", model={"dim": 8}, train={"epochs": 2, "log_every": 1000},
                             strategies=("full", "incremental"))
    result = run_transfer(ds, opts, shots=4)
    _audit(trainers, lambda split: False)
    cutoff = result["protocol"]["source_cutoff"]
    for trained, split in trainers:
        target_users = set(split.test["u"]) if split.name == "user-group" else set()
        source = trained[~trained["u"].isin(target_users)]
        assert (source["timestamp"] <= cutoff).all(), split.name


def test_incremental_arms_read_nothing_from_the_scored_window(trainers) -> None:
    ds = Dataset.from_frame(interleaved(n_users=40, n_items=32, per_user=14))
    opts = ExperimentOptions(family="mf", model={"dim": 8}, train={"epochs": 2, "log_every": 1000},
                             strategies=("full", "incremental"))
    run_incremental(ds, opts, windows=3)
    names = {split.name for _, split in trainers}
    assert {"incremental-base", "window-2", "window-3"} <= names
    _audit(trainers, lambda split: True)


def test_the_audit_fails_when_a_held_out_row_is_fed_to_training(trainers, tmp_path, tiny_folder) -> None:
    spec = RunSpec.create(str(tiny_folder), "mf", model={"dim": 8}, train={"epochs": 1}, device="cpu")
    execute_run(spec.save(tmp_path / "run"))
    trained, split = trainers[0]
    assert leaks(split, trained) == []
    leaky = pd.concat([trained, split.test.iloc[:1]], ignore_index=True)  # one test interaction slips into training
    assert any("validation or test rows" in p for p in leaks(split, leaky))
    with pytest.raises(AssertionError):
        _audit([(leaky, split)], lambda s: False)
    early = pd.concat([split.valid, split.test.iloc[:1]], ignore_index=True)  # early stopping peeks at test
    assert any("early stopping" in p for p in leaks(split, trained, selected=early))
    future = trained.copy()
    future.loc[future.index[0], "timestamp"] = split.test["timestamp"].max() + 1  # trains on the future
    assert leaks(split, future, scored_after=True)
