"""Library-level workflows shared by the CLI and the studio: fit a baseline and evaluate it."""
from __future__ import annotations

import time
from typing import Callable

from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import Split, make_split
from recsys_core.eval.evaluator import EvalResult, evaluate, ranking_progress
from recsys_core.models import baseline_class
from recsys_core.models.base import FittedRecommender

Progress = Callable[[str], None]


def fit_baseline(family: str, split: Split, progress: Progress | None = None, **config) -> FittedRecommender:
    """Fit a baseline on the training history; hyper-parameters left open are chosen on validation NDCG@10."""
    cls = baseline_class(family)
    model = cls(split.n_users, split.n_items, cls.config_class.from_dict(config) if config else None)
    return model.fit_tuned(split.train_history, lambda m: evaluate(m, split, "valid").metrics["ndcg@10"],
                           progress=progress)


def evaluate_baseline(ds: Dataset, family: str, k: int = 10, split_name: str = "leave-last-out", seed: int = 0,
                      progress: Progress | None = None, model_config: dict | None = None,
                      ) -> tuple[FittedRecommender, EvalResult, EvalResult, dict]:
    """Split, fit, and evaluate on validation and test; returns the model, both results and timings."""
    if progress:
        progress(f"splitting ({split_name})")
    split = make_split(ds, split_name, seed=seed)
    start = time.perf_counter()
    if progress:
        progress(f"fitting {family} on {len(split.train):,} training interactions")
    model = fit_baseline(family, split, progress=progress, **(model_config or {}))
    train_seconds = time.perf_counter() - start
    if progress:
        progress(f"ranking all {split.n_items:,} items for {split.test['u'].nunique():,} test users")
    valid = evaluate(model, split, "valid", k=k, progress=ranking_progress(progress, "validation"))
    test = evaluate(model, split, "test", k=k, progress=ranking_progress(progress, "test"))
    info = {"train_seconds": round(train_seconds, 3), "eval_seconds": round(test.eval_seconds, 3),
            "split": split.summary(), "params": model.config.as_dict(), "notes": model.notes()}
    return model, valid, test, info
