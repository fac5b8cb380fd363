"""Flat per-user sequences and vectorised prefix windows, shared by models that read recent history."""
from __future__ import annotations

import numpy as np
import torch

from recsys_core.data.splits import History


class FlatSequences:
    """All training interactions ordered by (user, time) in one array, with each user's start offset."""

    def __init__(self, history: History) -> None:
        seqs = history.sequences
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        self.items = torch.from_numpy(np.concatenate(seqs) if len(seqs) else np.zeros(0, dtype=np.int64)).long()
        self.starts = torch.from_numpy(np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)).long()
        self.users = torch.from_numpy(np.repeat(np.arange(len(seqs)), lengths)).long()

    def __len__(self) -> int:
        return len(self.items)

    def prefix(self, positions: torch.Tensor, width: int, offset: int = 1) -> torch.Tensor:
        """Left-padded windows [B, width] of the items *before* each position (item + offset; 0 = padding)."""
        back = torch.arange(width, 0, -1)
        idx = positions.unsqueeze(1) - back.unsqueeze(0)
        valid = idx >= self.starts[positions].unsqueeze(1)
        return torch.where(valid, self.items[idx.clamp(min=0)] + offset, torch.zeros_like(idx))
