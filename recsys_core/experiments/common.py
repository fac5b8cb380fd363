"""What both experiments share: one arm (a base + a strategy, or a reference) trained, timed and scored."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_core.bases import NONE, Base
from recsys_core.data.splits import Split, chronological
from recsys_core.errors import ConfigError
from recsys_core.eval.evaluator import EvalResult, evaluate
from recsys_core.eval.significance import paired_bootstrap
from recsys_core.models.neural import NeuralRecommender
from recsys_core.strategies import parse_strategy
from recsys_core.models import family_class
from recsys_core.text import cached_text_embeddings
from recsys_core.train.finetune import prepare, train_prepared
from recsys_core.train.trainer import TrainerConfig

Progress = Callable[[str], None]


STRATEGY_ORDER = ("full", "frozen", "partial", "lora", "incremental")
# Arms trained from random weights use the family's trainer defaults (SASRec needs its patience and minimum
# epochs to get past the plateau of its first epochs); arms that start from a trained base are already past it
# and stop after 3 validations without improvement.
EXPERIMENT_TUNE = {"patience": 3, "min_epochs": 0}


@dataclass
class ExperimentOptions:
    """Options shared by both experiments; `train` overrides the family's trainer defaults for every arm."""

    family: str = "sasrec"
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    tune: dict = field(default_factory=dict)  # extra trainer overrides for arms that start from a base
    strategies: tuple[str, ...] = STRATEGY_ORDER
    strategy_options: dict = field(default_factory=dict)  # name -> options, e.g. {"lora": {"rank": 4}}
    similar_share: float = 0.25
    similar_by: str = "interactions"  # or "text" (MiniLM profiles of the users' items), or "text:hf:PATH"
    seed: int = 0
    device: str = "auto"

    def trainer(self, tuned: bool = False) -> TrainerConfig:
        cls = family_class(self.family)
        values = {**cls.default_train, "seed": self.seed, **self.train,
                  **({**EXPERIMENT_TUNE, **self.tune} if tuned else {})}
        return TrainerConfig.from_dict(values)

    def strategy_spec(self, name: str) -> dict:
        return {"name": name, **self.strategy_options.get(name, {})}


def holdout_last(frame: pd.DataFrame, min_count: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, last interaction of each user with at least `min_count`), in time order."""
    ordered = chronological(frame)
    from_end = ordered.groupby("u", sort=False).cumcount(ascending=False).to_numpy()
    counts = ordered.groupby("u", sort=False)["i"].transform("size").to_numpy()
    last = (from_end == 0) & (counts >= min_count)
    return ordered[~last].reset_index(drop=True), ordered[last].reset_index(drop=True)

REPORTED = ("ndcg@10", "recall@10", "hr@10", "mrr@10", "n_users")


@dataclass
class Arm:
    """One trained (or reused) model and its figures."""

    name: str
    model: NeuralRecommender
    seconds: float
    trainable_params: int
    total_params: int
    test: EvalResult | None = None
    notes: list[str] = field(default_factory=list)
    epochs: int = 0

    def figures(self) -> dict:
        out = {k: self.test.metrics[k] for k in REPORTED} if self.test is not None else {}
        return {**out, "seconds": round(self.seconds, 2), "trainable_params": self.trainable_params,
                "total_params": self.total_params, "epochs": self.epochs}


@dataclass
class ArmSpec:
    """How to train one arm: its strategy (with options), its base and which rows are its training targets."""

    name: str
    strategy: str | dict
    base: Base = field(default_factory=lambda: NONE)
    train_rows: np.ndarray | None = None
    new_rows: np.ndarray | None = None


def train_arm(spec: ArmSpec, family: str, model_config: dict, split: Split, user_ids: list[str],
              item_ids: list[str], item_texts: list[str] | None, trainer_config: TrainerConfig,
              device: torch.device, seed: int = 0, progress: Progress | None = None,
              should_stop: Callable[[], bool] | None = None) -> Arm:
    """Prepare, train and time one arm (the clock covers preparation and training, not the final test)."""
    strategy, config = parse_strategy(spec.strategy)
    start = time.perf_counter()
    prepared = prepare(family, model_config, spec.base, strategy, config, split.train_history, user_ids, item_ids,
                       item_texts, new_rows=spec.new_rows, seed=seed, optimizer=trainer_config.optimizer)
    trained = train_prepared(prepared, split, trainer_config, device, item_texts, should_stop=should_stop,
                             train_rows=spec.train_rows)
    model, outcome = trained.model, trained.outcome
    seconds = time.perf_counter() - start
    arm = Arm(spec.name, model, seconds, prepared.params["trainable_params"], prepared.params["total_params"],
              notes=prepared.notes, epochs=outcome.epochs)
    if progress:
        progress(f"  {spec.name}: {outcome.epochs} epochs, {seconds:.1f}s, {arm.trainable_params:,} trainable "
                 f"parameters; best valid ndcg@10 {outcome.best_metric:.4f}")
    return arm


@dataclass
class ArmData:
    """The split an experiment step trains its arms on, with the raw ids and item texts behind its rows."""

    split: Split
    user_ids: list[str]
    item_ids: list[str]
    item_texts: list[str] | None


def train_strategies(options: "ExperimentOptions", spec_for: Callable[[str], ArmSpec], data: ArmData,
                     trainer_config: TrainerConfig, device: torch.device, say: Progress,
                     skip: dict[str, str] | None = None) -> tuple[dict[str, Arm], dict[str, str]]:
    """Train each of the options' strategies; one that does not apply (e.g. lora on mf) is skipped with its reason."""
    arms: dict[str, Arm] = {}
    skipped = dict(skip or {})
    for name in options.strategies:
        if name in skipped:
            continue
        try:
            arms[name] = train_arm(spec_for(name), options.family, options.model, data.split, data.user_ids,
                                   data.item_ids, data.item_texts, trainer_config, device, options.seed, say)
        except ConfigError as exc:  # not applicable to this family: reported, not fatal
            skipped[name] = str(exc)
            say(f"  {name}: skipped ({exc})")
    return arms, skipped


