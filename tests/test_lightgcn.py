"""LightGCN: propagation is the paper's formula (checked against a dense reference on a tiny graph), the
graph is the prediction-time history, new users are personalised through it, and it trains better than
its own starting point under every strategy that applies to it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.bases import Base
from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import History, leave_last_out
from recsys_core.errors import ConfigError
from recsys_core.models import build_model
from recsys_core.models.lightgcn import normalised_graph
from recsys_core.models.memory import DataSizes
from recsys_core.strategies import parse_strategy
from recsys_core.train.finetune import prepare

from tests.conftest import make_interactions


def _history(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> History:
    f = pd.DataFrame({"u": [p[0] for p in pairs], "i": [p[1] for p in pairs]})
    f["row"], f["timestamp"], f["rating"] = np.arange(len(f)), np.arange(len(f), dtype=float), 1.0
    return History(f, n_users, n_items)


def _dense_reference(model, history: History) -> tuple[torch.Tensor, torch.Tensor]:
    """E_final = sum_k w_k A^k E_0 with A = D^-1/2 [[0, R], [R^T, 0]] D^-1/2, all dense."""
    n_u, n_i = model.n_users, model.n_items
    r = torch.from_numpy(history.csr.toarray())
    a = torch.zeros(n_u + n_i, n_u + n_i)
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1)
    inv = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    a = inv[:, None] * a * inv[None, :]
    e = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    w = torch.softmax(model.layer_logits.detach(), 0)
    out, layer = w[0] * e, e
    for k in range(1, len(w)):
        layer = a @ layer
        out = out + w[k] * layer
    return out[:n_u], out[n_u:]


def test_propagation_is_the_normalised_graph_formula() -> None:
    torch.manual_seed(0)
    model = build_model("lightgcn", 4, 5, {"dim": 3, "layers": 3})
    with torch.no_grad():
        model.layer_logits.copy_(torch.tensor([0.3, -0.2, 0.5, 0.1]))  # not the uniform mean
    history = _history([(0, 0), (0, 1), (1, 1), (1, 2), (2, 4), (3, 0), (3, 4)], 4, 5)
    users, items = model.propagate(normalised_graph(history, 4, 5, torch.device("cpu")))
    ref_u, ref_i = _dense_reference(model, history)
    assert torch.allclose(users, ref_u, atol=1e-6) and torch.allclose(items, ref_i, atol=1e-6)
    scores = model.full_scores(np.arange(4), history)
    assert torch.allclose(scores, ref_u @ ref_i.T, atol=1e-6)


def test_the_prediction_time_history_is_the_graph_and_new_users_are_personalised() -> None:
    torch.manual_seed(0)
    model = build_model("lightgcn", 3, 6, {"dim": 8, "layers": 2})
    before = _history([(0, 0), (0, 1), (1, 2), (1, 3)], 3, 6)
    s0 = model.full_scores(np.arange(3), before)
    # fold-in: one more known interaction for user 0 changes user 0's scores (the graph is the history given)
    after = _history([(0, 0), (0, 1), (0, 5), (1, 2), (1, 3)], 3, 6)
    assert not torch.allclose(model.full_scores(np.array([0]), after), s0[:1])
    # two new users with identical (frozen, mean) layer-0 rows differ through the items they touched
    model.grow(5, 6)
    with torch.no_grad():
        model.user_emb.weight[3:] = model.user_emb.weight[:3].mean(0)
    grown = _history([(0, 0), (0, 1), (1, 2), (1, 3), (3, 0), (4, 3)], 5, 6)
    new = model.full_scores(np.array([3, 4]), grown)
    assert new.shape == (2, 6) and not torch.allclose(new[0], new[1])
    assert int(new[0].argmax()) in (0, 1) and int(new[1].argmax()) in (2, 3)  # each leans to its own neighbourhood


def test_memory_grows_with_edges_and_nodes_never_users_times_items() -> None:
    small = DataSizes(10_000, 10_000, 1_000_000)
    big = DataSizes(10_000, 10_000, 2_000_000)
    cls = type(build_model("lightgcn", 2, 2, {"dim": 8}))
    a, b = (cls.memory_estimate(cls.config_class(), s).parts for s in (small, big))
    assert b["graph"] == 2 * a["graph"]
    assert a["propagated layers"] < 10_000 * 10_000  # bytes far below one dense users x items float matrix


@pytest.fixture(scope="module")
def data():
    frame = make_interactions(n_users=30, n_items=25, per_user=10).rename(columns={"user_id": "user", "item_id": "item"})
    ds = Dataset.from_frame(frame)
    return ds, leave_last_out(ds)


def test_frozen_trains_only_the_layer_weights_and_lora_is_refused(data) -> None:
    ds, split = data
    base = Base.from_model(build_model("lightgcn", split.n_users, split.n_items, {"dim": 8}), ds.users.ids, ds.items.ids)
    chosen, config = parse_strategy("frozen")
    prepared = prepare("lightgcn", {}, base, chosen, config, split.train_history, ds.users.ids, ds.items.ids)
    trains = {n for n, p in prepared.model.named_parameters() if p.requires_grad}
    assert trains == {"layer_logits"}
    for name in ("lora", "partial"):
        chosen, config = parse_strategy(name)
        with pytest.raises(ConfigError, match=name):
            prepare("lightgcn", {}, base, chosen, config, split.train_history, ds.users.ids, ds.items.ids)


def test_softmax_loss_trains(data) -> None:
    ds, split = data
    torch.manual_seed(0)
    model = build_model("lightgcn", split.n_users, split.n_items, {"dim": 8, "loss": "softmax"})
    from recsys_core.models.neural import TrainData

    model.prepare(TrainData(split.train_history))
    users, items = TrainData(split.train_history).pairs
    batch = {"users": users, "items": items}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = float(model.loss(batch).detach())
    for _ in range(30):
        opt.zero_grad()
        model.loss(batch).backward()
        opt.step()
    assert float(model.loss(batch).detach()) < first


def test_training_propagates_over_the_training_graph_after_scoring_another_history(data) -> None:
    ds, split = data
    from recsys_core.models.neural import TrainData

    torch.manual_seed(0)
    model = build_model("lightgcn", split.n_users, split.n_items, {"dim": 8})
    model.prepare(TrainData(split.train_history))
    users, items = TrainData(split.train_history).pairs
    batch = {"users": users[:32], "items": items[:32]}
    torch.manual_seed(1)
    before = float(model.loss(batch).detach())
    model.full_scores(np.arange(split.n_users), split.history("test"))  # builds the test-time graph
    torch.manual_seed(1)
    assert float(model.loss(batch).detach()) == before
