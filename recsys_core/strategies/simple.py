"""Strategies that decide only which layers train: scratch, full, frozen, partial."""
from __future__ import annotations

from dataclasses import dataclass, field

from recsys_core.bases import Base
from recsys_core.errors import ConfigError
from recsys_core.models.neural import NeuralRecommender
from recsys_core.strategies.base import Plan, Strategy, StrategyConfig, StrategyContext, group_of, set_trainable


@dataclass
class ScratchConfig(StrategyConfig):
    pass


class Scratch(Strategy):
    name = "scratch"
    title = "Train from scratch"
    summary = ("Every weight starts random and trains on your data alone: the reference every transfer "
               "strategy must beat. (A two-tower or text model still reads text through its pretrained encoder.)")
    config_class = ScratchConfig
    needs_base = False

    def check(self, model: NeuralRecommender, base: Base, config: StrategyConfig) -> None:
        super().check(model, base, config)
        content = {"text": model.text_base, "image": model.image_base}.get(base.kind)
        if content == "item_init":
            raise ConfigError(f"strategy scratch starts from random weights; base {base.spec} would initialise the "
                              f"{model.family} item embeddings from {base.kind}: use strategy full with it, or base none",
                              field="strategy")

    def apply(self, model: NeuralRecommender, config: StrategyConfig, context: StrategyContext) -> Plan:
        set_trainable(model, lambda g: True)
        return Plan([{"params": list(model.parameters())}])


@dataclass
class FullConfig(StrategyConfig):
    backbone_lr_scale: float = field(default=1.0, metadata={
        "help": "learning rate of the pretrained backbone relative to the head (below 1 changes it more gently)",
        "min": 0.0, "max": 10.0})


class Full(Strategy):
    name = "full"
    title = "Full fine-tuning"
    summary = ("Start from the base's weights and let every weight train. Adapts the most, costs the most "
               "optimizer memory, and can forget what the base knew.")
    config_class = FullConfig
    tunes_text_encoder = True

    def apply(self, model: NeuralRecommender, config: FullConfig, context: StrategyContext) -> Plan:
        set_trainable(model, lambda g: True)
        groups = model.layer_groups()
        head, backbone = [], []
        for name, p in model.named_parameters():
            g = group_of(name, groups)
            (head if g is not None and g.role == "head" else backbone).append(p)
        param_groups = [{"params": head}]
        if backbone:
            param_groups.append({"params": backbone, "lr_scale": config.backbone_lr_scale})
        return Plan([g for g in param_groups if g["params"]])


@dataclass
class FrozenConfig(StrategyConfig):
    pass


class Frozen(Strategy):
    name = "frozen"
    title = "Frozen backbone, head trains"
    summary = ("The pretrained backbone (sequence encoder, text encoder or item factors) stays fixed; only the "
               "head that faces your data trains (item output layer, tower tops, user factors). Fast and cheap, "
               "and it cannot forget; with a text encoder its embeddings are computed once and cached.")
    config_class = FrozenConfig
    needs_backbone = True
    tunes_text_encoder = False

    def apply(self, model: NeuralRecommender, config: StrategyConfig, context: StrategyContext) -> Plan:
        set_trainable(model, lambda g: g is not None and g.role == "head")
        return Plan([{"params": [p for p in model.parameters() if p.requires_grad]}])


@dataclass
class PartialConfig(StrategyConfig):
    top_blocks: int = field(default=1, metadata={"help": "how many of the top transformer blocks train with the head",
                                                  "min": 1, "max": 48})


class Partial(Strategy):
    name = "partial"
    title = "Partial unfreezing (top blocks)"
    summary = ("The head and the top N transformer blocks train; lower blocks, which hold the most general "
               "features, stay frozen. A middle ground between frozen and full.")
    config_class = PartialConfig
    needs_backbone = True
    tunes_text_encoder = True

    def check(self, model: NeuralRecommender, base: Base, config: PartialConfig) -> None:
        super().check(model, base, config)
        if not [g for g in model.layer_groups() if g.role == "block"]:
            raise ConfigError(f"strategy partial unfreezes transformer blocks, and a {model.family} model has none; "
                              "use frozen or full")

    def apply(self, model: NeuralRecommender, config: PartialConfig, context: StrategyContext) -> Plan:
        blocks = [g for g in model.layer_groups() if g.role == "block"]
        top = {g.name for g in blocks[-config.top_blocks:]}
        set_trainable(model, lambda g: g is not None and (g.role == "head" or g.name in top))
        return Plan([{"params": [p for p in model.parameters() if p.requires_grad]}],
                    notes=[f"training the head and {', '.join(sorted(top))}"])

