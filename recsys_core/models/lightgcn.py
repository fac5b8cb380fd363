"""LightGCN (He et al. 2020): embeddings smoothed over the user-item graph by K parameter-free propagation layers.

Layer k+1 of a user is the normalised sum of layer k of its items (and the other way round); the final
vector is a weighted sum of layers 0..K. The graph is the history a prediction is made from, so at test
time the validation interactions join it (fold-in, like EASE and ItemKNN with `fold_in`), and users and
items added by `grow()` join it as soon as they have interactions: a new user with a frozen ego embedding
is still personalised through the items it touched. Propagation runs on two sparse matrices (R and R^T,
degree-normalised); nothing users x items is ever dense except one evaluation block of scores.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_core.config_fields import check_choice
from recsys_core.data.splits import History
from recsys_core.models.base import ModelConfig
from recsys_core.models.memory import DataSizes, MemoryEstimate
from recsys_core.models.neural import FULL_SOFTMAX_ITEMS, LayerGroup, NeuralRecommender, TrainData

LOSSES = ["bpr", "softmax"]


@dataclass
class LightGCNConfig(ModelConfig):
    dim: int = field(default=64, metadata={"help": "embedding size", "min": 2})
    layers: int = field(default=3, metadata={"help": "propagation layers K (0 = matrix factorisation)", "min": 0, "max": 6})
    loss: str = field(default="bpr", metadata={"help": "bpr (pairwise, sampled negatives) or softmax (over the "
                                                       "catalogue; sampled past 4096 items)", "choices": LOSSES})
    negatives: int = field(default=1, metadata={"help": "sampled negatives per positive (bpr), or per batch "
                                                        "(sampled softmax)", "min": 1})
    reg: float = field(default=1e-4, metadata={"help": "L2 penalty on the layer-0 embeddings a batch touches", "min": 0.0})
    top_layer: bool = field(default=False, metadata={"help": "a square linear map on the final vectors (starts "
                                                             "as the identity; what trains under 'frozen' besides "
                                                             "the layer weights)"})

    def __post_init__(self) -> None:
        check_choice(self.loss, LOSSES, "lightgcn loss")


@dataclass
class Graph:
    """The degree-normalised interaction matrix D_u^-1/2 R D_i^-1/2 and its transpose, as sparse tensors."""

    r: torch.Tensor
    rt: torch.Tensor
    edges: int


def normalised_graph(history: History, n_users: int, n_items: int, device: torch.device) -> Graph:
    """The graph of `history`, padded to the model's (possibly grown) number of users and items."""
    csr = history.csr.tocoo()
    rows, cols = csr.row.astype(np.int64), csr.col.astype(np.int64)
    deg_u = np.bincount(rows, minlength=n_users).astype(np.float32)
    deg_i = np.bincount(cols, minlength=n_items).astype(np.float32)
    values = (1.0 / np.sqrt(deg_u[rows] * deg_i[cols])).astype(np.float32)
    index = torch.from_numpy(np.vstack([rows, cols]))
    r = torch.sparse_coo_tensor(index, torch.from_numpy(values), (n_users, n_items),
                                check_invariants=False).coalesce().to(device)
    rt = torch.sparse_coo_tensor(index.flip(0), torch.from_numpy(values), (n_items, n_users),
                                 check_invariants=False).coalesce().to(device)
    return Graph(r, rt, len(values))


