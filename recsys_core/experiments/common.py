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
from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.eval.evaluator import EvalResult, evaluate
from recsys_core.eval.significance import compare_to_reference
from recsys_core.models.neural import NeuralRecommender
from recsys_core.strategies import parse_strategy
from recsys_core.models import family_class
from recsys_core.text import cached_text_embeddings
from recsys_core.train.finetune import prepare, train_prepared
from recsys_core.train.trainer import Callback, TrainerConfig

Progress = Callable[[str], None]


STRATEGY_ORDER = ("full", "frozen", "partial", "lora", "incremental")
# Protocol constants, fixed before any result is seen: every arm of an experiment (strategies and references
# alike) trains under one budget, the family's own trainer defaults unless the caller sets `train`; the winner
# is the arm with the best validation NDCG@10; k arms against one reference get Holm-adjusted p-values and
# Bonferroni-simultaneous 95% intervals from one joint paired bootstrap over users.
BUDGET_KEYS = ("epochs", "patience", "min_epochs", "eval_every")
SELECTION_METRIC = "ndcg@10"


class ExperimentStopped(RecTuneError):
    """A stop was requested while the experiment ran; its partial figures are not reported."""


@dataclass
class ExperimentOptions:
    """Options shared by both experiments; `train` overrides the family's trainer defaults for every arm alike."""

    family: str = "sasrec"
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    strategies: tuple[str, ...] = STRATEGY_ORDER
    strategy_options: dict = field(default_factory=dict)  # name -> options, e.g. {"lora": {"rank": 4}}
    similar_share: float = 0.25
    similar_by: str = "interactions"  # or "text" (MiniLM profiles of the users' items), or "text:hf:PATH"
    seed: int = 0
    device: str = "auto"
    #: receives progress events (arm epochs, arms done) while the experiment runs; not part of the protocol
    listener: Callable[[dict], None] | None = field(default=None, repr=False, compare=False)
    should_stop: Callable[[], bool] | None = field(default=None, repr=False, compare=False)

    def trainer(self) -> TrainerConfig:
        """The one training budget of every arm (and the base) of the experiment."""
        cls = family_class(self.family)
        return TrainerConfig.from_dict({**cls.default_train, "seed": self.seed, **self.train})

    def budget(self) -> dict:
        """The budget as reported: max epochs, patience, min epochs, evaluation cadence."""
        config = self.trainer()
        return {key: getattr(config, key) for key in BUDGET_KEYS}

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
    valid: EvalResult | None = None
    test: EvalResult | None = None
    notes: list[str] = field(default_factory=list)
    epochs: int = 0
    best_epoch: int = 0

    def figures(self) -> dict:
        out = {k: self.test.metrics[k] for k in REPORTED} if self.test is not None else {}
        valid = {k: self.valid.metrics[k] for k in REPORTED} if self.valid is not None else {}
        return {**out, "valid": valid, "seconds": round(self.seconds, 2), "trainable_params": self.trainable_params,
                "total_params": self.total_params, "epochs_run": self.epochs, "best_epoch": self.best_epoch}


@dataclass
class ArmSpec:
    """How to train one arm: its strategy (with options), its base and which rows are its training targets."""

    name: str
    strategy: str | dict
    base: Base = field(default_factory=lambda: NONE)
    train_rows: np.ndarray | None = None
    new_rows: np.ndarray | None = None


@dataclass
class ArmData:
    """The split an experiment step trains its arms on, with the raw ids and item texts behind its rows."""

    split: Split
    user_ids: list[str]
    item_ids: list[str]
    item_texts: list[str] | None
    item_images: list[str | None] | None = None


class ArmWatcher(Callback):
    """Reports an arm's epochs to the experiment's listener (the studio's live per-arm progress)."""

    def __init__(self, arm: str, listener: Callable[[dict], None]) -> None:
        self.arm, self.listener = arm, listener

    def on_eval_end(self, trainer, metrics: dict) -> None:
        self.listener({"type": "arm_epoch", "arm": self.arm, "epoch": metrics["epoch"],
                       "valid_ndcg@10": metrics["valid"][SELECTION_METRIC], "best_epoch": metrics["best_epoch"]})


