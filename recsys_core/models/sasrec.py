"""SASRec (Kang & McAuley 2018): a causal transformer over each user's item sequence.

Trained on all positions of each sequence at once (next-item prediction everywhere), with a full
softmax over the catalogue or a sampled softmax for large catalogues. Item embeddings are shared
between input and output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.config_fields import check_choice, check_range
from recsys_core.data.splits import History
from recsys_core.errors import ConfigError
from recsys_core.models.base import ModelConfig
from recsys_core.models.neural import LayerGroup, NeuralRecommender, TrainData, history_batch, init_weights, trim_padding


@dataclass
class SASRecConfig(ModelConfig):
    hidden: int = field(default=64, metadata={"help": "embedding and hidden size", "min": 8})
    layers: int = field(default=2, metadata={"help": "transformer blocks", "min": 1})
    heads: int = field(default=2, metadata={"help": "attention heads (must divide hidden)", "min": 1})
    inner: int = field(default=256, metadata={"help": "feed-forward inner size", "min": 8})
    dropout: float = field(default=0.3, metadata={"help": "dropout on embeddings, attention and feed-forward", "min": 0.0, "max": 0.9})
    max_len: int = field(default=200, metadata={"help": "longest item sequence the model reads", "min": 2})
    loss: str = field(default="auto", metadata={"help": "'ce' full softmax, 'sampled' softmax, or 'auto' (full up to 4096 items)", "choices": ["auto", "ce", "sampled"]})
    negatives: int = field(default=1024, metadata={"help": "shared negatives per batch for the sampled softmax", "min": 1})
    init: str = field(default="normal", metadata={"help": "weight init scheme", "choices": ["normal", "xavier"]})

    def __post_init__(self) -> None:
        check_choice(self.loss, ["auto", "ce", "sampled"], "sasrec loss")
        check_choice(self.init, ["normal", "xavier"], "sasrec init")
        check_range(self.dropout, "sasrec dropout", 0.0, 0.9)
        if self.hidden % self.heads:
            raise ConfigError(f"sasrec heads ({self.heads}) must divide hidden ({self.hidden})")


class CausalBlock(nn.Module):
    """Pre-norm transformer block; projections are separate Linear layers so LoRA can target them by name."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln_attn = nn.LayerNorm(hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)
        self.ln_ffn = nn.LayerNorm(hidden)
        self.ffn_in = nn.Linear(hidden, inner)
        self.ffn_out = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, l, d = x.shape
        h = self.ln_attn(x)
        q, k, v = (proj(h).view(b, l, self.heads, d // self.heads).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.dropout(self.out_proj(a.transpose(1, 2).reshape(b, l, d)))
        return x + self.dropout(self.ffn_out(self.dropout(F.gelu(self.ffn_in(self.ln_ffn(x))))))


class SASRec(NeuralRecommender):
    family = "sasrec"
    config_class = SASRecConfig
    item_tables = ("item_emb",)
    width_option = "hidden"
    sequence_option = "max_len"
    negatives_option = "negatives"
    item_offset = 1
    # SASRec often sits on a plateau for its first epochs before it learns order; min_epochs gets it past that
    default_train = {"epochs": 200, "batch_size": 32, "lr": 1e-3, "patience": 10, "min_epochs": 20}
    backbone = "sequence_encoder"
    reads_history = True
    scores_from_history_alone = True
    text_base = "item_init"
    image_base = "item_init"
    lora_targets = ("q_proj", "k_proj", "v_proj", "out_proj")

    def __init__(self, n_users: int, n_items: int, config: SASRecConfig | None = None) -> None:
        super().__init__(n_users, n_items, config)
        c: SASRecConfig = self.config
        self.item_emb = nn.Embedding(n_items + 1, c.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        self.emb_dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(CausalBlock(c.hidden, c.heads, c.inner, c.dropout) for _ in range(c.layers))
        self.final_ln = nn.LayerNorm(c.hidden)
        init_weights(self, c.init)

    def layer_groups(self) -> list[LayerGroup]:
        return [LayerGroup("positions", "embedding", ("pos_emb",)),
                *(LayerGroup(f"block {k}", "block", (f"blocks.{k}.",)) for k in range(len(self.blocks))),
                LayerGroup("item embeddings (input and output, tied) + final norm", "head", ("item_emb", "final_ln"))]

    # -- encoding ----------------------------------------------------------------
    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, H] for left-padded item sequences [B, L] (0 = padding)."""
        b, l = seq.shape
        pad = seq == 0
        x = self.item_emb(seq) * math.sqrt(self.config.hidden)
        # Positions count back from the end, so a batch trimmed of leading padding reads the same.
        positions = torch.arange(self.config.max_len - l, self.config.max_len, device=seq.device)
        x = x + self.pos_emb(positions).unsqueeze(0)
        x = self.emb_dropout(x) * (~pad).unsqueeze(-1)
        causal = torch.ones(l, l, dtype=torch.bool, device=seq.device).tril()
        # Queries may see earlier non-padding keys and always themselves (so padded rows stay finite).
        mask = (causal.unsqueeze(0) & ~pad.unsqueeze(1)) | torch.eye(l, dtype=torch.bool, device=seq.device)
        mask = mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask) * (~pad).unsqueeze(-1)
        return self.final_ln(x)

    def item_embedding_matrix(self) -> torch.Tensor:
        with torch.no_grad():
            return self.item_matrix().detach().float().cpu()

    def item_matrix(self) -> torch.Tensor:
        return self.item_emb.weight[1:]

    # -- training ----------------------------------------------------------------
    def prepare(self, data: TrainData) -> None:
        """Cut every user's sequence, from the end, into windows of max_len + 1 so every target is used once.

        With `data.train_rows`, only windows holding a training target are kept, and only those targets
        count in the loss (the rest of the window is context).
        """
        width = self.config.max_len + 1
        rows, masks = [], []
        flags_all = data.target_flags
        for u, seq in enumerate(data.history.sequences):
            if len(seq) < 2:
                continue
            flags = np.ones(len(seq), dtype=bool) if flags_all is None else flags_all[u]
            flags = flags.copy()
            flags[0] = False  # the first item has nothing before it
            targets = np.flatnonzero(flags)
            if not len(targets):
                continue
            s = seq + 1
            for end in range(int(targets[-1]) + 1, 1, -(width - 1)):
                lo = max(0, end - width)
                if not flags[lo + 1: end].any():
                    if not flags[:lo + 1].any():
                        break
                    continue
                row = np.zeros(width, dtype=np.int64)
                mask = np.zeros(width, dtype=bool)
                row[width - (end - lo):] = s[lo:end]
                mask[width - (end - lo):] = flags[lo:end]
                rows.append(row)
                masks.append(mask)
        self.train_seqs = torch.from_numpy(np.stack(rows)) if rows else torch.zeros((0, width), dtype=torch.long)
        self.train_masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, width), dtype=torch.bool)

    def batches(self, data: TrainData, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        order = torch.randperm(len(self.train_seqs), generator=generator)
        for lo in range(0, len(order), batch_size):
            pick = order[lo: lo + batch_size]
            seqs = trim_padding(self.train_seqs[pick])
            mask = self.train_masks[pick][:, -seqs.shape[1]:]
            yield {"input": seqs[:, :-1], "target": seqs[:, 1:], "mask": mask[:, 1:], "n": int(mask[:, 1:].sum())}

    def loss(self, batch: dict) -> torch.Tensor:
        inp, target = batch["input"], batch["target"]
        h = self.encode(inp)
        valid = (target > 0) & (inp > 0) & batch.get("mask", True)
        h, target = h[valid], target[valid] - 1
        items = self.item_matrix()
        if self.full_softmax:
            return F.cross_entropy((h @ items.T).float(), target)
        negatives = torch.randint(0, items.shape[0], (self.config.negatives,), device=h.device)
        pos = (h * items[target]).sum(-1, keepdim=True)
        neg = h @ items[negatives].T
        neg = neg.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, neg], dim=1).float()
        return F.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long, device=h.device))

    # -- scoring -----------------------------------------------------------------
    def user_vectors(self, users: np.ndarray, history: History) -> torch.Tensor:
        seq = trim_padding(history_batch(history, users, self.config.max_len)).to(self.device)
        return self.encode(seq)[:, -1]

    def user_logits(self, users: np.ndarray, history: History) -> torch.Tensor:
        return self.user_vectors(users, history) @ self.item_matrix().T
