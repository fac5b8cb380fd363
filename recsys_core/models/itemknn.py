"""ItemKNN: cosine similarity between items' user vectors; a user's score is the sum over their history.

The similarity is built one block of target items at a time (X' X[:, block], densified only for that
block), keeping each target's `neighbours` most similar source items in a sparse matrix: the dense
items x items product is never held, so 60k items cost megabytes where the dense matrix took 14 GB.
Scores come from sparse history rows times the sparse similarity.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file

from recsys_core.data.splits import History
from recsys_core.models.base import FittedRecommender, ModelConfig
from recsys_core.models.memory import DataSizes, MemoryEstimate

#: target items per block: the block's dense co-occurrence column slab is n_items x BLOCK float32
BLOCK_BYTES = 256 * 1024 * 1024


@dataclass
class ItemKNNConfig(ModelConfig):
    neighbours: int = field(default=0, metadata={"help": "keep this many most similar items per item (0 = all)"})
    shrink: float = field(default=0.0, metadata={"help": "shrinkage added to the cosine denominator"})
    fold_in: bool = field(default=False, metadata={"help": "score from the history known at prediction time, not the fitted one"})


class ItemKNNRecommender(FittedRecommender):
    family = "itemknn"
    config_class = ItemKNNConfig

    @classmethod
    def memory_estimate(cls, config: ItemKNNConfig, sizes: DataSizes) -> MemoryEstimate:
        n = sizes.n_items
        block = _block_size(n)
        # every co-occurring pair can be a neighbour when all are kept; sum of squared user lengths bounds them
        pairs = min(n * n, sizes.co_occurrence_bound)
        kept = pairs if config.neighbours <= 0 else min(pairs, n * config.neighbours)
        # the block's sparse product (up to 3x the dense slab), its dense co-occurrences and similarities
        slab = 5 * n * block * 4
        # per kept pair while building: int64 row and column + float32 value in the block lists, their
        # concatenation, then the CSR (int32 index + float32 value); about 50 bytes in all
        similarity = kept * 50
        parts = {"history": sizes.history_bytes, "similarity block": slab, "kept neighbours": similarity,
                 "scoring": sizes.scoring_bytes}
        note = "" if config.neighbours > 0 else "all co-occurring items are kept (neighbours 0)"
        return MemoryEstimate(parts, note=note, option="neighbours")

    def fit(self, history: History, progress: Callable[[str], None] | None = None) -> "ItemKNNRecommender":
        self.check_memory(self.config, DataSizes.of(history.user_counts, self.n_items))
        self.fitted = history
        self.sim = item_similarity(history.csr, self.config.neighbours, self.config.shrink, progress)
        return self

    def fit_tuned(self, history: History, validate: Callable[["ItemKNNRecommender"], float],
                  progress: Callable[[str], None] | None = None) -> "ItemKNNRecommender":
        return self.fit(history, progress)

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        rows = self.input_csr(history, users)
        return torch.from_numpy(np.ascontiguousarray((rows @ self.sim).toarray(), dtype=np.float32))

    def save_state(self, directory: Path) -> None:
        sim = self.sim.tocsr()
        save_file({"indptr": torch.from_numpy(sim.indptr.astype(np.int64)),
                   "indices": torch.from_numpy(sim.indices.astype(np.int64)),
                   "data": torch.from_numpy(sim.data.astype(np.float32))}, str(directory / "weights.safetensors"))

    def load_state(self, directory: Path) -> None:
        state = load_file(str(directory / "weights.safetensors"))
        n = self.n_items
        if "sim" in state:  # runs saved before the sparse similarity held it dense
            self.sim = sp.csr_matrix(state["sim"].numpy())
            return
        self.sim = sp.csr_matrix((state["data"].numpy(), state["indices"].numpy(), state["indptr"].numpy()),
                                 shape=(n, n))


def _block_size(n_items: int) -> int:
    return int(max(1, min(n_items, BLOCK_BYTES // max(1, 4 * n_items))))


def item_similarity(x: sp.csr_matrix, neighbours: int, shrink: float,
                    progress: Callable[[str], None] | None = None) -> sp.csr_matrix:
    """Sparse [source item, target item] cosine similarity keeping each target's top `neighbours` sources."""
    n = x.shape[1]
    xc = x.tocsc().astype(np.float32)
    xt = xc.T.tocsr()
    norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel()).astype(np.float32)
    block = _block_size(n)
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        if progress and n > block:
            progress(f"item similarity: items {start:,}-{stop:,} of {n:,}")
        co = torch.from_numpy((xt @ xc[:, start:stop]).toarray())  # [n sources, block targets]
        sim = co / (torch.from_numpy(norms).unsqueeze(1) * torch.from_numpy(norms[start:stop]).unsqueeze(0)
                    + shrink + 1e-12)
        idx = torch.arange(stop - start)
        sim[start + idx, idx] = 0.0  # an item is not its own neighbour
        if 0 < neighbours < n:
            top = torch.topk(sim, neighbours, dim=0)  # keep, for each target item, its k most similar source items
            src, val = top.indices, top.values
            tgt = idx.unsqueeze(0).expand_as(src)
        else:
            src, tgt = torch.nonzero(sim, as_tuple=True)
            val = sim[src, tgt]
        keep = val != 0
        rows.append(src[keep].numpy())
        cols.append((tgt[keep] + start).numpy())
        vals.append(val[keep].numpy())
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n),
                         dtype=np.float32)
