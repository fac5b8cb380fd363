"""The Recommender contract every model family implements, and the family registry."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.config_fields import from_dict
from recsys_core.data.splits import History
from recsys_core.models.memory import DataSizes, MemoryEstimate, check_fits


@dataclass
class ModelConfig:
    """Base of every family's hyper-parameters; fields carry help text in their metadata."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        return from_dict(cls, values)


class Recommender(ABC):
    """Scores every item for a batch of users, given what is known about them (their History)."""

    family: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # Capabilities, declared by each family and read by everything above (never discovered with hasattr):
    #: trains by gradient descent (else fitted in closed form: no base, no strategy, nothing to distribute)
    trainable: ClassVar[bool] = False
    #: scores from the history given at prediction time (so it sees the validation item when predicting test)
    reads_history: ClassVar[bool] = False
    #: scores a user from their history alone, with no per-user weights (so a user it was never trained on
    #: can be scored from a few posted items; families with user tables fold such a user in instead)
    scores_from_history_alone: ClassVar[bool] = False
    #: reads item text: give it the items' texts (set_item_texts) before training or scoring
    needs_item_text: ClassVar[bool] = False
    #: grow() adds rows for new users and items and keeps the old ones unchanged
    supports_growth: ClassVar[bool] = False
    #: what a text base gives this family: "encoder" (it reads text through it), "item_init" (the text
    #: initialises its item embeddings) or None (no text base applies)
    text_base: ClassVar[str | None] = None
    #: what an image base gives this family, as text_base does for text: "encoder" or "item_init" (or None)
    image_base: ClassVar[str | None] = None
    #: the model option that makes its text encoder trainable, if it has one
    text_trainable_option: ClassVar[str | None] = None
    #: also reports classification metrics (AUC, log loss) on validation positives vs sampled negatives
    reports_classification: ClassVar[bool] = False
    #: trainer settings this family trains well with (overridable per run)
    default_train: ClassVar[dict[str, Any]] = {}

    @classmethod
    def memory_estimate(cls, config: ModelConfig, sizes: DataSizes) -> MemoryEstimate:
        """Peak memory of fitting and evaluating this family with `config` on data of `sizes`.

        The default covers what every family holds: the histories and one evaluation block, plus a
        float per user and item; families with larger state override it.
        """
        return MemoryEstimate({"history": sizes.history_bytes, "scoring": sizes.scoring_bytes,
                               "state": (sizes.n_users + sizes.n_items) * 8})

    @classmethod
    def check_memory(cls, config: ModelConfig, sizes: DataSizes) -> MemoryEstimate:
        """The estimate, after refusing (ResourceError, in words) when it exceeds what this machine has."""
        estimate = cls.memory_estimate(config, sizes)
        check_fits(cls.family, estimate)
        return estimate

    def __init__(self, n_users: int, n_items: int, config: ModelConfig | None = None) -> None:
        self.n_users = n_users
        self.n_items = n_items
        self.config = config or self.config_class()

    @abstractmethod
    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        """Scores [len(users), n_items]; higher is better. Known items are masked by the evaluator."""

    def score(self, users: np.ndarray, items: np.ndarray, history: History) -> torch.Tensor:
        """Scores of given (user, item) pairs."""
        full = self.full_scores(np.asarray(users), history)
        return full.gather(1, torch.as_tensor(np.asarray(items), device=full.device).view(-1, 1)).view(-1)

    def set_item_texts(self, texts: list[str]) -> None:
        """Give the model its items' text (families with needs_item_text override this)."""

    def set_item_images(self, paths: list[str | None], item_ids: list[str] | None = None) -> None:
        """Give the model its items' image files (None where an item has none); families reading images override this."""

    def item_embedding_matrix(self) -> torch.Tensor | None:
        """The model's item vectors [n_items, d] (what 'similar items' means to it), or None if it has none."""
        return None

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "n_users": self.n_users, "n_items": self.n_items, "config": self.config.as_dict()}
        (directory / "model.json").write_text(json.dumps(meta, indent=2))
        self.save_state(directory)

    def save_state(self, directory: Path) -> None:
        """Write the learned state; families with state override this."""

    def load_state(self, directory: Path) -> None:
        """Read what save_state wrote."""


class FittedRecommender(Recommender):
    """A model fitted in closed form (or by counting) on a History: Pop, ItemKNN, EASE.

    Item-based models score a user from a history row. By default that row is the one they were
    fitted on (as RecBole and the reference figures do); with `fold_in` they read the history they
    are given at prediction time instead (e.g. including the validation item when predicting test).
    """

    fitted: History | None = None
    scores_from_history_alone = True

    @abstractmethod
    def fit(self, history: History) -> "FittedRecommender":
        """Fit on the known interactions."""

    def fit_tuned(self, history: History, validate: Callable[["FittedRecommender"], float],
                  progress: Callable[[str], None] | None = None) -> "FittedRecommender":
        """Fit, choosing any hyper-parameter left open by `validate` (a validation score); default: just fit."""
        return self.fit(history)

    def notes(self) -> list[str]:
        """What a result must say about how this model was fitted (e.g. a pruned catalogue)."""
        return []

    def input_csr(self, history: History, users: np.ndarray) -> sp.csr_matrix:
        """The binary history rows the model scores `users` from (sparse)."""
        source = history
        if not getattr(self.config, "fold_in", False) and self.fitted is not None \
                and self.fitted.csr.shape == history.csr.shape:
            source = self.fitted
        return source.csr[users]

    def input_rows(self, history: History, users: np.ndarray) -> torch.Tensor:
        """The binary history rows the model scores `users` from, as a dense float tensor [B, n_items]."""
        return torch.from_numpy(self.input_csr(history, users).toarray())
