"""text_ctr: a pretrained BERT-style encoder with a classification head over (user history text, item text).

Trained with binary cross-entropy on positives (the next item a user took) and sampled negatives; at
prediction time it re-ranks the top candidates of a retriever (cosine ItemKNN fitted on the history
it is given), so the full ranking keeps every item: re-ranked candidates first, the rest in retriever
order. Besides ranking metrics it reports accuracy, precision, recall, F1, AUC and log loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.data.splits import History, Split
from recsys_core.errors import ConfigError
from recsys_core.models.base import ModelConfig
from recsys_core.models.itemknn import ItemKNNRecommender
from recsys_core.models.neural import LayerGroup, NeuralRecommender, TrainData, encoder_groups
from recsys_core.models.sequences import FlatSequences
from recsys_core.text import fresh_encoder


@dataclass
class TextCTRConfig(ModelConfig):
    text_encoder: str = field(default="minilm", metadata={"help": "encoder: minilm or hf:NAME_OR_PATH (local only)"})
    max_length: int = field(default=96, metadata={"help": "tokens per (history, item) pair", "min": 16})
    history_items: int = field(default=5, metadata={"help": "latest history items whose text describes the user", "min": 1})
    candidates: int = field(default=20, metadata={"help": "retriever candidates re-ranked per user", "min": 1})
    negatives: int = field(default=1, metadata={"help": "sampled negatives per positive", "min": 1})
    samples_per_epoch: int = field(default=2000, metadata={"help": "positives drawn per epoch (each with its negatives)", "min": 1})
    dropout: float = field(default=0.1, metadata={"help": "dropout before the head", "min": 0.0, "max": 0.9})


class TextCTR(NeuralRecommender):
    family = "text_ctr"
    config_class = TextCTRConfig
    default_train = {"epochs": 2, "batch_size": 32, "lr": 3e-5, "patience": 1, "optimizer": "adamw", "log_every": 5}
    needs_item_text = True
    reads_history = True
    reports_classification = True
    text_base = "encoder"
    backbone = "text_encoder"
    lora_targets = ("query", "key", "value")
    width_option = None  # a fixed pretrained encoder; its size does not follow a config field

    def layer_groups(self) -> list:
        return encoder_groups(self.encoder, "encoder.") + [LayerGroup("classifier head", "head", ("head",))]

    def __init__(self, n_users: int, n_items: int, config: TextCTRConfig | None = None) -> None:
        super().__init__(n_users, n_items, config)
        self.encoder, self.tokenizer = fresh_encoder(self.config.text_encoder)
        hidden = self.encoder.config.hidden_size
        self.head = nn.Sequential(nn.Dropout(self.config.dropout), nn.Linear(hidden, 1))
        nn.init.normal_(self.head[1].weight, std=0.02)
        nn.init.zeros_(self.head[1].bias)
        self.item_texts: list[str] | None = None
        self._retriever: tuple[int, ItemKNNRecommender] | None = None

    def set_item_texts(self, texts: list[str]) -> None:
        if len(texts) != self.n_items:
            raise ConfigError(f"text_ctr: {len(texts)} item texts for {self.n_items} items")
        self.item_texts = list(texts)

    # -- the classifier ----------------------------------------------------------------
    def user_text(self, items: list[int]) -> str:
        titles = [self.item_texts[i].split(". ")[0] for i in items[-self.config.history_items:]]
        return "recently liked: " + "; ".join(titles) if titles else "a new user"

    def logits_for(self, user_texts: list[str], item_idx: list[int]) -> torch.Tensor:
        tok = self.tokenizer(user_texts, [self.item_texts[i] for i in item_idx], padding=True, truncation=True,
                             max_length=self.config.max_length, return_tensors="pt").to(self.device)
        hidden = self.encoder(**tok).last_hidden_state[:, 0]
        return self.head(hidden).squeeze(-1)

    # -- training ----------------------------------------------------------------------
    def prepare(self, data: TrainData) -> None:
        if self.item_texts is None:
            if data.item_texts is None:
                raise ConfigError("text_ctr needs item text (e.g. movies.csv beside ratings.csv, or --items FILE)")
            self.set_item_texts(data.item_texts)
        self.flat = FlatSequences(data.history)
        has_prefix = self.flat.starts < torch.arange(len(self.flat))
        flags = data.flat_targets()
        if flags is not None:
            has_prefix &= flags
        self.positions = torch.nonzero(has_prefix).squeeze(1)

    def batches(self, data: TrainData, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        c = self.config
        pick = torch.randperm(len(self.positions), generator=generator)[: c.samples_per_epoch]
        pos = self.positions[pick]
        per_batch = max(1, batch_size // (1 + c.negatives))
        for lo in range(0, len(pos), per_batch):
            p = pos[lo: lo + per_batch]
            hist = self.flat.prefix(p, c.history_items, offset=1)
            texts, items, labels = [], [], []
            negs = torch.randint(0, self.n_items, (len(p), c.negatives), generator=generator)
            for row, target, neg in zip(hist.tolist(), self.flat.items[p].tolist(), negs.tolist()):
                t = self.user_text([i - 1 for i in row if i > 0])
                texts += [t] * (1 + c.negatives)
                items += [target] + neg
                labels += [1.0] + [0.0] * c.negatives
            yield {"texts": texts, "items": items, "labels": torch.tensor(labels), "n": len(labels)}

    def loss(self, batch: dict) -> torch.Tensor:
        logits = self.logits_for(batch["texts"], batch["items"])
        return F.binary_cross_entropy_with_logits(logits.float(), batch["labels"].to(logits.device))

    # -- ranking: retrieve, then re-rank -----------------------------------------------------
    def retriever(self, history: History) -> ItemKNNRecommender:
        if self._retriever is None or self._retriever[0] != id(history):
            self._retriever = (id(history), ItemKNNRecommender(history.n_users, history.n_items).fit(history))
        return self._retriever[1]

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        if self.item_texts is None:
            raise ConfigError("text_ctr has no item texts; call set_item_texts first")
        base = self.retriever(history).full_scores(users, history).float()
        known = torch.from_numpy(history.csr[users].toarray() > 0)
        base = base.masked_fill(known, float("-inf"))
        n_cand = min(self.config.candidates, base.shape[1])
        cand = torch.topk(base, n_cand, dim=1).indices
        was = self.training
        self.eval()
        with torch.no_grad():
            texts, items = [], []
            for row, u in enumerate(users):
                t = self.user_text(history.sequences[int(u)].tolist())
                texts += [t] * n_cand
                items += cand[row].tolist()
            probs = torch.cat([torch.sigmoid(self.logits_for(texts[lo: lo + 256], items[lo: lo + 256]).float().cpu())
                               for lo in range(0, len(items), 256)]).view(len(users), n_cand)
        self.train(was)
        finite = torch.where(torch.isfinite(base), base, torch.zeros_like(base))
        top = finite.max(1, keepdim=True).values
        scores = base.clone()
        scores.scatter_(1, cand, top + 1.0 + probs)  # candidates above all others, ordered by the classifier
        return scores

    def classification_metrics(self, split: Split, stage: str = "valid", seed: int = 0) -> dict:
        """Accuracy, precision, recall, F1, AUC and log loss on held-out positives vs as many random negatives."""
        # scikit-learn costs about a second to import and only this report needs it
        from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

        targets = split.targets(stage)
        rng = np.random.default_rng(seed)
        history = split.train_history
        texts, items, labels = [], [], []
        for u, i in zip(targets["u"].to_numpy(), targets["i"].to_numpy()):
            t = self.user_text(history.sequences[int(u)].tolist())
            texts += [t, t]
            items += [int(i), int(rng.integers(self.n_items))]
            labels += [1, 0]
        was = self.training
        self.eval()
        with torch.no_grad():
            probs = torch.cat([torch.sigmoid(self.logits_for(texts[lo: lo + 256], items[lo: lo + 256]).float().cpu())
                               for lo in range(0, len(items), 256)]).numpy()
        self.train(was)
        pred = (probs >= 0.5).astype(int)
        return {"accuracy": float(accuracy_score(labels, pred)), "precision": float(precision_score(labels, pred, zero_division=0)),
                "recall": float(recall_score(labels, pred, zero_division=0)), "f1": float(f1_score(labels, pred, zero_division=0)),
                "auc": float(roc_auc_score(labels, probs)), "log_loss": float(log_loss(labels, np.clip(probs, 1e-7, 1 - 1e-7))),
                "pairs": len(labels), "stage": stage}
