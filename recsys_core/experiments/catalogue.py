"""Cross-catalogue transfer through item text: pretrain on one catalogue, recommend in another.

A model whose items are represented only by their text (two_tower with item_repr 'text') has no
item-id weights, so everything it learned carries over to items it has never seen. The source
catalogue pretrains it; in the target catalogue every user is new and gives `shots` interactions
(then one for validation and one for test). Reported: zero-shot (the base as it is), each strategy
fine-tuned on the shots, training from scratch on the shots, and chance (random scores).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from recsys_core.bases import Base, initial_model
from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import History, Split, user_group_split
from recsys_core.errors import ConfigError
from recsys_core.eval.evaluator import evaluate
from recsys_core.experiments.common import (Arm, ArmData, ArmSpec, ExperimentOptions, Progress, compare_arms,
                                            holdout_last, pick_best, score_arm, train_arm)
from recsys_core.train.device import device_name, pick_device, seed_everything


def split_catalogue(ds: Dataset, word: str, top_items: int | None = None, min_user: int = 5) -> tuple[Dataset, Dataset]:
    """Two datasets over disjoint items: those whose text mentions `word`, and the rest (e.g. by genre).

    `top_items` keeps the most popular items of each side; users with fewer than `min_user` interactions
    on a side are left out of it.
    """
    texts = np.array(ds.item_texts())
    has_word = np.char.find(np.char.lower(texts.astype(str)), word.lower()) >= 0
    out = []
    for side in (has_word, ~has_word):
        frame = ds.interactions[side[ds.interactions["i"].to_numpy()]]
        if top_items:
            keep = frame["i"].value_counts().index[:top_items]  # on the integer codes: ids are categoricals
            frame = frame[frame["i"].isin(keep)]
        counts = frame.groupby("u")["u"].transform("size")
        frame = frame[counts >= min_user]
        if frame.empty:
            raise ConfigError(f"splitting the catalogue on {word!r} leaves one side without usable interactions")
        out.append(Dataset.from_frame(frame[["user", "item", "rating", "timestamp", "row"]], name=f"{ds.name}[{word}]",
                                      has_rating=ds.has_rating, has_timestamp=ds.has_timestamp,
                                      item_table=ds.item_table, order=ds.order))
    return out[0], out[1]


class RandomScores:
    """Chance level: seeded uniform scores."""

    def __init__(self, n_items: int, seed: int = 0) -> None:
        self.n_items, self.generator = n_items, torch.Generator().manual_seed(seed)

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        return torch.rand(len(users), self.n_items, generator=self.generator)


def run_cross_catalogue(source: Dataset, target: Dataset, options: ExperimentOptions, shots: int = 5,
                        progress: Progress | None = None) -> dict:
    say = progress or (lambda m: None)
    started = time.perf_counter()
    device = pick_device(options.device)
    seed_everything(options.seed)
    shared = set(source.items.ids) & set(target.items.ids)
    train, valid = holdout_last(source.interactions)
    base_split = Split("source-catalogue", "source catalogue, last interaction of each user validates",
                       source.n_users, source.n_items, train, valid, valid)
    say(f"pretraining {options.family} on the source catalogue ({len(source):,} interactions, {source.n_items:,} items)")
    base_arm = train_arm(ArmSpec("base", "scratch"), options,
                         ArmData(base_split, source.users.ids, source.items.ids, source.item_texts()), device, say)
    base = Base.from_model(base_arm.model, source.users.ids, source.items.ids, name="source-catalogue")

    split = user_group_split(target, source_frac=0.0, shots=shots)  # every target user is new
    ids, texts = (target.users.ids, target.items.ids), target.item_texts()
    zero, _ = initial_model(options.family, base, target.n_users, target.n_items, {}, *ids, texts)
    if zero.needs_item_text:
        zero.set_item_texts(texts)
    references = {"no_update": Arm("no_update", zero, 0.0, 0, base_arm.total_params,
                                   notes=["the source model applied to the new catalogue as it is (zero-shot)"]),
                  "scratch": train_arm(ArmSpec("scratch", "scratch"), options, ArmData(split, *ids, texts), device, say)}
    strategies = {name: train_arm(ArmSpec(name, options.strategy_spec(name), base), options,
                                  ArmData(split, *ids, texts), device, say)
                  for name in options.strategies}
    for arm in [*references.values(), *strategies.values()]:
        score_arm(arm, split)
    chance = evaluate(RandomScores(target.n_items, options.seed), split, "test")
    scratch = references["scratch"].test
    result = {
        "protocol": {"name": "cross-catalogue", "source_items": source.n_items, "target_items": target.n_items,
                     "shared_items": len(shared), "shots": shots, "model": options.family,
                     "target_users": int(split.test["u"].nunique()), "device": device_name(device)},
        "base": {"seconds": round(base_arm.seconds, 2), "epochs": base_arm.epochs},
        "strategies": {n: a.figures() for n, a in strategies.items()},
        "references": {**{n: a.figures() for n, a in references.items()},
                       "random": {k: chance.metrics[k] for k in ("ndcg@10", "recall@10", "hr@10", "n_users")}
                       | {"seconds": 0.0, "trainable_params": 0}},
        "selected_on": "valid",
        "budget": options.budget(),
        "reference": "scratch",
        "vs_scratch": compare_arms({n: a.test for n, a in {**strategies, **references}.items() if n != "scratch"},
                                   scratch, options.seed),
    }
    result["best"] = pick_best(result["strategies"])
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
