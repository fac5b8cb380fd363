"""Run one run directory end to end: its spec -> data -> split -> model -> trainer -> model/, eval.json.

`execute_run(run)` is what `rectune train` does in the worker process. It reads the spec the
directory holds (config.json, never rewritten), trains or fits, and records everything in the
directory; the SQLite index is told at each state change. Under torchrun every rank trains its
shard and only rank 0 writes.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.bases import Base, resolve_base, save_ids
from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import Split
from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.eval.evaluator import evaluate, ranking_progress
from recsys_core.models import build_model, family_class
from recsys_core.models.base import FittedRecommender
from recsys_core.models.memory import DataSizes
from recsys_core.runs.checkpoints import load_checkpoint
from recsys_core.runs.index import RunIndex
from recsys_core.runs.spec import RunSpec
from recsys_core.runs.worker import RunLogger, StopSignal, heartbeat
from recsys_core.storage.atomic import atomic_write_dir, atomic_write_json
from recsys_core.storage.rundir import RunDir
from recsys_core.strategies import parse_strategy
from recsys_core.train import distributed
from recsys_core.train.device import device_name, pick_device, seed_everything
from recsys_core.train.distributed import SINGLE, Dist
from recsys_core.train.finetune import Prepared, Trained, build_trainer, finish_training, prepare, train_prepared
from recsys_core.train.trainer import Trainer, TrainingFailed

Progress = Callable[[str], None]


@dataclass
class RunResult:
    run: RunDir
    status: str
    device: str
    valid: dict
    test: dict
    train_seconds: float
    trainable_params: int
    total_params: int
    error: str | None = None

    def as_json(self) -> dict:
        out = {"run_dir": str(self.run.path), "status": self.status, "device": self.device, "valid": self.valid,
               "test": self.test, "train_seconds": round(self.train_seconds, 3),
               "trainable_params": self.trainable_params, "total_params": self.total_params}
        if self.error:
            out["error"] = self.error
        return out


def execute_run(run: RunDir, resume: bool = False, progress: Progress | None = None, dist: Dist = SINGLE) -> RunResult:
    """Train (or resume) the run in `run`; never raises for training failures: they end as status 'failed'."""
    spec = RunSpec.load(run.path)
    device = _device_for(spec, dist)
    seed_everything(spec.seed)
    if not dist.is_main:
        return _execute_rank(run, spec, device, resume, dist)
    index = RunIndex(run.path.parent)
    run.stop_path.unlink(missing_ok=True)
    extra = {"world_size": dist.world, "backend": dist.backend} if dist.enabled else {}
    run.write_status("running", pid=os.getpid(), device=device_name(device), error=None, resumed=resume, **extra)
    index.upsert(run)
    say = progress or (lambda m: None)
    try:
        with heartbeat(run):
            result = _execute(run, spec, device, resume, say, dist)
    except TrainingFailed as exc:
        run.write_status("failed", error=str(exc))
        result = RunResult(run, "failed", device_name(device), {}, {}, 0.0, 0, 0, error=str(exc))
    except RecTuneError as exc:
        run.write_status("failed", error=str(exc))
        index.upsert(run)
        raise
    except Exception as exc:
        run.write_status("failed", error=f"internal error: {type(exc).__name__}: {exc}")
        index.upsert(run)
        raise
    index.upsert(run)
    return result


def _device_for(spec: RunSpec, dist: Dist) -> torch.device:
    """The configured device; under DDP on GPUs, this rank's own GPU."""
    device = pick_device(spec.device)
    if dist.enabled and device.type == "cuda":
        return torch.device("cuda", dist.local_rank)
    return device


