"""Base of the trainable (PyTorch) model families: training data view, batching, growth, safetensors state."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recsys_core.data.splits import History
from recsys_core.models.base import ModelConfig, Recommender
from recsys_core.models.memory import DataSizes, MemoryEstimate


@dataclass
class TrainData:
    """What a neural model trains on: the training history (pairs in time order, sequences) and item text."""

    history: History
    item_texts: list[str] | None = None
    extra: dict = field(default_factory=dict)
    #: `row` ids of the interactions that are training targets (None = all). The others are context only:
    #: incremental updates train on new interactions while reading the old ones as history.
    train_rows: np.ndarray | None = None

    @property
    def n_users(self) -> int:
        return self.history.n_users

    @property
    def n_items(self) -> int:
        return self.history.n_items

    @cached_property
    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.history.frame
        if self.train_rows is not None:
            f = f[f["row"].isin(self.train_rows)]
        return torch.tensor(f["u"].to_numpy(), dtype=torch.long), torch.tensor(f["i"].to_numpy(), dtype=torch.long)

    @cached_property
    def target_flags(self) -> list[np.ndarray] | None:
        """Per user, which positions of `history.sequences` are training targets (None = all)."""
        if self.train_rows is None:
            return None
        return [np.isin(rows, self.train_rows) for rows in self.history.sequence_rows]

    def flat_targets(self) -> torch.Tensor | None:
        """`target_flags` concatenated in FlatSequences order."""
        flags = self.target_flags
        if flags is None:
            return None
        return torch.from_numpy(np.concatenate(flags) if flags else np.zeros(0, dtype=bool))


@dataclass
class LayerGroup:
    """A named group of parameters (by name prefix) with its role for fine-tuning strategies.

    Roles: 'embedding' and 'block' make up the backbone (blocks ordered bottom to top); 'head' is what
    faces the new data (e.g. user factors, tower tops, the output layer) and trains under 'frozen'.
    """

    name: str
    role: str
    prefixes: tuple[str, ...]


def encoder_groups(encoder: torch.nn.Module, prefix: str) -> list:
    """Layer groups of a BERT-like encoder: embeddings, then each transformer layer, bottom to top."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None:
        return [LayerGroup("text encoder", "block", (prefix,))]
    return [LayerGroup("text encoder embeddings", "embedding", (f"{prefix}embeddings.",)),
            *(LayerGroup(f"text encoder layer {k}", "block", (f"{prefix}encoder.layer.{k}.",)) for k in range(len(layers))),
            LayerGroup("text encoder pooler", "embedding", (f"{prefix}pooler.",))]


