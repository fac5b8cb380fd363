"""EASE (Steck 2019): closed-form item-item weights B = I - P / diag(P), P = (X'X + lambda I)^-1."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from recsys_core.data.splits import History
from recsys_core.models.base import FittedRecommender, ModelConfig

LAMBDA_GRID = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)


@dataclass
class EASEConfig(ModelConfig):
    l2: float = field(default=0.0, metadata={"help": "L2 weight lambda; 0 chooses it on validation NDCG@10"})
    grid: tuple = field(default=LAMBDA_GRID, metadata={"help": "lambdas tried when l2 is 0"})
    fold_in: bool = field(default=False, metadata={"help": "score from the history known at prediction time, not the fitted one"})


class EASERecommender(FittedRecommender):
    family = "ease"
    config_class = EASEConfig

    def fit(self, history: History) -> "EASERecommender":
        self.fitted = history
        self.l2 = self.config.l2 or 100.0
        self.weights = ease_weights(gram_matrix(history), self.l2)
        return self

    def fit_tuned(self, history: History, validate: Callable[["EASERecommender"], float],
                  progress: Callable[[str], None] | None = None) -> "EASERecommender":
        """Fit with the configured lambda, or try the grid and keep the best on `validate` (e.g. NDCG@10)."""
        if self.config.l2:
            return self.fit(history)
        self.fitted = history
        gram = gram_matrix(history)
        best_score, best = -1.0, None
        self.tuning = []
        for lam in self.config.grid:
            self.l2, self.weights = float(lam), ease_weights(gram, float(lam))
            score = validate(self)
            self.tuning.append({"l2": float(lam), "valid_ndcg@10": score})
            if progress:
                progress(f"EASE lambda {lam:g}: validation NDCG@10 {score:.4f}")
            if score > best_score:
                best_score, best = score, (self.l2, self.weights)
        self.l2, self.weights = best
        self.config = replace(self.config, l2=self.l2)  # the saved config reproduces the chosen model
        return self

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        return self.input_rows(history, users) @ self.weights

    def save_state(self, directory: Path) -> None:
        save_file({"weights": self.weights.contiguous()}, str(directory / "weights.safetensors"))

    def load_state(self, directory: Path) -> None:
        self.weights = load_file(str(directory / "weights.safetensors"))["weights"]


def gram_matrix(history: History) -> torch.Tensor:
    x = history.csr
    return torch.from_numpy((x.T @ x).toarray().astype(np.float32))


def ease_weights(gram: torch.Tensor, lam: float) -> torch.Tensor:
    """B from the Gram matrix X'X; the diagonal is zero by construction. float32 Cholesky is ample for lambda >= 1."""
    g = gram.clone()
    g.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))
    b = -p / torch.diagonal(p).unsqueeze(0)
    b.fill_diagonal_(0.0)
    return b