def _execute(run: RunDir, spec: RunSpec, device: torch.device, resume: bool, say: Progress, dist: Dist) -> RunResult:
    ds = spec.load_data(progress=say)
    say(f"splitting ({spec.split.name})")
    split = spec.make_split(ds)
    cls = family_class(spec.family)
    say(f"{spec.family}: {len(split.train):,} training interactions, {split.n_users:,} users, {split.n_items:,} items "
        f"on {device_name(device)}")
    batch = spec.train.batch_size if cls.trainable else 0
    estimate = cls.check_memory(spec.model, DataSizes.of(split.train_history.user_counts, split.n_items, batch))
    say(f"memory estimate {estimate.describe()}")
    if not cls.trainable:
        if dist.enabled:
            raise ConfigError(f"{spec.family} is fitted in closed form: there is nothing to distribute (drop --nproc)")
        return _fit_closed_form(run, build_model(spec.family, split.n_users, split.n_items, spec.model.as_dict()),
                                split, ds, say)
    return _train_neural(run, spec, ds, split, device, resume, say, dist)


def _execute_rank(run: RunDir, spec: RunSpec, device: torch.device, resume: bool, dist: Dist) -> RunResult:
    """A rank other than 0: the same data, model and plan, its shard of the batches, no writes."""
    ds = spec.load_data()
    split = spec.make_split(ds)
    if not family_class(spec.family).trainable:
        raise ConfigError(f"{spec.family} is fitted in closed form: there is nothing to distribute (drop --nproc)")
    try:
        return _train_neural(run, spec, ds, split, device, resume, lambda m: None, dist)
    except TrainingFailed as exc:  # rank 0 records the failure; every rank sees the same NaN
        return RunResult(run, "failed", device_name(device), {}, {}, 0.0, 0, 0, error=str(exc))


def _fit_closed_form(run: RunDir, model: FittedRecommender, split: Split, ds: Dataset, say: Progress) -> RunResult:
    start = time.perf_counter()
    model.fit_tuned(split.train_history, lambda m: evaluate(m, split, "valid").metrics["ndcg@10"], progress=say)
    seconds = time.perf_counter() - start
    n_params = int(sum(t.numel() if torch.is_tensor(t) else t.nnz for t in vars(model).values()
                       if torch.is_tensor(t) or sp.issparse(t)))
    reason = "; ".join(["fitted in closed form", *model.notes()])
    return _finish(run, model, split, ds, "finished", reason, seconds, (0, n_params), say)


def _prepare(run: RunDir, spec: RunSpec, ds: Dataset, split: Split, dist: Dist, say: Progress) -> Prepared:
    """The spec's base and strategy applied to a fresh model; plan.json records what trains."""
    base = resolve_base(spec.base)
    strategy, options = parse_strategy({"name": spec.strategy_name, **spec.strategy.as_dict()})
    new_rows = _new_rows(base, split) if strategy.trains_on_new_data else None
    prepared = prepare(spec.family, spec.model.as_dict(), base, strategy, options, split.train_history, ds.users.ids,
                       ds.items.ids, ds.item_texts() if ds.item_table is not None else None, new_rows=new_rows,
                       seed=spec.seed, optimizer=spec.train.optimizer, item_images=ds.item_images())
    summary = prepared.summary()
    if dist.is_main:
        atomic_write_json(run.path / "plan.json", summary)
    say(f"base {base.spec}, strategy {strategy.name}: {summary['trainable_params']:,} of {summary['total_params']:,} "
        f"parameters train ({summary['trainable_share']:.1%})" + "".join(f"; {n}" for n in prepared.notes))
    return prepared


def _train_neural(run: RunDir, spec: RunSpec, ds: Dataset, split: Split, device: torch.device, resume: bool,
                  say: Progress, dist: Dist = SINGLE) -> RunResult:
    prepared = _prepare(run, spec, ds, split, dist, say)
    item_texts = ds.item_texts() if ds.item_table is not None else None
    callbacks = [RunLogger(run, say)] if dist.is_main else []
    if resume:
        trained = _resume(run, prepared, split, spec, device, item_texts, callbacks, say, dist)
    else:
        trained = train_prepared(prepared, split, spec.train, device, item_texts, callbacks, StopSignal(run), dist=dist)
    outcome, params = trained.outcome, (prepared.params["trainable_params"], prepared.params["total_params"])
    if dist.enabled:
        _record_ranks(run, trained.trainer, dist)
        if not dist.is_main:
            return RunResult(run, outcome.status, device_name(device), {}, {}, outcome.seconds, *params)
    say(f"{outcome.status}: {outcome.reason}; best validation ndcg@10 {outcome.best_metric:.4f} at epoch {outcome.best_epoch}")
    stats = trained.trainer.async_stats  # asynchronous training: updates applied and their staleness
    if stats:
        say(f"{stats['workers']} async workers applied {stats['steps']:,} {stats['updates']} updates; mean staleness "
            f"{stats['staleness_mean']:.2f} updates by others between a worker's read and its write")
    return _finish(run, trained.model, split, ds, outcome.status, outcome.reason, outcome.seconds, params, say,
                   epochs=outcome.epochs, steps=outcome.steps, base=prepared.base.spec, strategy=prepared.strategy.name,
                   **({"async": stats, "deterministic": False} if stats else {}))


