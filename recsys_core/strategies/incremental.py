"""Incremental fine-tuning: warm start from the previous model on the new data only.

New users and items get rows initialised from item text or their neighbours; a sample of old
interactions is replayed; an L2-SP or EWC penalty pulls the shared weights towards the previous
ones; optionally the previous model's scores are distilled into the new one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from recsys_core.errors import ConfigError
from recsys_core.models.neural import NeuralRecommender, TrainData
from recsys_core.strategies.base import Plan, Strategy, StrategyConfig, StrategyContext, set_trainable
from recsys_core.strategies.growth import INITS, init_new_rows

PENALTIES = ["l2sp", "ewc", "none"]


@dataclass
class IncrementalConfig(StrategyConfig):
    init: str = field(default="neighbours", metadata={
        "help": "rows for new items and users: mean of their neighbours, a map from item text, or the plain mean",
        "choices": INITS})
    replay: float = field(default=0.3, metadata={
        "help": "share of old users whose old interactions are trained on again with the new ones (whole users, so a "
                "sequence model replays whole histories rather than scattered positions)", "min": 0.0, "max": 1.0})
    penalty: str = field(default="l2sp", metadata={
        "help": "pull shared weights towards the previous model: L2-SP (uniform) or EWC (weighted by Fisher information)",
        "choices": PENALTIES})
    penalty_weight: float = field(default=1e-3, metadata={"help": "strength of the penalty", "min": 0.0})
    distill: float = field(default=0.0, metadata={
        "help": "weight of distilling the previous model's scores for old users (0 = off)", "min": 0.0})
    temperature: float = field(default=2.0, metadata={"help": "distillation softmax temperature", "min": 0.1})
    distill_users: int = field(default=64, metadata={"help": "old users per step whose scores are distilled", "min": 1})
    fisher_batches: int = field(default=20, metadata={"help": "EWC: old-data batches used to estimate the Fisher information",
                                                      "min": 1})


class Incremental(Strategy):
    name = "incremental"
    title = "Incremental update"
    summary = ("Warm-start from the previous model and train on the new data only: tables grow for new users and "
               "items (initialised from neighbours or item text), a sample of old data is replayed, and a penalty "
               "(L2-SP or EWC) keeps shared weights near their old values so the model does not forget.")
    config_class = IncrementalConfig
    trains_on_new_data = True

    def check(self, model: NeuralRecommender, base, config: IncrementalConfig) -> None:
        super().check(model, base, config)
        if base.kind != "run":
            raise ConfigError("strategy incremental continues an earlier model: pick a run base (run:RUN_ID)",
                              field="base")

    def uses_previous_model(self, config: IncrementalConfig) -> bool:
        return config.distill > 0

    def apply(self, model: NeuralRecommender, config: IncrementalConfig, context: StrategyContext) -> Plan:
        history = context.history
        rows = history.frame["row"].to_numpy()
        new_rows = rows if context.new_rows is None else np.asarray(context.new_rows)
        is_new = np.isin(rows, new_rows)
        if not is_new.any():
            raise ConfigError("strategy incremental found no new interactions to train on (nothing newer than "
                              "the data the base was trained on)")
        rng = np.random.default_rng(context.seed)
        old = rows[~is_new]
        users = history.frame["u"].to_numpy()
        old_users = np.unique(users[~is_new])
        chosen = rng.choice(old_users, size=int(round(config.replay * len(old_users))), replace=False)
        replay = rows[~is_new & np.isin(users, chosen)]
        train_rows = np.concatenate([rows[is_new], replay])
        notes = [f"training on {int(is_new.sum()):,} new interactions and {len(replay):,} replayed old ones "
                 f"(of {len(chosen):,} old users)"]

        report = context.base_report
        grown = init_new_rows(model, config.init, report.get("new_item_mask"), report.get("new_user_mask"),
                              history, context.item_texts)
        if grown.get("items") or grown.get("users"):
            notes.append(f"{grown.get('items', 0):,} new items and {grown.get('users', 0):,} new users initialised "
                         f"from {config.init}")
        set_trainable(model, lambda g: True)

        terms = []
        if config.penalty != "none" and config.penalty_weight > 0:
            fisher = self._fisher(model, history, old, config, context) if config.penalty == "ewc" else None
            terms.append(_anchor_penalty(model, report, config.penalty_weight, fisher))
            notes.append(f"{config.penalty} penalty (weight {config.penalty_weight:g}) towards the previous weights")
        if config.distill > 0:
            if context.previous is None:
                raise ConfigError("distillation needs the previous model")
            terms.append(_distillation(model, context, config, ~is_new))
            notes.append(f"distilling the previous model's scores (weight {config.distill:g}, T={config.temperature:g})")

        def extra_loss(batch: dict) -> torch.Tensor | None:
            values = [t() for t in terms]
            return sum(values) if values else None

        return Plan([{"params": list(model.parameters())}], extra_loss=extra_loss if terms else None,
                    train_rows=train_rows, notes=notes)

    def _fisher(self, model: NeuralRecommender, history, old_rows: np.ndarray, config: IncrementalConfig,
                context: StrategyContext) -> dict[str, torch.Tensor]:
        """Diagonal Fisher information of the previous weights on old data (squared gradients, mean 1)."""
        if not len(old_rows):
            raise ConfigError("EWC needs old interactions to measure what the model knew")
        data = TrainData(history, item_texts=context.item_texts, train_rows=old_rows)
        model.prepare(data)
        fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        gen = torch.Generator().manual_seed(context.seed)
        was = model.training
        model.train()
        for k, batch in enumerate(model.batches(data, 256, gen)):
            if k >= config.fisher_batches:
                break
            batch = {key: v.to(model.device) if torch.is_tensor(v) else v for key, v in batch.items()}
            model.zero_grad(set_to_none=True)
            model.loss(batch).backward()
            for n, p in model.named_parameters():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2
        model.zero_grad(set_to_none=True)
        model.train(was)
        mean = torch.cat([f.flatten() for f in fisher.values()]).mean().clamp(min=1e-12)
        return {n: f / mean for n, f in fisher.items()}


def _anchor_penalty(model: NeuralRecommender, report: dict, weight: float, fisher: dict | None):
    """sum w * (theta - theta_prev)^2 over weights the previous model had (rows of new ids are free)."""
    anchors = []
    item_mask, user_mask = report.get("new_item_mask"), report.get("new_user_mask")
    item_tables = set(model.item_id_tables())
    for name, p in model.named_parameters():
        w = torch.ones_like(p) if fisher is None else fisher[name].clone()
        table = name.split(".")[0]
        mask = item_mask if table in item_tables else user_mask if table in model.user_tables else None
        if mask is not None:
            offset = p.shape[0] - len(mask)
            w[offset:][torch.from_numpy(mask).to(p.device)] = 0.0
        anchors.append((p, p.detach().clone(), w))

    def penalty() -> torch.Tensor:
        return weight * sum((w * (p - p0) ** 2).sum() for p, p0, w in anchors)

    return penalty


def _distillation(model: NeuralRecommender, context: StrategyContext, config: IncrementalConfig, old_mask: np.ndarray):
    """KL between the previous and the current model's softmax over old items, for a sample of old users."""
    history = context.history
    previous = context.previous.eval()
    for p in previous.parameters():
        p.requires_grad_(False)
    old_users = np.unique(history.frame["u"].to_numpy()[old_mask])
    new_items = context.base_report.get("new_item_mask")
    old_items = torch.from_numpy(np.flatnonzero(~new_items)) if new_items is not None else None
    gen = np.random.default_rng(context.seed + 1)
    t = config.temperature

    def loss() -> torch.Tensor:
        users = gen.choice(old_users, size=min(config.distill_users, len(old_users)), replace=False)
        with torch.no_grad():
            teacher = previous.user_logits(users, history)
        student = model.user_logits(users, history)
        if old_items is not None:
            teacher, student = teacher[:, old_items.to(teacher.device)], student[:, old_items.to(student.device)]
        return config.distill * t * t * F.kl_div(F.log_softmax(student.float() / t, -1), F.log_softmax(teacher.float() / t, -1),
                                                  log_target=True, reduction="batchmean")

    return loss
