"""Bases and strategies: what trains is what each strategy claims (table-driven over model families),
growth keeps old users' scores, LoRA merges exactly, and bad combinations get clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_core.bases import Base, NONE, initial_model, resolve_base
from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import leave_last_out
from recsys_core.errors import ConfigError
from recsys_core.models import build_model
from recsys_core.models.neural import TrainData
from recsys_core.strategies import STRATEGIES, parameter_report, parse_strategy
from recsys_core.strategies.base import group_of
from recsys_core.train.finetune import prepare, train_prepared
from recsys_core.train.trainer import Trainer, TrainerConfig

from tests.conftest import make_interactions

# Small configurations of every trainable family (two_tower reads item text through a sequence user tower).
MODELS = {
    "mf": {"dim": 8},
    "ncf": {"dim": 8, "hidden": [16]},
    "sasrec": {"hidden": 16, "heads": 2, "inner": 32, "max_len": 12},
    "lightgcn": {"dim": 8, "layers": 2, "top_layer": True},
    "two_tower": {"dim": 16, "history": 8, "user_tower": "sequence", "item_repr": "id+text"},
    "text_ctr": {"candidates": 5, "samples_per_epoch": 8, "max_length": 32, "history_items": 3},
}
# Which (family, strategy) pairs apply; the rest must be refused with a clear reason.
APPLIES = {
    "frozen": {"mf", "ncf", "sasrec", "lightgcn", "two_tower", "text_ctr"},
    "lora": {"sasrec", "two_tower", "text_ctr"},
    "partial": {"ncf", "sasrec", "two_tower", "text_ctr"},
}


@pytest.fixture(scope="module")
def data():
    frame = make_interactions(n_users=24, n_items=32, per_user=8).rename(columns={"user_id": "user", "item_id": "item"})
    import pandas as pd

    items = pd.DataFrame({"text": [f"movie number {j} about topic {j % 4}" for j in range(32)]},
                         index=[f"i{j}" for j in range(32)])
    ds = Dataset.from_frame(frame, item_table=items)
    return ds, leave_last_out(ds)


def _base(ds, split, family) -> Base:
    """A base of `family` (its random initial weights stand in for pretrained ones: what matters is what moves)."""
    torch.manual_seed(1)
    model = build_model(family, split.n_users, split.n_items, MODELS[family])
    if hasattr(model, "set_item_texts") and getattr(model, "needs_text", False):
        model.set_item_texts(ds.item_texts())
    return Base.from_model(model, ds.users.ids, ds.items.ids)


def _train_a_little(prepared, ds, split) -> None:
    model = prepared.model
    data = TrainData(split.train_history, item_texts=ds.item_texts(), train_rows=prepared.plan.train_rows)
    trainer = Trainer(model, data, split, TrainerConfig(epochs=1, batch_size=8, lr=1e-2, log_every=1000, grad_clip=0),
                      torch.device("cpu"), param_groups=prepared.plan.param_groups, extra_loss=prepared.plan.extra_loss)
    trainer.fit()


CASES = [(s, f) for s in ("frozen", "lora", "partial") for f in MODELS]


@pytest.mark.parametrize("strategy,family", CASES, ids=[f"{s}-{f}" for s, f in CASES])
def test_strategy_trains_only_what_it_claims(data, strategy: str, family: str) -> None:
    ds, split = data
    base = _base(ds, split, family)
    chosen, config = parse_strategy({"name": strategy, **({"rank": 2} if strategy == "lora" else {})})
    if family not in APPLIES[strategy]:
        with pytest.raises(ConfigError, match=strategy):
            prepare(family, {}, base, chosen, config, split.train_history, ds.users.ids, ds.items.ids, ds.item_texts())
        return
    prepared = prepare(family, {}, base, chosen, config, split.train_history, ds.users.ids, ds.items.ids, ds.item_texts())
    model = prepared.model
    groups = model.layer_groups()
    claimed = {n for n, p in model.named_parameters() if p.requires_grad}
    # what each strategy claims, in terms of layer roles
    for name, p in model.named_parameters():
        g = group_of(name, groups)
        if strategy == "frozen":
            assert p.requires_grad == (g is not None and g.role == "head"), name
        elif strategy == "lora":
            assert p.requires_grad == ("lora_" in name or (g is not None and g.role == "head")), name
    if strategy == "lora":
        assert any("lora_A" in n for n in claimed)
    report = parameter_report(model)
    assert 0 < report["trainable_params"] < report["total_params"]
    assert report["optimizer_bytes"] == 2 * 4 * report["trainable_params"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _train_a_little(prepared, ds, split)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, "nothing trained"
    assert changed <= claimed, f"frozen tensors changed: {sorted(changed - claimed)}"
    if strategy == "lora":
        assert any("lora_B" in n for n in changed)


def test_lora_merge_keeps_the_scores(data) -> None:
    ds, split = data
    base = _base(ds, split, "sasrec")
    chosen, config = parse_strategy("lora:rank=4,alpha=8")
    prepared = prepare("sasrec", {}, base, chosen, config, split.train_history, ds.users.ids, ds.items.ids)
    model = prepared.model
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)  # a non-trivial adapter
    users = np.arange(split.n_users)
    adapted = model.full_scores(users, split.train_history)
    merged = prepared.plan.finish(model)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert torch.allclose(merged.full_scores(users, split.train_history), adapted, atol=1e-4)


GROWABLE = ["mf", "ncf", "sasrec", "lightgcn", "two_tower"]


@pytest.mark.parametrize("family", GROWABLE)
def test_growing_keeps_every_old_users_scores(data, family: str) -> None:
    ds, split = data
    torch.manual_seed(0)
    cfg = {**MODELS[family], "item_repr": "id"} if family == "two_tower" else MODELS[family]
    model = build_model(family, split.n_users, split.n_items, cfg)
    users = np.arange(split.n_users)
    history = split.train_history
    before = model.full_scores(users, history)
    model.grow(split.n_users + 5, split.n_items + 7)
    after = model.full_scores(users, history)
    assert after.shape == (split.n_users, split.n_items + 7)
    assert torch.equal(after[:, : split.n_items], before)
    # the same through a base on new data: raw ids are matched, new ids are appended
    base = Base.from_model(model, ds.users.ids + [f"new-u{k}" for k in range(5)],
                           ds.items.ids + [f"new-i{k}" for k in range(7)])
    users_ids = base.user_ids + ["newer-u"]
    item_ids = base.item_ids + ["newer-i0", "newer-i1"]
    grown, report = initial_model(family, base, len(users_ids), len(item_ids), {}, users_ids, item_ids)
    assert report["new_items"] == 2 and report["new_users"] == 1
    assert torch.equal(grown.full_scores(users, history)[:, : split.n_items], before)


def test_incremental_grows_initialises_and_penalises(data) -> None:
    ds, split = data
    train = split.train
    cut = train["timestamp"].quantile(0.7)
    old_rows = train.loc[train["timestamp"] <= cut, "row"].to_numpy()
    new_rows = train.loc[train["timestamp"] > cut, "row"].to_numpy()
    # the previous model knew only the items seen before the cut
    old_items = sorted(set(train.loc[train["timestamp"] <= cut, "i"]))
    torch.manual_seed(0)
    prev = build_model("mf", split.n_users, len(old_items), MODELS["mf"])
    base = Base.from_model(prev, ds.users.ids, [ds.items.ids[i] for i in old_items])
    for options in ({"penalty": "l2sp"}, {"penalty": "ewc", "distill": 0.5, "init": "mean"}):
        chosen, config = parse_strategy({"name": "incremental", "replay": 0.5, **options})
        prepared = prepare("mf", {}, base, chosen, config, split.train_history, ds.users.ids, ds.items.ids,
                           new_rows=new_rows)
        plan = prepared.plan
        assert set(new_rows) <= set(plan.train_rows)
        replayed = set(plan.train_rows) - set(new_rows)
        assert replayed <= set(old_rows)
        frame = split.train_history.frame
        old_frame = frame[frame["row"].isin(old_rows)]
        replayed_users = set(old_frame.loc[old_frame["row"].isin(replayed), "u"])
        assert len(replayed_users) == round(0.5 * old_frame["u"].nunique())
        # whole users are replayed: every old interaction of a chosen user
        assert replayed == set(old_frame.loc[old_frame["u"].isin(replayed_users), "row"])
        assert plan.extra_loss is not None
        assert float(plan.extra_loss({}).detach()) == pytest.approx(0.0, abs=1e-6)  # at the start: no distance, same scores
        outcome = train_prepared(prepared, split, TrainerConfig(epochs=2, batch_size=16, log_every=1000),
                                 torch.device("cpu")).outcome
        assert float(plan.extra_loss({}).detach()) > 0  # after training the weights have moved from the previous ones
        assert outcome.epochs >= 1


def test_incremental_new_items_start_from_their_neighbours(data) -> None:
    ds, split = data
    torch.manual_seed(0)
    n_old = split.n_items - 4
    prev = build_model("mf", split.n_users, n_old, MODELS["mf"])
    base = Base.from_model(prev, ds.users.ids, ds.items.ids[:n_old])
    chosen, config = parse_strategy("incremental:init=neighbours,penalty=none")
    prepared = prepare("mf", {}, base, chosen, config, split.train_history, ds.users.ids, ds.items.ids)
    emb = prepared.model.item_emb.weight.detach()
    assert torch.equal(emb[:n_old], prev.item_emb.weight.detach())  # old rows untouched
    mean = prev.item_emb.weight.detach().mean(0)
    assert not torch.allclose(emb[n_old:], mean.expand(4, -1))  # not the plain mean: the neighbours'


@pytest.mark.parametrize("strategy,base,message", [
    ("full", "none", "needs|pick one with --base|fine-tunes a pretrained base"),
    ("lora", "none", "pretrained base"),
    ("incremental", "minilm", "run:RUN_ID"),
    ("scratch", "minilm", "scratch starts from random"),
])
def test_bad_combinations_are_refused(data, strategy: str, base: str, message: str) -> None:
    ds, split = data
    chosen, config = parse_strategy(strategy)
    with pytest.raises(ConfigError, match=message):
        prepare("sasrec", MODELS["sasrec"], resolve_base(base), chosen, config, split.train_history,
                ds.users.ids, ds.items.ids, ds.item_texts())


def test_text_base_initialises_item_embeddings_from_text(data) -> None:
    ds, split = data
    chosen, config = parse_strategy("full")
    prepared = prepare("sasrec", MODELS["sasrec"], resolve_base("minilm"), chosen, config, split.train_history,
                       ds.users.ids, ds.items.ids, ds.item_texts())
    emb = prepared.model.item_emb.weight.detach()[1:]
    sims = torch.nn.functional.normalize(emb, dim=-1) @ torch.nn.functional.normalize(emb, dim=-1).T
    # items sharing a topic word in their text start closer than items that do not
    same = torch.tensor([[a % 4 == b % 4 and a != b for b in range(32)] for a in range(32)])
    other = torch.tensor([[a % 4 != b % 4 for b in range(32)] for a in range(32)])
    assert sims[same].mean() > sims[other].mean()


def test_registry_and_option_parsing() -> None:
    assert list(STRATEGIES) == ["scratch", "full", "frozen", "partial", "lora", "incremental"]
    strategy, config = parse_strategy("lora:rank=4,targets=q_proj,v_proj,train_head=false")
    assert strategy.name == "lora" and config.rank == 4 and config.targets == "q_proj,v_proj" and config.train_head is False
    with pytest.raises(ConfigError, match="unknown strategy"):
        parse_strategy("dropout")
    with pytest.raises(ConfigError, match="rank"):
        parse_strategy("lora:rank=0")
    with pytest.raises(ConfigError, match="unknown option"):
        parse_strategy("frozen:depth=2")
    for s in STRATEGIES.values():
        d = s.describe()
        assert d["summary"] and all(o["help"] for o in d["options"])


def test_bases_resolve_offline_and_refuse_what_is_missing(tmp_path) -> None:
    minilm = resolve_base("minilm")
    assert minilm.kind == "text" and "text_encoder" in minilm.offers and minilm.accepts("two_tower")
    assert resolve_base("none") is NONE
    with pytest.raises(ConfigError, match="local"):
        resolve_base("hf:some-org/not-downloaded-model")
    with pytest.raises(ConfigError, match="no run directory"):
        resolve_base("run:does-not-exist", tmp_path)
    with pytest.raises(ConfigError, match="unknown base"):
        resolve_base("imagenet")
