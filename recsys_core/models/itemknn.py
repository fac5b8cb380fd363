"""ItemKNN: cosine similarity between items' user vectors; a user's score is the sum over their history."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from recsys_core.data.splits import History
from recsys_core.models.base import FittedRecommender, ModelConfig


@dataclass
class ItemKNNConfig(ModelConfig):
    neighbours: int = field(default=0, metadata={"help": "keep this many most similar items per item (0 = all)"})
    shrink: float = field(default=0.0, metadata={"help": "shrinkage added to the cosine denominator"})
    fold_in: bool = field(default=False, metadata={"help": "score from the history known at prediction time, not the fitted one"})


class ItemKNNRecommender(FittedRecommender):
    family = "itemknn"
    config_class = ItemKNNConfig

    def fit(self, history: History) -> "ItemKNNRecommender":
        self.fitted = history
        x = history.csr
        co = torch.from_numpy((x.T @ x).toarray().astype(np.float32))
        norms = torch.sqrt(torch.diagonal(co).clone())
        sim = co / (norms.unsqueeze(0) * norms.unsqueeze(1) + self.config.shrink + 1e-12)
        sim.fill_diagonal_(0.0)
        k = self.config.neighbours
        if 0 < k < sim.shape[1]:
            top = torch.topk(sim, k, dim=0)  # keep, for each target item, its k most similar source items
            pruned = torch.zeros_like(sim)
            pruned.scatter_(0, top.indices, top.values)
            sim = pruned
        self.sim = sim
        return self

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        return self.input_rows(history, users) @ self.sim

    def save_state(self, directory: Path) -> None:
        save_file({"sim": self.sim.contiguous()}, str(directory / "weights.safetensors"))

    def load_state(self, directory: Path) -> None:
        self.sim = load_file(str(directory / "weights.safetensors"))["sim"]
