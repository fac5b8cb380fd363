"""EASE (Steck 2019): closed-form item-item weights B = I - P / diag(P), P = (X'X + lambda I)^-1.

Its cost is a dense items x items inverse per L2 value: memory grows with the square of the
catalogue and time with its cube. The estimate below is checked before anything is allocated;
`max_items` fits it on the most popular items only (the others are never recommended, and the
report says so), and a fit that would take longer than `max_seconds` is refused in one line.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from recsys_core.data.splits import History
from recsys_core.errors import ResourceError
from recsys_core.models.base import FittedRecommender, ModelConfig
from recsys_core.models.memory import USABLE_SHARE, DataSizes, MemoryEstimate, available_bytes, format_bytes

LAMBDA_GRID = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
#: seconds per n^3 of one float32 Cholesky inverse with 2 threads (measured 0.011-0.019e-9 on 2 idle cores;
#: the estimate takes the slow end plus room for a loaded machine), scaled by the threads torch has
INVERSE_SECONDS_PER_N3_2_THREADS = 0.03e-9
#: seconds per (user, item) score of a full-ranking validation pass (bench/scale.py: 64 s for 150k x 60k)
RANKING_SECONDS_PER_SCORE = 8e-9
#: below this many items a pruned EASE is not worth advising
MIN_ADVISED_ITEMS = 500


def fits_needed(config: "EASEConfig") -> int:
    """How many inverses a fit makes: one with a fixed L2, one per grid value when it is chosen."""
    return 1 if config.l2 else max(1, len(config.grid))


def inverse_seconds_per_n3() -> float:
    return INVERSE_SECONDS_PER_N3_2_THREADS * 2 / max(1, min(torch.get_num_threads(), 32))


@dataclass
class EASEConfig(ModelConfig):
    l2: float = field(default=0.0, metadata={"help": "L2 weight lambda; 0 chooses it on validation NDCG@10"})
    grid: tuple = field(default=LAMBDA_GRID, metadata={"help": "lambdas tried when l2 is 0"})
    fold_in: bool = field(default=False, metadata={"help": "score from the history known at prediction time, not the fitted one"})
    max_items: int = field(default=0, metadata={
        "help": "fit on the N most popular training items only; the rest are never recommended (0 = all)", "min": 0})
    max_seconds: float = field(default=1800.0, metadata={
        "help": "refuse, before starting, a fit estimated to take longer than this (0 = no limit)", "min": 0.0})


class EASERecommender(FittedRecommender):
    family = "ease"
    config_class = EASEConfig
    kept: np.ndarray | None = None  # item indices the weights cover, when pruned to max_items

    @classmethod
    def catalogue(cls, config: EASEConfig, n_items: int) -> int:
        return min(n_items, config.max_items) if config.max_items > 0 else n_items

    @classmethod
    def memory_estimate(cls, config: EASEConfig, sizes: DataSizes) -> MemoryEstimate:
        n = cls.catalogue(config, sizes.n_items)
        fits = fits_needed(config)
        dense = n * n * 4
        # the Gram matrix, its regularised copy (which becomes the Cholesky factor), the inverse (which becomes
        # the weights, in place), and the best weights so far while tuning
        parts = {"history": sizes.history_bytes, "Gram matrix": dense, "Cholesky and inverse": 2 * dense,
                 "best weights": dense if fits > 1 else 0, "scoring": sizes.scoring_bytes}
        # each grid value also ranks the catalogue for every validation user
        ranking = RANKING_SECONDS_PER_SCORE * sizes.n_users * sizes.n_items
        seconds = fits * (inverse_seconds_per_n3() * float(n) ** 3 + ranking)
        note = f"fitted on the {n:,} most popular of {sizes.n_items:,} items" if n < sizes.n_items else ""
        return MemoryEstimate(parts, note=note, option="max_items", seconds=seconds)

    @classmethod
    def largest_fitting(cls, config: EASEConfig, sizes: DataSizes, budget: int) -> int:
        """The largest catalogue whose fit stays within `budget` bytes and max_seconds."""
        dense_budget = max(0, budget - sizes.history_bytes - sizes.scoring_bytes)
        dense_matrices = 4 if fits_needed(config) > 1 else 3  # the best weights are kept while tuning
        by_memory = int((dense_budget / (dense_matrices * 4)) ** 0.5)
        if not config.max_seconds:
            return by_memory
        fits = fits_needed(config)
        per_fit = config.max_seconds / fits - RANKING_SECONDS_PER_SCORE * sizes.n_users * sizes.n_items
        return min(by_memory, int((max(0.0, per_fit) / inverse_seconds_per_n3()) ** (1 / 3)))

    @classmethod
    def check_memory(cls, config: EASEConfig, sizes: DataSizes) -> MemoryEstimate:
        """Refuse in one line, before allocating, a fit over this machine's memory or over max_seconds."""
        estimate = cls.memory_estimate(config, sizes)
        budget = int(available_bytes() * USABLE_SHARE)
        n = cls.catalogue(config, sizes.n_items)
        fits = fits_needed(config)
        if estimate.total > budget:
            why = f"would need {estimate.describe()}, but this machine can give about {format_bytes(budget)}"
        elif config.max_seconds and estimate.seconds and estimate.seconds > config.max_seconds:
            why = (f"would take about {estimate.seconds / 60:,.0f} min ({fits} inverse(s) of a {n:,} x {n:,} "
                   f"matrix), over max_seconds {config.max_seconds:g}")
        else:
            return estimate
        raise ResourceError(f"ease on {n:,} items {why}; {cls._advice(config, sizes, budget)}, "
                            "or use itemknn with neighbours", field="max_items")

    @classmethod
    def _advice(cls, config: EASEConfig, sizes: DataSizes, budget: int) -> str:
        """What would fit: a smaller catalogue, and one fit instead of one per grid value if that is needed too."""
        fits = fits_needed(config)
        if cls.largest_fitting(replace(config, max_seconds=0.0), sizes, budget) < MIN_ADVISED_ITEMS:
            return "this machine has not the memory for EASE on this data even on a few hundred items"
        ok = cls.largest_fitting(config, sizes, budget)
        if ok >= MIN_ADVISED_ITEMS:
            return f"set max_items (about {ok:,} fit)" + (", or fix l2 to fit once instead of once per grid value" if fits > 1 else "")
        once = cls.largest_fitting(replace(config, l2=config.l2 or 500.0), sizes, budget)
        if fits > 1 and once >= MIN_ADVISED_ITEMS:
            return (f"the {fits} validation rankings of the L2 grid alone take too long here: fix l2 (one fit) "
                    f"and set max_items (about {once:,} fit)")
        return "raise max_seconds or use fewer users (--min-user-interactions)"

    def fit(self, history: History) -> "EASERecommender":
        self.check_memory(self.config, DataSizes.of(history.user_counts, self.n_items))
        self.fitted = history
        self.l2 = self.config.l2 or 100.0
        self.kept = self._kept_items(history)
        self.weights = ease_weights(gram_matrix(history, self.kept), self.l2)
        return self

    def fit_tuned(self, history: History, validate: Callable[["EASERecommender"], float],
                  progress: Callable[[str], None] | None = None) -> "EASERecommender":
        """Fit with the configured lambda, or try the grid and keep the best on `validate` (e.g. NDCG@10)."""
        if self.config.l2 or not self.config.grid:
            return self.fit(history)
        self.check_memory(self.config, DataSizes.of(history.user_counts, self.n_items))
        self.fitted = history
        self.kept = self._kept_items(history)
        if progress and self.kept is not None:
            progress(f"EASE on the {len(self.kept):,} most popular of {self.n_items:,} items (max_items)")
        gram = gram_matrix(history, self.kept)
        best_score, best = -1.0, None
        self.tuning = []
        for lam in self.config.grid:
            if progress:
                progress(f"EASE lambda {lam:g}: inverting {gram.shape[0]:,} x {gram.shape[0]:,}")
            self.weights = None  # the previous grid value's weights go before the next inverse is made
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

    def _kept_items(self, history: History) -> np.ndarray | None:
        n = self.catalogue(self.config, self.n_items)
        if n >= self.n_items:
            return None
        return np.sort(np.argsort(-history.item_counts, kind="stable")[:n])

    def notes(self) -> list[str]:
        if self.kept is None:
            return []
        return [f"EASE was fitted on the {len(self.kept):,} most popular of {self.n_items:,} items (max_items); "
                "the other items are never recommended and rank last"]

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        rows = self.input_csr(history, users)
        if self.kept is None:
            return sparse_times_dense(rows, self.weights)
        part = sparse_times_dense(rows[:, self.kept], self.weights)
        scores = torch.full((len(users), self.n_items), float("-inf"))
        scores[:, torch.from_numpy(self.kept)] = part  # items outside the fitted catalogue are never recommended
        return scores

    def save_state(self, directory: Path) -> None:
        state = {"weights": self.weights.contiguous()}
        if self.kept is not None:
            state["kept"] = torch.from_numpy(self.kept.astype(np.int64))
        save_file(state, str(directory / "weights.safetensors"))

    def load_state(self, directory: Path) -> None:
        state = load_file(str(directory / "weights.safetensors"))
        self.weights = state["weights"]
        self.kept = state["kept"].numpy() if "kept" in state else None


