"""Baselines reproduce ../shared/REFERENCE.md under the default protocol and survive save/load."""
from __future__ import annotations

import numpy as np
import pytest

from recsys_core.data import leave_last_out, load_dataset
from recsys_core.eval import evaluate
from recsys_core.models import baseline_families, load_recommender
from recsys_core.pipeline import evaluate_baseline, fit_baseline
from tests.conftest import make_interactions

# NDCG@10, HR@10, MRR@10 from ../shared/REFERENCE.md (independent NumPy implementation).
DEMO_REFERENCE = {"pop": (0.0178, 0.0377, 0.0118), "itemknn": (0.0239, 0.0574, 0.0142), "ease": (0.0356, 0.0754, 0.0238)}
XWINES_REFERENCE = {"pop": (0.0404, 0.0869, 0.0266), "itemknn": (0.1105, 0.2168, 0.0785), "ease": (0.1126, 0.2163, 0.0813)}


def _check_reference(ds, family: str, reference: dict, n_users: int) -> dict:
    _, _, test, info = evaluate_baseline(ds, family)
    ndcg, hr, mrr = reference[family]
    assert test.metrics["n_users"] == n_users
    assert test.metrics["ndcg@10"] == pytest.approx(ndcg, rel=0.05)
    assert test.metrics["hr@10"] == pytest.approx(hr, rel=0.05)
    assert test.metrics["mrr@10"] == pytest.approx(mrr, rel=0.05)
    return info


@pytest.fixture(scope="module")
def demo():
    return load_dataset("demo")


@pytest.mark.parametrize("family", list(DEMO_REFERENCE))
def test_demo_matches_reference(demo, family: str) -> None:
    info = _check_reference(demo, family, DEMO_REFERENCE, 610)
    if family == "ease":
        assert info["params"]["l2"] == 50.0  # chosen on validation, as in the reference


@pytest.mark.parametrize("family", list(XWINES_REFERENCE))
def test_xwines_matches_reference(xwines, family: str) -> None:
    _check_reference(load_dataset(xwines), family, XWINES_REFERENCE, 10304)


@pytest.mark.parametrize("family", baseline_families())
def test_save_load_round_trip(tmp_path, family: str) -> None:
    from recsys_core.data import Dataset

    ds = Dataset.from_frame(make_interactions().rename(columns={"user_id": "user", "item_id": "item"}))
    split = leave_last_out(ds)
    model = fit_baseline(family, split)
    model.save(tmp_path / family)
    again = load_recommender(tmp_path / family)
    users = np.arange(ds.n_users)
    assert np.allclose(model.full_scores(users, split.train_history), again.full_scores(users, split.train_history))
    assert again.config == model.config


@pytest.mark.parametrize("family", ["itemknn", "ease"])
def test_personalised_baselines_beat_pop_on_structured_data(family: str) -> None:
    from recsys_core.data import Dataset

    ds = Dataset.from_frame(make_interactions(n_users=60, per_user=8).rename(columns={"user_id": "user", "item_id": "item"}))
    split = leave_last_out(ds)
    hr = {f: evaluate(fit_baseline(f, split), split, "test").metrics["hr@10"] for f in ("pop", family)}
    assert hr[family] > hr["pop"] + 0.2  # users prefer a block of items; Pop cannot see that
