"""Matrix factorisation trained with the BPR pairwise loss (Rendle et al. 2009)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.config_fields import check_choice
from recsys_core.data.splits import History
from recsys_core.models.base import ModelConfig
from recsys_core.models.neural import LayerGroup, NeuralRecommender, init_weights


@dataclass
class MFConfig(ModelConfig):
    dim: int = field(default=64, metadata={"help": "embedding size", "min": 2})
    negatives: int = field(default=4, metadata={"help": "sampled negatives per positive", "min": 1})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the user embedding", "min": 0.0, "max": 0.9})
    init: str = field(default="normal", metadata={"help": "weight init scheme", "choices": ["normal", "xavier"]})

    def __post_init__(self) -> None:
        check_choice(self.init, ["normal", "xavier"], "mf init")


class MF(NeuralRecommender):
    family = "mf"
    config_class = MFConfig
    user_tables = ("user_emb",)
    item_tables = ("item_emb", "item_bias")
    item_vector_table = "item_emb"
    text_base = "item_init"
    image_base = "item_init"
    sparse_updates = True
    default_train = {"epochs": 40, "batch_size": 1024, "lr": 5e-3, "patience": 4, "weight_decay": 0.0}

    def __init__(self, n_users: int, n_items: int, config: MFConfig | None = None) -> None:
        super().__init__(n_users, n_items, config)
        c: MFConfig = self.config
        self.user_emb = nn.Embedding(n_users, c.dim)
        self.item_emb = nn.Embedding(n_items, c.dim)
        self.item_bias = nn.Embedding(n_items, 1)
        self.dropout = nn.Dropout(c.dropout)
        init_weights(self, c.init, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def loss(self, batch: dict) -> torch.Tensor:
        users, pos = batch["users"].to(self.device), batch["items"].to(self.device)
        neg = torch.randint(0, self.n_items, (len(users), self.config.negatives), device=self.device)
        u = self.dropout(self.user_emb(users))
        s_pos = (u * self.item_emb(pos)).sum(-1) + self.item_bias(pos).squeeze(-1)
        s_neg = (u.unsqueeze(1) * self.item_emb(neg)).sum(-1) + self.item_bias(neg).squeeze(-1)
        return -F.logsigmoid(s_pos.unsqueeze(1) - s_neg).mean()

    def layer_groups(self) -> list[LayerGroup]:
        return [LayerGroup("item factors and biases", "embedding", ("item_emb", "item_bias")),
                LayerGroup("user factors", "head", ("user_emb",))]

    def user_logits(self, users: np.ndarray, history: History) -> torch.Tensor:
        u = self.user_emb(torch.as_tensor(users, device=self.device))
        return u @ self.item_emb.weight.T + self.item_bias.weight.T
