"""Two-tower retrieval: a user tower over recent history and an item tower over id, item text and/or image.

The item text goes through a transformers encoder (MiniLM by default): frozen with embeddings cached
on disk (fast), or trainable (the encoder runs inside the model on the items of each batch). Item images
go through a local vision encoder, frozen, their vectors cached per file and saved with the model, so an
item never seen in training is scored from its image. Trained with an in-batch softmax: the other
positives in a batch are each example's negatives.
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
from recsys_core.errors import ConfigError
from recsys_core.images import encode_images, image_dim
from recsys_core.models.base import ModelConfig
from recsys_core.models.memory import DataSizes, MemoryEstimate
from recsys_core.models.neural import (LayerGroup, NeuralRecommender, TrainData, encoder_groups, grow_embedding,
                                      history_batch, init_weights)
from recsys_core.models.sasrec import CausalBlock
from recsys_core.models.sequences import FlatSequences
from recsys_core.text import cached_text_embeddings, fresh_encoder, load_encoder, mean_pool

ITEM_REPRS = ["id", "text", "id+text", "image", "id+image", "text+image", "id+text+image"]


@dataclass
class TwoTowerConfig(ModelConfig):
    dim: int = field(default=64, metadata={"help": "output size of both towers", "min": 4})
    item_repr: str = field(default="id+text", metadata={"help": "item tower input: id embedding, item text, or both", "choices": ITEM_REPRS})
    text_encoder: str = field(default="minilm", metadata={"help": "text encoder: minilm or hf:NAME_OR_PATH (local only)"})
    image_encoder: str = field(default="", metadata={"help": "image encoder when item_repr includes image: hf:PATH of a local vision model (ViT, CLIP, ...)"})
    text_trainable: bool = field(default=False, metadata={"help": "fine-tune the text encoder (slow on CPU) instead of caching frozen embeddings"})
    text_max_length: int = field(default=48, metadata={"help": "tokens of item text read by the encoder", "min": 8})
    user_tower: str = field(default="mean", metadata={"help": "pool recent items ('mean') or read them in order ('sequence')", "choices": ["mean", "sequence"]})
    history: int = field(default=50, metadata={"help": "recent items the user tower reads", "min": 1})
    layers: int = field(default=1, metadata={"help": "transformer blocks in the 'sequence' user tower", "min": 1})
    dropout: float = field(default=0.1, metadata={"help": "dropout in both towers", "min": 0.0, "max": 0.9})
    temperature: float = field(default=0.05, metadata={"help": "softmax temperature on cosine similarities", "min": 0.001})
    init: str = field(default="xavier", metadata={"help": "weight init scheme", "choices": ["normal", "xavier"]})

    def __post_init__(self) -> None:
        check_choice(self.item_repr, ITEM_REPRS, "two_tower item_repr")
        check_choice(self.user_tower, ["mean", "sequence"], "two_tower user_tower")
        check_choice(self.init, ["normal", "xavier"], "two_tower init")
        if "image" in self.item_repr.split("+") and not self.image_encoder:
            raise ConfigError(f"two_tower item_repr {self.item_repr!r} reads item images: pick an image base "
                              "(hf:PATH of a local vision model) or set image_encoder", field="image_encoder")


class TwoTower(NeuralRecommender):
    family = "two_tower"
    config_class = TwoTowerConfig
    default_train = {"epochs": 30, "batch_size": 512, "lr": 2e-3, "patience": 4}
    lora_targets = ("query", "key", "value", "q_proj", "k_proj", "v_proj", "out_proj")
    needs_item_text = True
    reads_history = True
    scores_from_history_alone = True
    text_base = "encoder"
    image_base = "encoder"
    item_buffers = ("image_emb", "image_has")
    text_trainable_option = "text_trainable"
    sequence_option = "history"

    @classmethod
    def memory_estimate(cls, config: TwoTowerConfig, sizes: DataSizes) -> MemoryEstimate:
        estimate = super().memory_estimate(config, sizes)
        parts = config.item_repr.split("+")
        if "id" in parts:
            estimate.parts["item id table with optimiser state"] = (sizes.n_items + 1) * config.dim * 16
        if "image" in parts:  # the image vectors (ViT-base-sized); the encoder runs once per new image
            estimate.parts["item image vectors"] = (sizes.n_items + 1) * 768 * 4
        if "text" in parts:  # the encoded item texts, and the encoder itself (MiniLM-sized)
            estimate.parts["item text vectors"] = (sizes.n_items + 1) * 384 * 4 * 2
            estimate.parts["text encoder"] = 400 * 1024 * 1024
        return estimate

    @classmethod
    def pretrained_parts(cls, config: TwoTowerConfig) -> tuple[str, ...]:
        parts = config.item_repr.split("+")
        offers = {"text": "text_encoder", "image": "image_encoder", "id": "item_embeddings"}
        return tuple(sorted({offers[p] for p in parts}))

    def item_id_tables(self) -> tuple[str, ...]:
        return ("item_id",) if self.item_id is not None else ()

    def item_embedding_matrix(self) -> torch.Tensor | None:
        was = self.training
        self.eval()
        with torch.no_grad():
            out = self.all_item_vectors().detach().float().cpu()
        self.train(was)
        return out

    def __init__(self, n_users: int, n_items: int, config: TwoTowerConfig | None = None) -> None:
        super().__init__(n_users, n_items, config)
        c: TwoTowerConfig = self.config
        parts = c.item_repr.split("+")
        self.uses_text, self.uses_image = "text" in parts, "image" in parts
        self.item_id = nn.Embedding(n_items + 1, c.dim, padding_idx=0) if "id" in parts else None
        self.text_dim = 0
        self.encoder = None
        self.tokenizer = None
        if self.uses_text:
            enc, tok = (fresh_encoder if c.text_trainable else load_encoder)(c.text_encoder)
            self.text_dim = enc.config.hidden_size
            self.tokenizer = tok
            if c.text_trainable:
                self.encoder = enc  # a registered submodule: its weights train and are saved
            self.text_proj = nn.Sequential(nn.Linear(self.text_dim, c.dim * 2), nn.GELU(), nn.Linear(c.dim * 2, c.dim))
            self.register_buffer("text_emb", torch.zeros(n_items + 1, self.text_dim), persistent=False)
        if self.uses_image:  # frozen image vectors, saved with the model (row 0 = padding)
            dim = image_dim(c.image_encoder)
            self.image_proj = nn.Sequential(nn.Linear(dim, c.dim * 2), nn.GELU(), nn.Linear(c.dim * 2, c.dim))
            self.register_buffer("image_emb", torch.zeros(n_items + 1, dim))
            self.register_buffer("image_has", torch.zeros(n_items + 1))
        self.item_mlp = nn.Sequential(nn.LayerNorm(c.dim), nn.Dropout(c.dropout), nn.Linear(c.dim, c.dim))
        if c.user_tower == "sequence":
            self.pos_emb = nn.Embedding(c.history, c.dim)
            self.blocks = nn.ModuleList(CausalBlock(c.dim, 2 if c.dim % 2 == 0 else 1, c.dim * 4, c.dropout) for _ in range(c.layers))
        self.user_mlp = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, c.dim * 2), nn.GELU(), nn.Dropout(c.dropout),
                                      nn.Linear(c.dim * 2, c.dim))
        skip = [self.encoder] if self.encoder is not None else []
        for m in self.children():
            if all(m is not s for s in skip):
                init_weights(m, c.init)
        self.item_texts: list[str] | None = None

    @property
    def backbone(self) -> str:  # type: ignore[override]
        return "text_encoder" if self.uses_text else "image_encoder" if self.uses_image else "item_embeddings"

    def layer_groups(self) -> list[LayerGroup]:
        groups = []
        if self.encoder is not None:
            groups += encoder_groups(self.encoder, "encoder.")
        groups.append(LayerGroup("item inputs (id embeddings, text and image projections)", "embedding",
                                 ("item_id", "text_proj", "image_proj")))
        if self.config.user_tower == "sequence":
            groups += [LayerGroup("user tower positions", "embedding", ("pos_emb",)),
                       *(LayerGroup(f"user tower block {k}", "block", (f"blocks.{k}.",)) for k in range(len(self.blocks)))]
        groups.append(LayerGroup("tower tops (item and user MLPs)", "head", ("item_mlp", "user_mlp")))
        return groups

    # -- item tower ------------------------------------------------------------------
    def set_item_texts(self, texts: list[str]) -> None:
        """Give the model its items' text; frozen mode caches the encoder's embeddings (row 0 = padding)."""
        if len(texts) != self.n_items:
            raise ConfigError(f"two_tower: {len(texts)} item texts for {self.n_items} items")
        self.item_texts = list(texts)
        if self.uses_text and self.encoder is None:
            emb = cached_text_embeddings(self.config.text_encoder, self.item_texts, self.config.text_max_length)
            self.text_emb = torch.cat([torch.zeros(1, emb.shape[1]), emb]).to(self.text_proj[0].weight.device)

    def set_item_images(self, paths: list[str | None], item_ids: list[str] | None = None) -> None:
        """Encode the items' images (cached per file); items without one get a zero vector and lean on id or text."""
        if not self.uses_image:
            return
        if len(paths) != self.n_items:
            raise ConfigError(f"two_tower: {len(paths)} item images for {self.n_items} items")
        vectors, has = encode_images(self.config.image_encoder, paths, item_ids)
        device = self.image_emb.device
        self.image_emb = torch.cat([torch.zeros(1, vectors.shape[1]), vectors]).to(device)
        self.image_has = torch.cat([torch.zeros(1), has.float()]).to(device)

    def _text_features(self, items: torch.Tensor) -> torch.Tensor:
        """Text embeddings for item indices (+1 offset, 0 = padding)."""
        if self.encoder is None:
            return self.text_emb[items]
        flat = items.reshape(-1)
        uniq, inverse = torch.unique(flat, return_inverse=True)
        texts = ["" if int(i) == 0 else self.item_texts[int(i) - 1] for i in uniq.tolist()]
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.config.text_max_length,
                             return_tensors="pt").to(items.device)
        hidden = self.encoder(**tok).last_hidden_state
        emb = F.normalize(mean_pool(hidden, tok["attention_mask"]), dim=-1)
        return emb[inverse].reshape(*items.shape, -1)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Item tower output for item indices with +1 offset (0 = padding)."""
        parts = []
        if self.item_id is not None:
            parts.append(self.item_id(items))
        if self.uses_text:
            parts.append(self.text_proj(self._text_features(items)))
        if self.uses_image:
            parts.append(self.image_proj(self.image_emb[items]) * self.image_has[items].unsqueeze(-1))
        x = sum(parts[1:], parts[0])
        return x + self.item_mlp(x)

    def all_item_vectors(self, chunk: int = 2048) -> torch.Tensor:
        ids = torch.arange(1, self.n_items + 1, device=self.device)
        return torch.cat([self.item_vectors(ids[lo: lo + chunk]) for lo in range(0, len(ids), chunk)])

    # -- user tower ------------------------------------------------------------------
    def user_vectors_from(self, hist: torch.Tensor, hist_vecs: torch.Tensor) -> torch.Tensor:
        mask = (hist > 0).unsqueeze(-1).float()
        if self.config.user_tower == "sequence":
            x = hist_vecs + self.pos_emb(torch.arange(hist.shape[1], device=hist.device)).unsqueeze(0)
            l = hist.shape[1]
            pad = hist == 0
            attn = (torch.ones(l, l, dtype=torch.bool, device=hist.device).tril().unsqueeze(0) & ~pad.unsqueeze(1)) \
                | torch.eye(l, dtype=torch.bool, device=hist.device)
            for block in self.blocks:
                x = block(x * mask, attn.unsqueeze(1))
            pooled = x[:, -1]
        else:
            pooled = (hist_vecs * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return pooled + self.user_mlp(pooled)

    # -- training --------------------------------------------------------------------
    def prepare(self, data: TrainData) -> None:
        if self.uses_text and self.item_texts is None:
            if data.item_texts is None:
                raise ConfigError("two_tower with item text needs an item text table (e.g. movies.csv); "
                                  "or set item_repr to 'id'")
            self.set_item_texts(data.item_texts)
        if self.uses_image and not bool(self.image_has.any()):
            raise ConfigError("two_tower with item images needs an item table with an image column of local file "
                              "paths; or set item_repr without image", field="item_repr")
        self.flat = FlatSequences(data.history)
        has_prefix = self.flat.starts < torch.arange(len(self.flat))
        flags = data.flat_targets()
        if flags is not None:
            has_prefix &= flags
        self.train_positions = torch.nonzero(has_prefix).squeeze(1)

    def batches(self, data: TrainData, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        order = self.train_positions[torch.randperm(len(self.train_positions), generator=generator)]
        for lo in range(0, len(order), batch_size):
            pos = order[lo: lo + batch_size]
            yield {"hist": self.flat.prefix(pos, self.config.history), "target": self.flat.items[pos] + 1, "n": len(pos)}

    def loss(self, batch: dict) -> torch.Tensor:
        hist, target = batch["hist"], batch["target"]
        uniq, inverse = torch.unique(torch.cat([hist.reshape(-1), target]), return_inverse=True)
        vecs = self.item_vectors(uniq)  # each distinct item is encoded once per batch
        hist_vecs = vecs[inverse[: hist.numel()]].reshape(*hist.shape, -1)
        target_vecs = vecs[inverse[hist.numel():]]
        u = F.normalize(self.user_vectors_from(hist, hist_vecs), dim=-1)
        v = F.normalize(target_vecs, dim=-1)
        logits = (u @ v.T) / self.config.temperature
        # A batch may hold the same item twice: those copies are not negatives of each other.
        same = (target.unsqueeze(0) == target.unsqueeze(1)) & ~torch.eye(len(target), dtype=torch.bool, device=target.device)
        logits = logits.masked_fill(same, float("-inf"))
        return F.cross_entropy(logits.float(), torch.arange(len(target), device=target.device))

    # -- scoring ---------------------------------------------------------------------
    def user_logits(self, users: np.ndarray, history: History) -> torch.Tensor:
        items = self.all_item_vectors()
        table = torch.cat([torch.zeros(1, items.shape[1], device=items.device), items])
        hist = history_batch(history, users, self.config.history).to(self.device)
        u = F.normalize(self.user_vectors_from(hist, table[hist]), dim=-1)
        return u @ F.normalize(items, dim=-1).T / self.config.temperature

    def grow(self, n_users: int, n_items: int, item_init: torch.Tensor | None = None) -> None:
        if self.item_id is not None:
            self.item_id = grow_embedding(self.item_id, n_items + 1, item_init)
        if self.uses_text and self.encoder is None and n_items > self.n_items:
            extra = torch.zeros(n_items - self.n_items, self.text_dim, device=self.text_emb.device)
            self.text_emb = torch.cat([self.text_emb, extra])  # filled by set_item_texts with the new texts
        if self.uses_image and n_items > self.n_items:  # filled by set_item_images with the new images
            grow_rows = n_items - self.n_items
            self.image_emb = torch.cat([self.image_emb, self.image_emb.new_zeros(grow_rows, self.image_emb.shape[1])])
            self.image_has = torch.cat([self.image_has, self.image_has.new_zeros(grow_rows)])
        self.n_users, self.n_items = max(n_users, self.n_users), max(n_items, self.n_items)
