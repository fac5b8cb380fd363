"""Item embeddings initialised from content: item text or item images through a pretrained encoder.

For families that learn an id table per item (mf, ncf, sasrec, lightgcn), a text or image base gives
each item's row a start that already places similar items near each other: the encoder's vectors,
centred and projected onto their top principal directions, scaled to the family's own init.
"""
from __future__ import annotations

import torch

from recsys_core.errors import ConfigError
from recsys_core.images import encode_images
from recsys_core.models.neural import NeuralRecommender
from recsys_core.text import cached_text_embeddings


def init_items_from_features(model: NeuralRecommender, features: torch.Tensor,
                             rows: torch.Tensor | None = None) -> None:
    """Write the top principal directions of `features` [n_items, d] into the model's item tables.

    `rows` (bool, per item) limits which items are written (items without an image keep their init).
    """
    chosen = rows if rows is not None else torch.ones(len(features), dtype=torch.bool)
    centred = features[chosen] - features[chosen].mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    for name in model.item_tables:
        table = getattr(model, name)
        dim = table.weight.shape[1]
        if dim == 1:  # biases stay as they are
            continue
        proj = centred @ v[: min(dim, v.shape[0])].T
        if proj.shape[1] < dim:
            proj = torch.cat([proj, torch.zeros(len(proj), dim - proj.shape[1])], 1)
        offset = table.num_embeddings - model.n_items
        real = table.weight.data[offset:]
        proj = proj * (real.std() / proj.std().clamp(min=1e-8))  # keep the family's init scale
        with torch.no_grad():
            idx = torch.nonzero(chosen).squeeze(1) + offset
            table.weight[idx] = proj.to(table.weight.dtype)


def init_items_from_text(model: NeuralRecommender, encoder: str, item_texts: list[str] | None) -> dict:
    """Item embeddings from the item texts through a text encoder."""
    if item_texts is None:
        raise ConfigError(f"base {encoder!r} initialises item embeddings from item text, and this data has none "
                          "(add an item table, e.g. movies.csv, or use base none)", field="base")
    init_items_from_features(model, cached_text_embeddings(encoder, item_texts))
    return {"items_from_text": model.n_items}


def init_items_from_images(model: NeuralRecommender, encoder: str, item_images: list[str | None] | None,
                           item_ids: list[str] | None = None) -> dict:
    """Item embeddings from the item images through an image encoder; items without an image keep their init."""
    if item_images is None or all(p is None for p in item_images):
        raise ConfigError(f"base {encoder!r} is an image encoder, and this data has no item images (add an image "
                          "column of local file paths to the item table, or pick a text base)", field="base")
    vectors, has = encode_images(encoder, item_images, item_ids)
    if int(has.sum()) < 2:
        raise ConfigError(f"base {encoder!r}: only {int(has.sum())} item has an image; at least 2 are needed",
                          field="base")
    init_items_from_features(model, vectors, has)
    return {"items_from_images": int(has.sum())}
