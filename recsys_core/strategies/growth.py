"""Initial rows for users and items a model has never seen: from item text, from neighbours, or the mean."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.data.splits import History
from recsys_core.errors import ConfigError
from recsys_core.models.neural import NeuralRecommender
from recsys_core.text import cached_text_embeddings

INITS = ["neighbours", "text", "mean"]


def init_new_rows(model: NeuralRecommender, how: str, new_items: np.ndarray | None, new_users: np.ndarray | None,
                  history: History, item_texts: list[str] | None = None, encoder: str = "minilm") -> dict:
    """Fill the rows of new items (and users) in the model's id tables; old rows are never touched.

    'neighbours': a new item gets the mean of the items its users interacted with (weighted by co-occurrence),
    a new user the mean of the old users who share their items; 'text': a ridge map from item text embeddings
    to the learned item vectors, applied to the new items' text; 'mean': the mean of the old rows (as grow()).
    """
    if how == "mean":
        return {"init": "mean"}
    counts = {"init": how, "items": 0, "users": 0}
    csr = history.csr
    tables = _item_tables(model)
    if new_items is not None and new_items.any():
        new_idx = np.flatnonzero(new_items)
        old_idx = np.flatnonzero(~new_items)
        if how == "neighbours":
            weights = _cooccurrence(csr, new_idx, old_idx)
        elif how == "text":
            weights = None
            if item_texts is None:
                raise ConfigError("incremental init 'text' needs item text (an item table); use 'neighbours' or 'mean'")
        else:
            raise ConfigError(f"unknown init {how!r}; choose from {', '.join(INITS)}")
        for name, offset in tables:
            table = getattr(model, name).weight
            with torch.no_grad():
                old = table[offset:][torch.from_numpy(old_idx)]
                if how == "text":
                    rows = _text_map(item_texts, old_idx, new_idx, old.float().cpu(), encoder)
                else:
                    rows = _weighted_rows(weights, old.float().cpu())
                table[offset + torch.from_numpy(new_idx)] = rows.to(table.device, table.dtype)
        counts["items"] = len(new_idx)
    if new_users is not None and new_users.any() and model.user_tables:
        new_u, old_u = np.flatnonzero(new_users), np.flatnonzero(~new_users)
        weights = _cooccurrence(csr.T.tocsr(), new_u, old_u)
        for name in model.user_tables:
            table = getattr(model, name).weight
            with torch.no_grad():
                rows = _weighted_rows(weights, table[torch.from_numpy(old_u)].float().cpu())
                table[torch.from_numpy(new_u)] = rows.to(table.device, table.dtype)
        counts["users"] = len(new_u)
    return counts


def _item_tables(model: NeuralRecommender) -> list[tuple[str, int]]:
    """(attribute, leading padding rows) of each item-indexed table."""
    out = []
    for name in model.item_id_tables():
        table = getattr(model, name)
        out.append((name, table.num_embeddings - model.n_items))
    return out


def _cooccurrence(csr: sp.csr_matrix, new_cols: np.ndarray, old_cols: np.ndarray) -> sp.csr_matrix:
    """Rows: new columns; entries: co-occurrence counts with old columns (through shared rows)."""
    x = csr.tocsc()
    return (x[:, new_cols].T @ x[:, old_cols]).tocsr()


def _weighted_rows(weights: sp.csr_matrix, old_rows: torch.Tensor) -> torch.Tensor:
    """Weighted means of old rows; a new id without neighbours gets the plain mean."""
    w = torch.from_numpy(weights.toarray()).float()
    total = w.sum(1, keepdim=True)
    mean = old_rows.mean(0, keepdim=True)
    out = (w @ old_rows) / total.clamp(min=1e-9)
    return torch.where(total > 0, out, mean.expand_as(out))


def _text_map(texts: list[str], old_idx: np.ndarray, new_idx: np.ndarray, old_rows: torch.Tensor,
              encoder: str, l2: float = 1.0) -> torch.Tensor:
    """Ridge regression from text embeddings to learned rows, fitted on old items, applied to new ones."""
    emb = cached_text_embeddings(encoder, list(texts))
    x_old, x_new = emb[torch.from_numpy(old_idx)], emb[torch.from_numpy(new_idx)]
    x_mean, y_mean = x_old.mean(0, keepdim=True), old_rows.mean(0, keepdim=True)
    xc, yc = x_old - x_mean, old_rows - y_mean
    w = torch.linalg.solve(xc.T @ xc + l2 * torch.eye(xc.shape[1]), xc.T @ yc)
    return (x_new - x_mean) @ w + y_mean