def train_arm(spec: ArmSpec, options: "ExperimentOptions", data: ArmData, device: torch.device,
              progress: Progress | None = None) -> Arm:
    """Prepare, train (under the experiment's one budget) and time one arm; the clock stops before scoring."""
    strategy, config = parse_strategy(spec.strategy)
    budget = options.trainer()
    start = time.perf_counter()
    prepared = prepare(options.family, options.model, spec.base, strategy, config, data.split.train_history,
                       data.user_ids, data.item_ids, data.item_texts, new_rows=spec.new_rows, seed=options.seed,
                       optimizer=budget.optimizer, item_images=data.item_images)
    callbacks = [ArmWatcher(spec.name, options.listener)] if options.listener is not None else None
    trained = train_prepared(prepared, data.split, budget, device, data.item_texts, callbacks=callbacks,
                             should_stop=options.should_stop, train_rows=spec.train_rows)
    outcome = trained.outcome
    if options.should_stop is not None and options.should_stop():
        raise ExperimentStopped(f"stopped while training {spec.name}")
    seconds = time.perf_counter() - start
    arm = Arm(spec.name, trained.model, seconds, prepared.params["trainable_params"], prepared.params["total_params"],
              notes=prepared.notes, epochs=outcome.epochs, best_epoch=outcome.best_epoch)
    if progress:
        progress(f"  {spec.name}: {outcome.epochs} epochs (best {outcome.best_epoch}), {seconds:.1f}s, "
                 f"{arm.trainable_params:,} trainable parameters; best valid ndcg@10 {outcome.best_metric:.4f}")
    if options.listener is not None:
        options.listener({"type": "arm_done", "arm": spec.name, "seconds": round(seconds, 2),
                          "epochs_run": outcome.epochs, "valid_ndcg@10": outcome.best_metric})
    return arm


def train_strategies(options: "ExperimentOptions", spec_for: Callable[[str], ArmSpec], data: ArmData,
                     device: torch.device, say: Progress,
                     skip: dict[str, str] | None = None) -> tuple[dict[str, Arm], dict[str, str]]:
    """Train each of the options' strategies; one that does not apply (e.g. lora on mf) is skipped with its reason."""
    arms: dict[str, Arm] = {}
    skipped = dict(skip or {})
    for name in options.strategies:
        if name in skipped:
            continue
        try:
            arms[name] = train_arm(spec_for(name), options, data, device, say)
        except ConfigError as exc:  # not applicable to this family: reported, not fatal
            skipped[name] = str(exc)
            say(f"  {name}: skipped ({exc})")
    return arms, skipped


def score_arm(arm: Arm, split: Split) -> Arm:
    arm.valid = evaluate(arm.model, split, "valid", k=10)
    arm.test = evaluate(arm.model, split, "test", k=10)
    return arm


def per_user_ndcg(result: EvalResult, users: np.ndarray) -> np.ndarray:
    """Per-user NDCG@10 aligned to `users` (0 for a user the result has no row for)."""
    frame = result.per_user.set_index("u")["ndcg@10"]
    return frame.reindex(users).fillna(0.0).to_numpy()


def compare_arms(arms: dict[str, EvalResult], reference: EvalResult, seed: int = 0) -> dict[str, dict]:
    """Each arm's test NDCG@10 minus the reference's over the same users, corrected for len(arms) comparisons."""
    users = reference.per_user["u"].to_numpy()
    for result in arms.values():
        users = np.union1d(users, result.per_user["u"].to_numpy())
    return compare_to_reference({n: per_user_ndcg(r, users) for n, r in arms.items()}, per_user_ndcg(reference, users),
                                seed=seed)


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
    """The arm with the best validation NDCG@10 (test figures never choose)."""
    return max(strategies, key=lambda n: strategies[n]["valid"].get(SELECTION_METRIC, -1.0)) if strategies else None


def profile_text(options, texts: list[str] | None) -> torch.Tensor | None:
    """Item text embeddings when the experiment matches similar users by text profiles."""
    if options.similar_by == "interactions":
        return None
    if texts is None:
        raise ConfigError("similar users by text profiles needs item text (an item table)")
    encoder = options.similar_by.partition(":")[2] or "minilm"  # "text" or "text:hf:PATH"
    return cached_text_embeddings(encoder, texts)
