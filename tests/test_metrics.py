"""Metrics against hand-computed cases and an independent brute-force computation."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.data import Dataset, Split
from recsys_core.eval import paired_bootstrap
from recsys_core.eval.significance import compare_to_reference, holm
from recsys_core.eval.evaluator import evaluate, pessimistic_ranks
from recsys_core.eval.metrics import per_user_metrics
from recsys_core.eval.segments import activity_segments, by_activity

INF = np.inf


def test_single_target_hand_computed() -> None:
    m = per_user_metrics(np.array([[0.0], [2.0], [9.0], [10.0]]), np.array([1, 1, 1, 1]), k=10)
    assert m["hr"].tolist() == [1, 1, 1, 0]
    assert m["ndcg"] == pytest.approx([1.0, 1 / math.log2(4), 1 / math.log2(11), 0.0])
    assert m["mrr"] == pytest.approx([1.0, 1 / 3, 1 / 10, 0.0])
    assert m["map"] == pytest.approx([1.0, 1 / 3, 1 / 10, 0.0])
    assert m["recall"].tolist() == [1, 1, 1, 0]
    assert m["precision"] == pytest.approx([0.1, 0.1, 0.1, 0.0])


def test_several_targets_hand_computed() -> None:
    # targets at ranks 0 and 2 of 3 targets (third missed), K = 5
    m = per_user_metrics(np.array([[2.0, 0.0, 7.0]]), np.array([3]), k=5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"][0] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert m["recall"][0] == pytest.approx(2 / 3)
    assert m["precision"][0] == pytest.approx(2 / 5)
    assert m["mrr"][0] == pytest.approx(1.0)
    assert m["map"][0] == pytest.approx((1 / 1 + 2 / 3) / 3)
    padded = per_user_metrics(np.array([[1.0, INF]]), np.array([1]), k=5)
    assert padded["ndcg"][0] == pytest.approx(1 / math.log2(3))


def test_ties_count_against_the_target() -> None:
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.5]])
    ranks = pessimistic_ranks(scores, torch.tensor([[0]]), torch.tensor([[True]]))
    assert ranks.item() == 2  # behind both items with an equal score
    # two targets tied with each other and one non-target: they take ranks 1 and 2, never 0
    ranks = pessimistic_ranks(scores, torch.tensor([[0, 1]]), torch.tensor([[True, True]]))
    assert sorted(ranks[0].tolist()) == [1.0, 2.0]


def brute_force(scores: np.ndarray, excluded: list[set], targets: list[list[int]], k: int) -> dict[str, float]:
    """Independent computation: sort each row, non-targets before targets on ties, read off the metrics."""
    out = {"ndcg": [], "hr": [], "recall": [], "mrr": [], "map": [], "precision": []}
    for row, excl, tgt in zip(scores, excluded, targets):
        cand = [j for j in range(len(row)) if j not in excl]
        order = sorted(cand, key=lambda j: (-row[j], j in tgt, j))
        top = order[:k]
        hits = [pos for pos, j in enumerate(top) if j in tgt]
        dcg = sum(1 / math.log2(p + 2) for p in hits)
        idcg = sum(1 / math.log2(p + 2) for p in range(min(len(tgt), k)))
        out["ndcg"].append(dcg / idcg)
        out["hr"].append(float(bool(hits)))
        out["recall"].append(len(hits) / len(tgt))
        out["mrr"].append(1 / (hits[0] + 1) if hits else 0.0)
        out["map"].append(sum((n + 1) / (p + 1) for n, p in enumerate(hits)) / min(len(tgt), k))
        out["precision"].append(len(hits) / k)
    return {name: float(np.mean(v)) for name, v in out.items()}


class TableScorer:
    def __init__(self, table: np.ndarray) -> None:
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def full_scores(self, users, history):
        return self.table[torch.as_tensor(users)]


@pytest.mark.parametrize("seed", range(5))
def test_evaluator_matches_brute_force_with_ties_and_several_targets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 25, 30, 5
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=rng.integers(3, 12), replace=False)
        rows += [(f"u{u}", f"i{i}") for i in items]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user", "item"]))
    frame = ds.interactions[["u", "i", "rating", "timestamp", "row"]]
    is_test = rng.random(len(frame)) < 0.3
    train, test = frame[~is_test], frame[is_test]
    sp = Split("t", "test split", ds.n_users, ds.n_items, train, frame.iloc[:0], test)
    table = rng.integers(0, 4, size=(ds.n_users, ds.n_items)).astype(float)  # many ties
    got = evaluate(TableScorer(table), sp, "test", k=k, max_block_elements=200).metrics
    users = sorted(set(test["u"]))
    excluded = [set(train[train["u"] == u]["i"]) for u in users]
    targets = [sorted(set(test[test["u"] == u]["i"])) for u in users]
    want = brute_force(table[users], excluded, targets, k)
    for name, value in want.items():
        assert got[f"{name}@{k}"] == pytest.approx(value), name
    assert got["n_users"] == len(users)


def test_block_size_does_not_change_results() -> None:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}") for u in range(40) for i in rng.choice(50, 6, replace=False)]
    ds = Dataset.from_frame(pd.DataFrame(rows, columns=["user", "item"]))
    from recsys_core.data import leave_last_out
    sp = leave_last_out(ds)
    table = rng.random((ds.n_users, ds.n_items))
    a = evaluate(TableScorer(table), sp, k=10, max_block_elements=50)
    b = evaluate(TableScorer(table), sp, k=10)
    assert a.metrics == b.metrics
    assert np.array_equal(a.topk, b.topk)


def test_beyond_accuracy_metrics_hand_computed() -> None:
    # train: u0 {0}, u1 {0, 1}, u2 {0, 1, 2}; one test item each; every user ranks items 0 > 1 > 2 > 3 > 4
    train = pd.DataFrame({"u": [0, 1, 1, 2, 2, 2], "i": [0, 0, 1, 0, 1, 2], "row": range(6),
                          "timestamp": range(6), "rating": 1.0})
    test = pd.DataFrame({"u": [0, 1, 2], "i": [4, 4, 4], "row": [6, 7, 8], "timestamp": [6, 7, 8], "rating": 1.0})
    split = Split("hand", "hand-made", 3, 5, train, test.iloc[:0], test)
    order = np.tile(np.array([5.0, 4.0, 3.0, 2.0, 1.0]), (3, 1))
    r = evaluate(TableScorer(order), split, k=2)
    # top-2 of the unseen items: u0 {1, 2}, u1 {2, 3}, u2 {3, 4}
    assert r.metrics["coverage@2"] == pytest.approx(4 / 5)
    counts = {1: 2, 2: 1, 3: 0, 4: 0}  # training interactions per item; novelty floors a count at 1 user of 3
    recs = [1, 2, 2, 3, 3, 4]
    assert r.metrics["arp@2"] == pytest.approx(np.mean([counts[i] for i in recs]))
    assert r.metrics["novelty@2"] == pytest.approx(np.mean([-math.log2(max(counts[i], 1) / 3) for i in recs]))
    assert r.metrics["hr@2"] == pytest.approx(1 / 3)  # only u2 has its test item (4) in its top 2


def test_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(500)
    better = paired_bootstrap(a + 0.1, a)
    assert better["diff"] == pytest.approx(0.1)
    assert better["ci_low"] == pytest.approx(0.1) and better["p_value"] < 0.01
    noise = paired_bootstrap(a, rng.permutation(a), seed=1)
    assert noise["ci_low"] < noise["diff"] < noise["ci_high"]
    same = paired_bootstrap(a, a, seed=2)
    assert same["diff"] == same["ci_low"] == same["ci_high"] == 0.0 and same["p_value"] == 1.0
    x = a + rng.normal(0, 0.2, 500)
    assert paired_bootstrap(x, a, seed=3) == paired_bootstrap(x, a, seed=3)  # seeded: reproducible
    assert paired_bootstrap(x, a, seed=3)["ci_low"] != paired_bootstrap(x, a, seed=4)["ci_low"]  # and really resampled


def test_holm_adjustment_hand_computed() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, kept monotone
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm({"only": 0.2}) == {"only": 0.2}


def test_joint_comparison_corrects_for_several_arms_and_resamples_users_as_clusters() -> None:
    rng = np.random.default_rng(0)
    ref = rng.random(300)
    arms = {"better": ref + 0.2, "same": ref + rng.normal(0, 0.05, 300), "worse": ref - 0.2}
    out = compare_to_reference(arms, ref, seed=0)
    assert out["better"]["significant"] and out["better"]["diff"] == pytest.approx(0.2)
    assert out["worse"]["significant"] and out["worse"]["diff"] < 0
    assert not out["same"]["significant"]
    for v in out.values():
        assert v["comparisons"] == 3 and v["p_holm"] >= v["p"]
        assert v["ci_low_adj"] <= v["ci_low"] and v["ci_high_adj"] >= v["ci_high"]  # simultaneous: wider
    assert holm({n: v["p"] for n, v in out.items()}) == pytest.approx({n: v["p_holm"] for n, v in out.items()})
    # one user scored in many windows is one cluster: its rows move together, so the interval is wider
    users = np.repeat(np.arange(30), 10)
    noisy = rng.normal(0, 1, 30)[users]
    by_row = compare_to_reference({"x": noisy}, np.zeros(300), seed=1)["x"]
    by_user = compare_to_reference({"x": noisy}, np.zeros(300), clusters=users, seed=1)["x"]
    assert by_user["n_users"] == 30 and by_row["n_users"] == 300
    assert by_user["ci_high"] - by_user["ci_low"] > 2 * (by_row["ci_high"] - by_row["ci_low"])


def test_activity_segments_cover_all_users() -> None:
    n_known = np.array([1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
    labels = activity_segments(n_known, n_bins=4)
    assert len(labels) == 10 and labels.nunique() == 4
    per_user = pd.DataFrame({"n_known": n_known, "ndcg@10": np.linspace(0, 1, 10)})
    summary = by_activity(per_user, metrics=["ndcg@10"])
    assert summary["users"].sum() == 10
    assert summary["ndcg@10"].is_monotonic_increasing
