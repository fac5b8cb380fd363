"""LoRA (Hu et al. 2021) through peft: low-rank adapters on the transformer's linear layers, merged after training."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from recsys_core.bases import Base
from recsys_core.errors import ConfigError
from recsys_core.models.neural import NeuralRecommender
from recsys_core.strategies.base import Plan, Strategy, StrategyConfig, StrategyContext, group_of


ADAPTER_PREFIX = "lora_"  # peft names every adapter weight lora_A / lora_B / lora_embedding_...


@dataclass
class LoRAConfig(StrategyConfig):
    rank: int = field(default=8, metadata={"help": "rank r of each adapter (trainable weights grow with r)", "min": 1, "max": 256})
    alpha: float = field(default=16.0, metadata={"help": "scaling: the update is multiplied by alpha / r", "min": 0.0})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input", "min": 0.0, "max": 0.9})
    targets: str = field(default="auto", metadata={
        "help": "comma-separated linear layers to adapt inside the blocks (e.g. q_proj,v_proj or query,value); "
                "auto = the family's attention projections"})
    train_head: bool = field(default=True, metadata={"help": "also train the head (item output layer / tower tops)"})


class LoRA(Strategy):
    name = "lora"
    title = "LoRA adapters"
    summary = ("The pretrained weights stay frozen; each adapted linear layer W gains a trainable low-rank "
               "update B·A (rank r), so a few percent of the weights train. After training B·A is merged into W.")
    config_class = LoRAConfig
    needs_backbone = True
    tunes_text_encoder = True
    adapter_prefix = ADAPTER_PREFIX

    def target_modules(self, model: NeuralRecommender, config: LoRAConfig) -> list[str]:
        """Full names of the Linear layers inside the model's blocks whose last name component is a target."""
        names = model.lora_targets if config.targets == "auto" else tuple(t.strip() for t in config.targets.split(",") if t.strip())
        groups = model.layer_groups()
        out = []
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and name.split(".")[-1] in names:
                g = group_of(name + ".", groups)
                if g is not None and g.role == "block":
                    out.append(name)
        return out

    def check(self, model: NeuralRecommender, base: Base, config: LoRAConfig) -> None:
        super().check(model, base, config)
        if not self.target_modules(model, config):
            wanted = ", ".join(model.lora_targets) if config.targets == "auto" else config.targets
            raise ConfigError(f"strategy lora found no linear layers named {wanted or '(none)'} inside the "
                              f"transformer blocks of this {model.family} model; LoRA needs transformer parts "
                              "(sasrec, a sequence user tower, or a trainable text encoder)")

    def apply(self, model: NeuralRecommender, config: LoRAConfig, context: StrategyContext) -> Plan:
        # peft (and the transformers it pulls in) loads only when a LoRA run starts
        from peft import LoraConfig
        from peft.tuners.lora import LoraModel  # lazy: see above

        targets = self.target_modules(model, config)
        tuner = LoraModel(model, LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                            target_modules=targets, bias="none"), "default")
        groups = model.layer_groups()
        for name, p in model.named_parameters():
            if ADAPTER_PREFIX in name:
                p.requires_grad_(True)
            else:
                g = group_of(name, groups)
                p.requires_grad_(bool(config.train_head and g is not None and g.role == "head"))

        def finish(m: NeuralRecommender) -> NeuralRecommender:
            merged = tuner.merge_and_unload()  # inference then costs nothing extra
            for p in merged.parameters():
                p.requires_grad_(True)
            return merged

        return Plan([{"params": [p for p in model.parameters() if p.requires_grad]}], finish=finish,
                    notes=[f"LoRA r={config.rank} on {len(targets)} layers: {', '.join(targets[:4])}"
                           + (" ..." if len(targets) > 4 else "")])
