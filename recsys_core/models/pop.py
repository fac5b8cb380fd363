"""Pop: every user gets the items with the most known interactions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from recsys_core.data.splits import History
from recsys_core.models.base import FittedRecommender


class PopRecommender(FittedRecommender):
    family = "pop"

    def fit(self, history: History) -> "PopRecommender":
        self.counts = torch.as_tensor(history.item_counts, dtype=torch.float32)
        return self

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(len(users), -1).clone()

    def save_state(self, directory: Path) -> None:
        save_file({"counts": self.counts}, str(directory / "weights.safetensors"))

    def load_state(self, directory: Path) -> None:
        self.counts = load_file(str(directory / "weights.safetensors"))["counts"]