class LightGCN(NeuralRecommender):
    family = "lightgcn"
    config_class = LightGCNConfig
    reads_history = True
    user_tables = ("user_emb",)
    item_tables = ("item_emb",)
    item_vector_table = "item_emb"
    text_base = "item_init"
    image_base = "item_init"
    # chosen on validation NDCG@10 of the demo among two settings (docs/BENCHMARKS.md, quality)
    default_train = {"epochs": 60, "batch_size": 1024, "lr": 1e-2, "patience": 5, "weight_decay": 0.0}

    @classmethod
    def memory_estimate(cls, config: LightGCNConfig, sizes: DataSizes) -> MemoryEstimate:
        estimate = super().memory_estimate(config, sizes)
        nodes = sizes.n_users + sizes.n_items
        # R and R^T (indices + values), then every layer's output kept for backward, with its gradient
        estimate.parts["graph"] = sizes.n_interactions * (16 + 4) * 2
        estimate.parts["propagated layers"] = (config.layers + 1) * nodes * config.dim * 4 * 3
        return estimate

    def __init__(self, n_users: int, n_items: int, config: LightGCNConfig | None = None) -> None:
        super().__init__(n_users, n_items, config)
        c: LightGCNConfig = self.config
        self.user_emb = nn.Embedding(n_users, c.dim)
        self.item_emb = nn.Embedding(n_items, c.dim)
        nn.init.normal_(self.user_emb.weight, 0.0, 0.1)
        nn.init.normal_(self.item_emb.weight, 0.0, 0.1)
        # softmax(0, ..., 0) = the paper's fixed 1/(K+1) mean; trainable so 'frozen' has a propagation head
        self.layer_logits = nn.Parameter(torch.zeros(c.layers + 1))
        self.top = nn.Linear(c.dim, c.dim, bias=False) if c.top_layer else None
        if self.top is not None:
            nn.init.eye_(self.top.weight)
        self._graph: tuple[weakref.ref, tuple, Graph] | None = None  # the last prediction-time graph
        self._train_graph: Graph | None = None
        self._propagated: tuple[Graph, tuple, tuple[torch.Tensor, torch.Tensor]] | None = None

    def layer_groups(self) -> list[LayerGroup]:
        return [LayerGroup("item embeddings (layer 0)", "embedding", ("item_emb",)),
                LayerGroup("user embeddings (layer 0)", "embedding", ("user_emb",)),
                LayerGroup("layer weights and top map", "head", ("layer_logits", "top."))]

    # -- the graph ---------------------------------------------------------------
    def prepare(self, data: TrainData) -> None:
        # training always propagates over the training history, whatever graph scoring built last
        self._train_graph = self.graph_of(data.history)

    def graph_of(self, history: History) -> Graph:
        """The normalised graph of `history`, built once per history object and model size."""
        shape = (self.n_users, self.n_items, history.csr.nnz, self.device)
        cached = self._graph
        if cached is not None and cached[0]() is history and cached[1] == shape:
            return cached[2]
        graph = normalised_graph(history, self.n_users, self.n_items, self.device)
        self._graph = (weakref.ref(history), shape, graph)
        return graph

    def propagate(self, graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user and item vectors: the layer-weighted sum of K rounds of neighbourhood averaging."""
        weights = torch.softmax(self.layer_logits.float(), 0)
        u, i = self.user_emb.weight.float(), self.item_emb.weight.float()
        # sparse products stay in float32 (no bf16 sparse kernels), whatever autocast says
        with torch.autocast(self.device.type, enabled=False):
            out_u, out_i = weights[0] * u, weights[0] * i
            for k in range(1, len(weights)):
                u, i = torch.sparse.mm(graph.r, i), torch.sparse.mm(graph.rt, u)
                out_u, out_i = out_u + weights[k] * u, out_i + weights[k] * i
            if self.top is not None:
                out_u, out_i = self.top(out_u), self.top(out_i)
        return out_u, out_i

    def _vectors(self, history: History) -> tuple[torch.Tensor, torch.Tensor]:
        """Propagated vectors for scoring, reused while neither the graph nor any weight has changed."""
        graph = self.graph_of(history)
        if torch.is_grad_enabled() and self.training:
            return self.propagate(graph)
        # the graph object itself (not its id, which a later graph may reuse) and every weight's version
        key = tuple((id(p), p._version) for p in self.parameters())
        cached = self._propagated
        if cached is not None and cached[0] is graph and cached[1] == key:
            return cached[2]
        vectors = self.propagate(graph)
        self._propagated = (graph, key, vectors)
        return vectors

    # -- training and scoring ------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        users, pos = batch["users"].to(self.device), batch["items"].to(self.device)
        graph = self._train_graph
        if graph is None:
            raise RuntimeError("lightgcn: prepare(data) builds the graph before training")
        u_all, i_all = self.propagate(graph)
        u = u_all[users]
        if self.config.loss == "softmax":
            main, touched = self._softmax_loss(u, i_all, pos)
        else:
            neg = torch.randint(0, self.n_items, (len(users), self.config.negatives), device=self.device)
            s_pos = (u * i_all[pos]).sum(-1, keepdim=True)
            s_neg = (u.unsqueeze(1) * i_all[neg]).sum(-1)
            main, touched = -F.logsigmoid(s_pos - s_neg).mean(), neg.reshape(-1)
        # LightGCN's regulariser: only the layer-0 rows this batch used, averaged over the batch
        ego = (self.user_emb(users).pow(2).sum() + self.item_emb(pos).pow(2).sum()
               + self.item_emb(touched).pow(2).sum() * len(users) / max(1, len(touched)))
        return main + self.config.reg * ego / (2 * len(users))

    def _softmax_loss(self, u: torch.Tensor, items: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_items <= FULL_SOFTMAX_ITEMS:
            return F.cross_entropy(u @ items.T, pos), pos
        neg = torch.randint(0, self.n_items, (self.config.negatives,), device=self.device)
        negative = (u @ items[neg].T).masked_fill(neg.unsqueeze(0) == pos.unsqueeze(1), float("-inf"))
        logits = torch.cat([(u * items[pos]).sum(-1, keepdim=True), negative], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(pos)), neg

    def user_logits(self, users: np.ndarray, history: History) -> torch.Tensor:
        u_all, i_all = self._vectors(history)
        return u_all[torch.as_tensor(users, device=self.device)] @ i_all.T

    def item_embedding_matrix(self) -> torch.Tensor | None:
        """Propagated item vectors when a graph is known (what 'similar' means to the model), else layer 0."""
        graph = self._train_graph or (self._graph[2] if self._graph is not None else None)
        if graph is None:
            return super().item_embedding_matrix()
        with torch.no_grad():
            return self.propagate(graph)[1].detach().float().cpu()

    def weights_changed(self) -> None:
        self._propagated = None  # the cache key (weight versions) cannot see writes made by other processes

    def grow(self, n_users: int, n_items: int, item_init: torch.Tensor | None = None) -> None:
        super().grow(n_users, n_items, item_init)
        self._graph = self._train_graph = self._propagated = None  # the next history builds a graph of the new size

    def load_state(self, directory) -> None:
        super().load_state(directory)
        self._propagated = None
