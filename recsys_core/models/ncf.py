"""NCF, the MLP recommender: user embedding and pooled history into an MLP, with a softmax head over items.

Because the user side also reads the user's history, a model trained on old users transfers to new
users: their id embedding is untrained, but their history is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.config_fields import check_choice
from recsys_core.data.splits import History
from recsys_core.models.base import ModelConfig
from recsys_core.models.neural import LayerGroup, NeuralRecommender, TrainData, grow_embedding, history_batch, init_weights
from recsys_core.models.sequences import FlatSequences


@dataclass
class NCFConfig(ModelConfig):
    dim: int = field(default=64, metadata={"help": "embedding size", "min": 4})
    hidden: tuple = field(default=(256, 128), metadata={"help": "MLP layer sizes"})
    dropout: float = field(default=0.2, metadata={"help": "dropout in the MLP", "min": 0.0, "max": 0.9})
    history: int = field(default=50, metadata={"help": "recent items pooled into the user representation", "min": 1})
    use_user_id: bool = field(default=True, metadata={"help": "add a per-user id embedding to the MLP input"})
    loss: str = field(default="auto", metadata={"help": "'ce' full softmax, 'sampled' softmax, or 'auto' (full up to 4096 items)", "choices": ["auto", "ce", "sampled"]})
    negatives: int = field(default=1024, metadata={"help": "shared negatives for the sampled softmax", "min": 1})
    layer_norm: bool = field(default=True, metadata={"help": "layer norm after each MLP layer"})
    init: str = field(default="xavier", metadata={"help": "weight init scheme", "choices": ["normal", "xavier"]})

    def __post_init__(self) -> None:
        check_choice(self.loss, ["auto", "ce", "sampled"], "ncf loss")
        check_choice(self.init, ["normal", "xavier"], "ncf init")
        self.hidden = tuple(int(h) for h in self.hidden)


class NCF(NeuralRecommender):
    family = "ncf"
    sparse_updates = True
    config_class = NCFConfig
    user_tables = ("user_emb",)
    item_tables = ("item_in", "item_out", "item_bias")
    sequence_option = "history"
    item_vector_table = "item_out"
    text_base = "item_init"
    image_base = "item_init"
    reads_history = True
    default_train = {"epochs": 30, "batch_size": 512, "lr": 1e-3, "patience": 4}

    def __init__(self, n_users: int, n_items: int, config: NCFConfig | None = None) -> None:
        super().__init__(n_users, n_items, config)
        c: NCFConfig = self.config
        self.user_emb = nn.Embedding(n_users, c.dim)
        self.item_in = nn.Embedding(n_items + 1, c.dim, padding_idx=0)
        layers: list[nn.Module] = []
        width = c.dim * (2 if c.use_user_id else 1)
        for h in c.hidden:
            layers += [nn.Linear(width, h)] + ([nn.LayerNorm(h)] if c.layer_norm else []) + [nn.GELU(), nn.Dropout(c.dropout)]
            width = h
        layers.append(nn.Linear(width, c.dim))
        self.mlp = nn.Sequential(*layers)
        self.item_out = nn.Embedding(n_items, c.dim)
        self.item_bias = nn.Embedding(n_items, 1)
        init_weights(self, c.init)
        nn.init.zeros_(self.item_bias.weight)

    # item tables are offset differently: item_in has padding row 0, item_out/item_bias do not
    def grow(self, n_users: int, n_items: int, item_init: torch.Tensor | None = None) -> None:

        self.user_emb = grow_embedding(self.user_emb, n_users)
        self.item_in = grow_embedding(self.item_in, n_items + 1, item_init)
        self.item_out = grow_embedding(self.item_out, n_items, item_init)
        self.item_bias = grow_embedding(self.item_bias, n_items)
        self.n_users, self.n_items = max(n_users, self.n_users), max(n_items, self.n_items)

    def user_vector(self, users: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        e = self.item_in(hist)
        mask = (hist > 0).unsqueeze(-1).float()
        pooled = (e * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        x = torch.cat([self.user_emb(users), pooled], dim=-1) if self.config.use_user_id else pooled
        return self.mlp(x)

    def layer_groups(self) -> list[LayerGroup]:
        return [LayerGroup("item input embeddings", "embedding", ("item_in",)),
                LayerGroup("MLP", "block", ("mlp.",)),
                LayerGroup("user ids + output layer", "head", ("user_emb", "item_out", "item_bias"))]

    def prepare(self, data: TrainData) -> None:
        self.flat = FlatSequences(data.history)
        flags = data.flat_targets()
        self.positions = torch.arange(len(self.flat)) if flags is None else torch.nonzero(flags).squeeze(1)

    def batches(self, data: TrainData, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        # Each training interaction is predicted from the items before it (never from itself).
        order = self.positions[torch.randperm(len(self.positions), generator=generator)]
        for lo in range(0, len(order), batch_size):
            pos = order[lo: lo + batch_size]
            yield {"users": self.flat.users[pos], "hist": self.flat.prefix(pos, self.config.history),
                   "target": self.flat.items[pos], "n": len(pos)}

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item_out.weight.T + self.item_bias.weight.T

    def loss(self, batch: dict) -> torch.Tensor:
        h = self.user_vector(batch["users"], batch["hist"])
        target = batch["target"]
        if self.full_softmax:
            return F.cross_entropy(self.logits(h).float(), target)
        neg = torch.randint(0, self.n_items, (self.config.negatives,), device=h.device)
        pos = (h * self.item_out(target)).sum(-1, keepdim=True) + self.item_bias(target)
        negs = (h @ self.item_out(neg).T + self.item_bias(neg).T).masked_fill(neg.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
        return F.cross_entropy(torch.cat([pos, negs], 1).float(), torch.zeros(len(target), dtype=torch.long, device=h.device))

    def user_logits(self, users: np.ndarray, history: History) -> torch.Tensor:
        hist = history_batch(history, users, self.config.history).to(self.device)
        return self.logits(self.user_vector(torch.as_tensor(users, device=self.device), hist))
