"""What a fine-tuning strategy is: a validated dataclass config plus one function deciding what trains.

`Strategy.apply(model, config, context)` freezes, adapts or penalises the model and returns a `Plan`:
the optimizer's parameter groups, an optional extra loss term, the interactions to train on, and a
finish step (e.g. merging LoRA weights). `parameter_report` tells what trains and what it costs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from recsys_core.bases import Base
from recsys_core.config_fields import check_fields, describe_fields, from_dict
from recsys_core.data.splits import History
from recsys_core.errors import ConfigError
from recsys_core.models.base import Recommender
from recsys_core.models.neural import LayerGroup, NeuralRecommender


@dataclass
class StrategyConfig:
    """Base of every strategy's options; fields carry help text, choices and bounds in their metadata."""

    def __post_init__(self) -> None:
        check_fields(self, "strategy option")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StrategyContext:
    """What a strategy may use besides the model: the base, the data it trains on, the previous model."""

    base: Base
    history: History  # every interaction known for training
    new_rows: np.ndarray | None = None  # `row` ids of the new data (incremental); None = all of it is new
    previous: NeuralRecommender | None = None  # the base as a frozen model (penalties, distillation)
    base_report: dict = field(default_factory=dict)  # what initial_model transferred (new-row masks, ...)
    item_texts: list[str] | None = None
    seed: int = 0


@dataclass
class Plan:
    param_groups: list[dict]
    extra_loss: Callable[[dict], torch.Tensor | None] | None = None
    train_rows: np.ndarray | None = None  # None = train on every known interaction
    finish: Callable[[NeuralRecommender], NeuralRecommender] | None = None
    notes: list[str] = field(default_factory=list)


class Strategy:
    """A fine-tuning strategy; subclasses set the class attributes and implement `apply`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one paragraph for the studio's Learn page and `rectune strategies`
    config_class: ClassVar[type[StrategyConfig]] = StrategyConfig
    needs_base: ClassVar[bool] = True
    needs_backbone: ClassVar[bool] = False  # needs a base that offers the family's pretrained backbone
    #: trains on the interactions newer than its base (a run base's data_until), reading the rest as context
    trains_on_new_data: ClassVar[bool] = False
    #: the name part that marks the weights this strategy adds (adapters), counted apart in parameter reports
    adapter_prefix: ClassVar[str | None] = None

    def parse(self, values: dict | None) -> StrategyConfig:
        return from_dict(self.config_class, values, f"strategy {self.name}")

    #: whether the strategy changes the weights of a text encoder it starts from (then it must run inside
    #: the model); False keeps the encoder frozen with cached embeddings; None leaves the model's choice
    tunes_text_encoder: ClassVar[bool | None] = None

    def uses_previous_model(self, config: StrategyConfig) -> bool:
        """Whether apply() needs a frozen copy of the starting model (penalties, distillation)."""
        return False

    def model_overrides(self, family: type[Recommender], base: Base, config: StrategyConfig) -> dict:
        """Model-config changes this strategy implies (e.g. a trainable text encoder for full fine-tuning)."""
        option = family.text_trainable_option
        if option is None or self.tunes_text_encoder is None:
            return {}
        if self.tunes_text_encoder and base.kind != "text":
            return {}  # from a run base the architecture stays the base's
        return {option: self.tunes_text_encoder}

    def check(self, model: NeuralRecommender, base: Base, config: StrategyConfig) -> None:
        """Raise ConfigError when the strategy does not apply to this model and base."""
        if self.needs_base and base.kind == "none":
            raise ConfigError(f"strategy {self.name} fine-tunes a pretrained base: pick a base "
                              "(minilm, hf:NAME, run:RUN_ID), or use strategy scratch", field="base")
        if not self.needs_base and base.kind == "run":
            raise ConfigError(f"strategy {self.name} trains from random weights and would ignore base {base.spec}; "
                              "use full, frozen, partial, lora or incremental to start from it")
        if self.needs_backbone and base.kind != "none" and model.backbone not in base.offers:
            raise ConfigError(f"strategy {self.name} keeps a pretrained {model.backbone.replace('_', ' ')} of the "
                              f"{model.family} model, and base {base.spec} offers only "
                              f"{', '.join(base.offers) or 'nothing'}: pretrain a {model.family} run and use "
                              f"run:RUN_ID, or use strategy full")

    def apply(self, model: NeuralRecommender, config: StrategyConfig, context: StrategyContext) -> Plan:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "summary": self.summary, "needs_base": self.needs_base,
                "options": describe_fields(self.config_class)}


# ------------------------------------------------------------------ parameter bookkeeping

def group_of(name: str, groups: list[LayerGroup]) -> LayerGroup | None:
    """The group a parameter name belongs to (the longest matching prefix wins)."""
    best, length = None, -1
    for g in groups:
        for p in g.prefixes:
            if name.startswith(p) and len(p) > length:
                best, length = g, len(p)
    return best


def set_trainable(model: NeuralRecommender, trains: Callable[[LayerGroup | None], bool]) -> None:
    groups = model.layer_groups()
    for name, p in model.named_parameters():
        p.requires_grad_(trains(group_of(name, groups)))



def parameter_report(model: NeuralRecommender, optimizer: str = "adam", adapter_prefix: str | None = None) -> dict:
    """Per layer group: parameters, how many train, and what training them costs in memory.

    Weights whose name holds `adapter_prefix` (the strategy's adapters) are counted apart from the model's own.
    """
    groups = model.layer_groups()
    rows: dict[str, dict] = {}
    for name, p in model.named_parameters():
        g = group_of(name, groups)
        key = g.name if g else "other"
        row = rows.setdefault(key, {"group": key, "role": g.role if g else "embedding", "params": 0, "trainable": 0,
                                    "adapter": 0})
        row["params"] += p.numel()
        if p.requires_grad:
            row["trainable"] += p.numel()
            if adapter_prefix and adapter_prefix in name:
                row["adapter"] += p.numel()
    for row in rows.values():
        row["state"] = ("LoRA adapters" if row["adapter"] and row["trainable"] == row["adapter"]
                        else "trains" if row["trainable"] == row["params"]
                        else "frozen" if row["trainable"] == 0 else "partly trains")
    trainable = sum(r["trainable"] for r in rows.values())
    total = sum(r["params"] for r in rows.values()) - sum(r["adapter"] for r in rows.values())
    slots = {"adam": 2, "adamw": 2, "sgd": 1}.get(optimizer, 2)  # moment buffers per trainable weight
    bytes_per = 4
    return {"groups": list(rows.values()), "trainable_params": trainable, "total_params": total,
            "trainable_share": trainable / max(total, 1),
            "gradient_bytes": trainable * bytes_per, "optimizer_bytes": trainable * bytes_per * slots,
            "weight_bytes": (total + sum(r["adapter"] for r in rows.values())) * bytes_per}