def init_weights(module: nn.Module, scheme: str = "xavier", std: float = 0.02) -> None:
    """Initialise linear and embedding weights ('xavier' or 'normal'); biases to zero; padding rows to zero."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            if scheme == "xavier":
                nn.init.xavier_normal_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def grow_embedding(table: nn.Embedding, new_rows: int, init: torch.Tensor | None = None) -> nn.Embedding:
    """A larger copy of `table`: old rows bit-identical, new rows from `init` or the mean of the old rows."""
    if new_rows <= table.num_embeddings:
        return table
    old = table.weight.data
    extra = new_rows - table.num_embeddings
    if init is None:
        real = old[1:] if table.padding_idx == 0 else old
        init = real.mean(0, keepdim=True).expand(extra, -1) + 0.01 * real.std() * torch.randn(extra, old.shape[1], device=old.device)
    grown = nn.Embedding(new_rows, old.shape[1], padding_idx=table.padding_idx).to(old.device, old.dtype)
    with torch.no_grad():
        grown.weight[: table.num_embeddings] = old
        grown.weight[table.num_embeddings:] = init.to(old.dtype)
    grown.weight.requires_grad_(table.weight.requires_grad)
    return grown


FULL_SOFTMAX_ITEMS = 4096


#: work space of one training step (sampled logits, gathered rows) at the default batch sizes, held high
TRAINING_BATCH_BYTES = 64 * 1024 * 1024


class NeuralRecommender(nn.Module, Recommender):
    """A Recommender trained by gradient descent on `loss(batch)`."""

    trainable = True
    supports_growth = True

    #: names of nn.Embedding attributes indexed by user / by item (+ padding offset) for grow()
    user_tables: tuple[str, ...] = ()
    item_tables: tuple[str, ...] = ()
    #: buffers with one row per item (after the padding rows) that a run base's rows map onto like an id table
    item_buffers: tuple[str, ...] = ()
    item_offset: int = 0  # 1 when item index 0 is padding
    #: what a pretrained copy of this family gives a new model ('item_embeddings', 'sequence_encoder', ...)
    backbone: str = "item_embeddings"
    #: Linear layers (last name component) inside blocks that LoRA adapts by default
    lora_targets: tuple[str, ...] = ()
    #: the item table whose rows are the model's item vectors (item_embedding_matrix), if any
    item_vector_table: str | None = None
    #: its loss reads embedding rows only by lookup, so tables can take sparse gradients and sparse
    #: optimizer steps (asynchronous workers then write only the rows a batch touched)
    sparse_updates: bool = False
    #: the config field that sets the embedding tables' width (what their memory scales with)
    width_option: str | None = "dim"
    #: the config field that caps how many recent items per user are read (sequence memory), if any
    sequence_option: str | None = None
    #: the config field giving the sampled negatives scored at every sequence position, if any
    negatives_option: str | None = None

    @classmethod
    def memory_estimate(cls, config: ModelConfig, sizes: DataSizes) -> MemoryEstimate:
        """Embedding tables with their gradients and Adam's two moments, padded sequences, one batch, scoring."""
        width = int(getattr(config, cls.width_option)) if cls.width_option else 64
        rows = len(cls.user_tables) * sizes.n_users + len(cls.item_tables) * (sizes.n_items + cls.item_offset)
        parts = {"parameters, gradients and optimiser state": rows * width * 4 * 4,
                 "history": sizes.history_bytes, "scoring": sizes.scoring_bytes,
                 "training batch": TRAINING_BATCH_BYTES}
        if cls.sequence_option:
            length = min(int(getattr(config, cls.sequence_option)), max(1, sizes.max_user_length))
            parts["padded sequences"] = sizes.n_users * length * 8 * 2
            batch = sizes.batch_size or int(cls.default_train.get("batch_size", 256))
            negatives = int(getattr(config, cls.negatives_option)) if cls.negatives_option else 0
            # kept for backward: each position's activations (a few dozen widths deep) and, with a sampled
            # softmax over every position, its logits, their softmax and gradients (measured: bench/scale.py)
            parts["training batch"] += batch * length * (width * 4 * 32 + (negatives + 1) * 4 * 16)
        return MemoryEstimate(parts, option=cls.width_option)

    @classmethod
    def pretrained_parts(cls, config: ModelConfig) -> tuple[str, ...]:
        """What a trained model of this family (with `config`) offers as a base to a new model."""
        offers = {cls.backbone}
        if cls.item_tables:
            offers.add("item_embeddings")
        if cls.user_tables:
            offers.add("user_embeddings")
        return tuple(sorted(offers))

    def item_id_tables(self) -> tuple[str, ...]:
        """Names of this model's embedding tables indexed by item (for weight transfer and growth)."""
        return self.item_tables

    def item_embedding_matrix(self) -> torch.Tensor | None:
        if self.item_vector_table is None:
            return None
        with torch.no_grad():
            w = getattr(self, self.item_vector_table).weight.detach().float().cpu()
        return w[w.shape[0] - self.n_items:]

    def layer_groups(self) -> list[LayerGroup]:
        """Parameter groups bottom to top; every parameter falls in one (see LayerGroup)."""
        return [LayerGroup("all", "head", ("",))]

    def __init__(self, n_users: int, n_items: int, config: ModelConfig | None = None) -> None:
        nn.Module.__init__(self)
        Recommender.__init__(self, n_users, n_items, config)

    # -- training --------------------------------------------------------------
    def prepare(self, data: TrainData) -> None:
        """Build tensors the batches need (sequences, text features). Called once before training."""

    def batches(self, data: TrainData, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        """One epoch of batches; default: shuffled (user, item) pairs."""
        users, items = data.pairs
        order = torch.randperm(len(users), generator=generator)
        for lo in range(0, len(order), batch_size):
            idx = order[lo: lo + batch_size]
            yield {"users": users[idx], "items": items[idx]}

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def user_logits(self, users: np.ndarray, history: History) -> torch.Tensor:
        """Scores [B, n_items] with gradients (full_scores is this under no_grad in eval mode)."""
        raise NotImplementedError(f"{self.family} does not score users differentiably")

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        was = self.training
        self.eval()
        with torch.no_grad():
            scores = self.user_logits(users, history).float()
        self.train(was)
        return scores

    @property
    def full_softmax(self) -> bool:
        """Whether the loss is a softmax over the whole catalogue ('auto': up to FULL_SOFTMAX_ITEMS items)."""
        loss = getattr(self.config, "loss", "ce")
        return loss == "ce" or (loss == "auto" and self.n_items <= FULL_SOFTMAX_ITEMS)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def weights_changed(self) -> None:
        """Another process wrote this model's shared weights (async workers): drop what was derived from them.

        In-process writes bump each tensor's version counter; writes through shared memory do not.
        """

    # -- growth ------------------------------------------------------------------
    def grow(self, n_users: int, n_items: int, item_init: torch.Tensor | None = None) -> None:
        """Make room for new users and items; existing rows, hence old users' scores, are unchanged."""
        for name in self.user_tables:
            setattr(self, name, grow_embedding(getattr(self, name), n_users))
        for name in self.item_tables:
            setattr(self, name, grow_embedding(getattr(self, name), n_items + self.item_offset, item_init))
        self.n_users, self.n_items = max(n_users, self.n_users), max(n_items, self.n_items)

    # -- persistence -------------------------------------------------------------
    def save_state(self, directory: Path) -> None:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "weights.safetensors"))

    def load_state(self, directory: Path) -> None:
        state = load_file(str(directory / "weights.safetensors"))
        self.load_state_dict(state)

    def count_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, total


def history_batch(history: History, users: np.ndarray, max_len: int, offset: int = 1) -> torch.Tensor:
    """Left-padded [B, max_len] item sequences (index + offset; 0 = padding) of the users' latest items."""
    out = np.zeros((len(users), max_len), dtype=np.int64)
    seqs = history.sequences
    for row, u in enumerate(users):
        s = seqs[int(u)][-max_len:]
        if len(s):
            out[row, max_len - len(s):] = s + offset
    return torch.from_numpy(out)


def trim_padding(seq: torch.Tensor) -> torch.Tensor:
    """Drop leading columns that are padding in every row of a left-padded batch (keeps at least 2)."""
    used = (seq != 0).any(0)
    if not used.any():
        return seq[:, -2:]
    first = int(used.nonzero()[0])
    return seq[:, min(first, seq.shape[1] - 2):]