def score_arm(arm: Arm, split: Split) -> Arm:
    arm.test = evaluate(arm.model, split, "test", k=10)
    return arm


def per_user_ndcg(result: EvalResult, users: np.ndarray) -> np.ndarray:
    """Per-user NDCG@10 aligned to `users` (0 for a user the result has no row for)."""
    frame = result.per_user.set_index("u")["ndcg@10"]
    return frame.reindex(users).fillna(0.0).to_numpy()


def versus(a: EvalResult, b: EvalResult, seed: int = 0) -> dict:
    """Paired bootstrap of NDCG@10 (a - b) over the users both were scored on."""
    users = np.union1d(a.per_user["u"].to_numpy(), b.per_user["u"].to_numpy())
    out = paired_bootstrap(per_user_ndcg(a, users), per_user_ndcg(b, users), seed=seed)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def similar_users(split_train: pd.DataFrame, target_users: np.ndarray, candidate_users: np.ndarray,
                  n_items: int, share: float = 0.25, item_text: torch.Tensor | None = None) -> np.ndarray:
    """The candidate users most similar to the target users' profiles.

    Profiles are interaction vectors (cosine), or with `item_text` [n_items, d] the mean text embedding
    of each user's items (so users of different items with similar descriptions match).
    """
    if not len(candidate_users) or not len(target_users):
        return np.zeros(0, dtype=np.int64)
    f = split_train[["u", "i"]].drop_duplicates()
    n_users = int(max(f["u"].max(), target_users.max(), candidate_users.max())) + 1
    m = sp.csr_matrix((np.ones(len(f), dtype=np.float32), (f["u"].to_numpy(), f["i"].to_numpy())), shape=(n_users, n_items))
    if item_text is not None:
        m = sp.csr_matrix(m @ item_text.numpy())  # users x text dimensions
    norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    norms[norms == 0] = 1.0
    m = sp.diags(1.0 / norms) @ m
    target_profile = np.asarray(m[target_users].sum(0)).ravel()
    affinity = m[candidate_users] @ target_profile
    keep = max(1, int(round(share * len(candidate_users))))
    return candidate_users[np.argsort(-affinity, kind="stable")[:keep]]


def pick_best(strategies: dict[str, dict]) -> str | None:
    return max(strategies, key=lambda n: strategies[n].get("ndcg@10", -1.0)) if strategies else None


def profile_text(options, texts: list[str] | None) -> torch.Tensor | None:
    """Item text embeddings when the experiment matches similar users by text profiles."""
    if options.similar_by == "interactions":
        return None
    if texts is None:
        raise ConfigError("similar users by text profiles needs item text (an item table)")
    encoder = options.similar_by.partition(":")[2] or "minilm"  # "text" or "text:hf:PATH"
    return cached_text_embeddings(encoder, texts)
