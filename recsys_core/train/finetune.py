"""Base + strategy -> a model ready to train, and the training itself (shared by `rectune train` and experiments)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from recsys_core.bases import Base, initial_model
from recsys_core.data.splits import History, Split
from recsys_core.models import family_class
from recsys_core.models.neural import NeuralRecommender, TrainData
from recsys_core.strategies import Plan, Strategy, StrategyConfig, StrategyContext, parameter_report
from recsys_core.train.distributed import SINGLE, Dist
from recsys_core.train.trainer import Callback, FitOutcome, Trainer, TrainerConfig


@dataclass
class Prepared:
    """A model initialised from its base with a strategy applied, before any training step."""

    model: NeuralRecommender
    plan: Plan
    strategy: Strategy
    config: StrategyConfig
    base: Base
    base_report: dict
    params: dict  # parameter_report before training
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-friendly: what transferred and what trains."""
        transferred = {k: v for k, v in self.base_report.items() if not k.endswith("_mask")}
        return {"base": self.base.spec, "strategy": self.strategy.name, "strategy_config": self.config.as_dict(),
                "transferred": transferred, "notes": self.notes, **self.params}


def prepare(family: str, model_config: dict, base: Base, strategy: Strategy, config: StrategyConfig,
            history: History, user_ids: list[str] | None = None, item_ids: list[str] | None = None,
            item_texts: list[str] | None = None, new_rows: np.ndarray | None = None, seed: int = 0,
            optimizer: str = "adam", item_images: list[str | None] | None = None) -> Prepared:
    """Build `family` from `base`, check the strategy applies, and let it decide what trains."""
    overrides = strategy.model_overrides(family_class(family), base, config)
    torch.manual_seed(seed)  # the random parts (heads, new rows) are reproducible
    model, report = initial_model(family, base, history.n_users, history.n_items, {**model_config, **overrides},
                                  user_ids, item_ids, item_texts, item_images)
    strategy.check(model, base, config)
    previous = copy.deepcopy(model) if strategy.uses_previous_model(config) else None
    context = StrategyContext(base, history, new_rows=new_rows, previous=previous,
                              base_report=report, item_texts=item_texts, seed=seed)
    plan = strategy.apply(model, config, context)
    notes = [n for n in plan.notes]
    if report.get("new_items") or report.get("new_users"):
        notes.insert(0, f"from the base: {report.get('items_from_base', 0):,} items and {report.get('users_from_base', 0):,} "
                        f"users; new: {report.get('new_items', 0):,} items, {report.get('new_users', 0):,} users")
    return Prepared(model, plan, strategy, config, base, report,
                    parameter_report(model, optimizer, strategy.adapter_prefix), notes)


@dataclass
class Trained:
    """What training a prepared model gives: the kept model (after the plan's finish), the outcome, the trainer."""

    model: NeuralRecommender
    outcome: FitOutcome
    trainer: Trainer


def build_trainer(model: NeuralRecommender, split: Split, trainer_config: TrainerConfig, device: torch.device,
                  plan: Plan | None = None, item_texts: list[str] | None = None,
                  callbacks: list[Callback] | None = None, should_stop=None, train_rows: np.ndarray | None = None,
                  dist: Dist = SINGLE) -> Trainer:
    """The one way a Trainer is made: the plan's parameter groups, extra loss and training rows on `split`.

    `train_rows` restricts training targets when the plan does not choose them itself (e.g. the few-shot
    rows of new users in the transfer experiment; the rest is context). No plan: every weight trains.
    """
    rows = plan.train_rows if plan is not None and plan.train_rows is not None else train_rows
    data = TrainData(split.train_history, item_texts=item_texts if model.needs_item_text else None, train_rows=rows)
    return Trainer(model, data, split, trainer_config, device, callbacks=callbacks, should_stop=should_stop,
                   param_groups=plan.param_groups if plan is not None else None,
                   extra_loss=plan.extra_loss if plan is not None else None, dist=dist)


def finish_training(prepared: Prepared, trainer: Trainer) -> Trained:
    """Run the trainer and apply the plan's finish step (e.g. merging LoRA adapters into the weights)."""
    outcome = trainer.fit()
    model = prepared.plan.finish(prepared.model) if prepared.plan.finish is not None else prepared.model
    return Trained(model, outcome, trainer)


def train_prepared(prepared: Prepared, split: Split, trainer_config: TrainerConfig, device: torch.device,
                   item_texts: list[str] | None = None, callbacks: list[Callback] | None = None,
                   should_stop=None, train_rows: np.ndarray | None = None, dist: Dist = SINGLE) -> Trained:
    """Train with the plan's parameter groups, extra loss and data; finish (e.g. merge LoRA) afterwards."""
    trainer = build_trainer(prepared.model, split, trainer_config, device, prepared.plan, item_texts, callbacks,
                            should_stop, train_rows, dist)
    return finish_training(prepared, trainer)


def preview(family: str, model_config: dict, base: Base, strategy: Strategy, config: StrategyConfig,
            history: History, user_ids: list[str] | None = None, item_ids: list[str] | None = None,
            item_texts: list[str] | None = None, optimizer: str = "adam") -> dict:
    """What would train, before training: the parameter table, counts and memory of the prepared model."""
    prepared = prepare(family, model_config, base, strategy, config, history, user_ids, item_ids, item_texts,
                       new_rows=history.frame["row"].to_numpy(), optimizer=optimizer)
    return prepared.summary()