def _resume(run: RunDir, prepared: Prepared, split: Split, spec: RunSpec, device: torch.device, item_texts,
            callbacks: list, say: Progress, dist: Dist) -> Trained:
    """Continue from checkpoints/last with the same plan (same frozen parts, adapters and data)."""
    trainer = build_trainer(prepared.model, split, spec.train, device, prepared.plan, item_texts, callbacks,
                            StopSignal(run), dist=dist)
    if load_checkpoint(run, trainer, keep_best=dist.is_main, say=say):
        say(f"resumed at epoch {trainer.epoch}, step {trainer.step}")
    else:
        say("no checkpoint yet: starting from the beginning")
        if dist.is_main:
            run.metrics_path.unlink(missing_ok=True)
    return finish_training(prepared, trainer)


def _record_ranks(run: RunDir, trainer: Trainer, dist: Dist) -> None:
    """distributed.json: world size, backend and each rank's weight digest after the last step (they must agree)."""
    mine = {"rank": dist.rank, "weights_sha256": trainer.final_digest, "steps": trainer.step,
            "steps_per_epoch": trainer.steps_per_epoch, "device": str(trainer.device)}
    ranks = distributed.gather(mine, dist)
    if dist.is_main:
        digests = {r["weights_sha256"] for r in ranks}
        atomic_write_json(run.path / "distributed.json", {
            "world_size": dist.world, "backend": dist.backend, "ranks": ranks, "ranks_agree": len(digests) == 1,
            "batches_per_epoch": trainer.n_batches, "batch_size_per_rank": trainer.config.batch_size})


def _new_rows(base: Base, split: Split) -> np.ndarray | None:
    """Interactions newer than what the base was trained on (by timestamp); None when that cannot be told."""
    f = split.train
    if base.data_until is None or not f["timestamp"].notna().all():
        return None
    return f.loc[f["timestamp"] > base.data_until, "row"].to_numpy()


def _finish(run: RunDir, model, split: Split, ds: Dataset, status: str, reason: str, seconds: float,
            params: tuple[int, int], say: Progress, **extra: Any) -> RunResult:
    """Evaluate the kept model on validation and test, save it, write eval.json and the final status."""
    say(f"ranking all {split.n_items:,} items for validation and test users")
    valid = evaluate(model, split, "valid", k=10, progress=ranking_progress(say, "validation"))
    test = evaluate(model, split, "test", k=10, progress=ranking_progress(say, "test"))
    stamps = ds.interactions["timestamp"]
    until = float(stamps.max()) if stamps.notna().all() and len(stamps) else None

    def fill(directory: Path) -> None:
        model.save(directory)
        save_ids(directory, ds.users.ids, ds.items.ids, until)

    atomic_write_dir(run.model_dir, fill)
    trainable, total = params
    ev = {"valid": valid.metrics, "test": test.metrics, "split": split.summary(), "train_seconds": seconds,
          "eval_seconds": test.eval_seconds, "trainable_params": trainable, "total_params": total, "reason": reason,
          **extra}
    if model.reports_classification:
        say("classification metrics on validation positives vs sampled negatives")
        ev["classification"] = model.classification_metrics(split)
    atomic_write_json(run.eval_path, ev)
    test.per_user.to_csv(run.path / "per_user_test.csv", index=False)
    run.write_status(status, reason=reason, error=None)
    return RunResult(run, status, run.read_status().get("device", ""), valid.metrics, test.metrics, seconds, trainable, total)