def sparse_times_dense(rows: sp.csr_matrix, dense: torch.Tensor) -> torch.Tensor:
    """Binary history rows times a dense item x item matrix: cost nnz x n, not users x n x n."""
    rows = rows.tocsr().astype(np.float32)
    with warnings.catch_warnings():  # torch calls its CSR support beta; the product used here is long stable
        warnings.simplefilter("ignore", UserWarning)
        sparse = torch.sparse_csr_tensor(torch.from_numpy(rows.indptr.astype(np.int64)),
                                         torch.from_numpy(rows.indices.astype(np.int64)),
                                         torch.from_numpy(rows.data), size=rows.shape, check_invariants=False)
        return (sparse @ dense).contiguous()


def gram_matrix(history: History, kept: np.ndarray | None = None) -> torch.Tensor:
    x = history.csr if kept is None else history.csr[:, kept]
    return torch.from_numpy((x.T @ x).toarray().astype(np.float32, copy=False))


def ease_weights(gram: torch.Tensor, lam: float) -> torch.Tensor:
    """B from the Gram matrix X'X; the diagonal is zero by construction. float32 Cholesky is ample for lambda >= 1."""
    g = gram.clone()
    g.diagonal().add_(lam)
    factor = torch.linalg.cholesky(g)
    del g
    p = torch.cholesky_inverse(factor)
    del factor
    p.div_(torch.diagonal(p).clone().unsqueeze(0)).neg_()  # B = -P / diag(P), in place: no third dense matrix
    p.fill_diagonal_(0.0)
    return p
