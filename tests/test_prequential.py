"""Per-event scoring agrees with the evaluator, and the prequential replay reports every arm honestly."""
from __future__ import annotations

import numpy as np
import pytest

from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import make_split
from recsys_core.eval.evaluator import evaluate
from recsys_core.eval.pointwise import ndcg_at, target_ranks
from recsys_core.experiments.common import ExperimentOptions
from recsys_core.experiments.prequential import ARMS, prequential_table, run_prequential, score_events
from recsys_core.models import build_model
from tests.conftest import make_interactions


def _dataset(n_users: int = 40, per_user: int = 9) -> Dataset:
    frame = make_interactions(n_users=n_users, n_items=40, per_user=per_user).rename(
        columns={"user_id": "user", "item_id": "item"})
    return Dataset.from_frame(frame, name="tiny")


@pytest.mark.parametrize("family", ["pop", "itemknn"])
def test_per_event_ndcg_equals_the_evaluators_per_user_ndcg(family) -> None:
    ds = _dataset()
    split = make_split(ds)
    model = build_model(family, ds.n_users, ds.n_items).fit(split.train_history)
    result = evaluate(model, split, "test")
    history = split.history("test")
    ranks = target_ranks(model, history, split.test["u"].to_numpy(), split.test["i"].to_numpy())
    mine = dict(zip(split.test["u"].tolist(), ndcg_at(ranks)))
    theirs = dict(zip(result.per_user["u"].tolist(), result.per_user["ndcg@10"].tolist()))
    assert mine.keys() == theirs.keys()
    assert np.allclose([mine[u] for u in theirs], list(theirs.values()))


def test_unknown_users_and_items_score_zero_and_ties_go_against_the_target() -> None:
    ds = _dataset()
    split = make_split(ds)
    pop = build_model("pop", ds.n_users, ds.n_items).fit(split.train_history)
    pop.counts[:] = 1.0  # every item ties: the target ranks behind all the others
    target = int(np.setdiff1d(np.arange(ds.n_items), split.train_history.csr[0].indices)[0])  # unseen by user 0
    ranks = target_ranks(pop, split.train_history, np.array([0, -1, 2]), np.array([target, 4, -1]))
    unseen = ds.n_items - split.train_history.user_counts[0] - 1
    assert ranks.tolist() == [unseen, -1, -1]
    assert ndcg_at(np.array([0, 1, 9, 10, -1])).round(4).tolist() == [1.0, 0.6309, 0.2891, 0.0, 0.0]


def test_prequential_replay_scores_every_event_before_each_arm_learns() -> None:
    ds = _dataset(n_users=60, per_user=10)
    options = ExperimentOptions(family="mf", train={"epochs": 3, "patience": 0, "batch_size": 64}, seed=0,
                                device="cpu")
    result = run_prequential(ds, options, updates=2, score_batch=50)
    stream = len(ds) - int(len(ds) * 0.6)
    assert result["protocol"]["stream_events"] == stream
    arms = result["arms"]
    assert set(arms) == set(ARMS) and all(a["events"] == stream for a in arms.values())
    assert (arms["no_update"]["versions"], arms["retrain"]["versions"], arms["streaming"]["versions"]) == (0, 2, 2)
    assert all(0.0 <= a["ndcg@10"] <= 1.0 for a in arms.values())
    # streaming trains on each chunk only; retraining on everything known (more rows every time)
    assert [u["trained_rows"] for u in arms["streaming"]["updates"]] < [u["trained_rows"] for u in arms["retrain"]["updates"]]
    assert sum(b["events"] for b in result["curve"]) == stream
    assert set(result["vs_retrain"]) == {"no_update", "streaming"}
    assert "p_holm" in result["vs_retrain"]["streaming"] and "streaming" in prequential_table(result)


def test_events_of_users_a_model_has_no_row_for_score_zero() -> None:
    ds = _dataset()
    split = make_split(ds)
    mf = build_model("mf", ds.n_users - 5, ds.n_items)  # as if the last five users arrived after training
    events = split.test.reset_index(drop=True)
    scores = score_events(mf, split.train, events, ds.n_users, score_batch=7)
    late = events["u"].to_numpy() >= ds.n_users - 5
    assert late.any() and (scores[late] == 0).all()
