"""A UI-free training loop with callbacks (after minGPT's Trainer): optimizers, L1, clipping, LR schedules,
early stopping on validation NDCG@10, bf16 autocast on CUDA, NaN/explosion detection, resumable state.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from recsys_core.config_fields import check_choice, check_range, from_dict
from recsys_core.data.splits import Split
from recsys_core.errors import RecTuneError
from recsys_core.eval.evaluator import evaluate
from recsys_core.models.neural import NeuralRecommender, TrainData
from recsys_core.train import distributed, hogwild
from recsys_core.train.device import autocast
from recsys_core.train.distributed import SINGLE, Dist

OPTIMIZERS = ["adam", "adamw", "sgd"]
SCHEDULES = ["constant", "step", "cosine", "plateau"]


@dataclass
class TrainerConfig:
    epochs: int = field(default=50, metadata={"help": "maximum passes over the training data", "min": 1})
    batch_size: int = field(default=256, metadata={"help": "examples (or sequences) per step", "min": 1})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate", "min": 0.0})
    optimizer: str = field(default="adam", metadata={"help": "optimizer", "choices": OPTIMIZERS})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 weight decay (decoupled for adamw)", "min": 0.0})
    l1: float = field(default=0.0, metadata={"help": "L1 penalty on trainable weights", "min": 0.0})
    grad_clip: float = field(default=5.0, metadata={"help": "clip the gradient norm to this (0 = off)", "min": 0.0})
    schedule: str = field(default="constant", metadata={"help": "learning-rate schedule", "choices": SCHEDULES})
    warmup_frac: float = field(default=0.0, metadata={"help": "share of steps with linear warm-up", "min": 0.0, "max": 0.5})
    step_epochs: int = field(default=10, metadata={"help": "'step' schedule: epochs between decays", "min": 1})
    gamma: float = field(default=0.5, metadata={"help": "'step'/'plateau' schedule: decay factor", "min": 0.0, "max": 1.0})
    eval_every: int = field(default=1, metadata={"help": "validate every this many epochs", "min": 1})
    patience: int = field(default=5, metadata={"help": "stop after this many validations without improvement (0 = never)", "min": 0})
    min_epochs: int = field(default=0, metadata={"help": "never stop early before this many epochs (gets past a slow start)", "min": 0})
    log_every: int = field(default=10, metadata={"help": "log loss, lr and throughput every this many steps", "min": 1})
    amp: str = field(default="auto", metadata={"help": "mixed precision: auto (bf16 on CUDA), bf16, off", "choices": ["auto", "bf16", "off"]})
    explode_ratio: float = field(default=1e3, metadata={"help": "fail if the loss grows beyond this times its start", "min": 1.0})
    compile: bool = field(default=False, metadata={"help": "torch.compile the training step (pays off on long GPU runs; "
                                                           "falls back to eager if compilation fails)"})
    async_workers: int = field(default=0, metadata={"help": "worker processes that update shared weights without "
                                                            "locks (Hogwild, CPU); 0 = synchronous", "min": 0, "max": 64})
    seed: int = field(default=0, metadata={"help": "random seed (batches, negatives, init)"})
    metric: str = field(default="ndcg@10", metadata={"help": "validation metric for early stopping and the best model"})

    def __post_init__(self) -> None:
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_choice(self.amp, ["auto", "bf16", "off"], "amp")
        check_range(self.epochs, "epochs", 1)
        check_range(self.batch_size, "batch_size", 1)
        check_range(self.lr, "lr", 0.0)
        check_range(self.warmup_frac, "warmup_frac", 0.0, 0.5)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> "TrainerConfig":
        return from_dict(cls, values, "train config")


class TrainingFailed(RecTuneError):
    """Training cannot go on (NaN or exploding loss); the run ends as 'failed' with this reason."""


class Callback:
    """Hooks called by the Trainer; override what you need."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", info: dict) -> None: ...
    def on_eval_end(self, trainer: "Trainer", metrics: dict) -> None: ...
    def on_epoch_end(self, trainer: "Trainer") -> None: ...
    def on_fit_end(self, trainer: "Trainer", outcome: "FitOutcome") -> None: ...


@dataclass
class FitOutcome:
    status: str  # finished | stopped
    reason: str
    epochs: int
    steps: int
    best_epoch: int
    best_metric: float
    best_valid: dict
    seconds: float


def _compiled_or_eager(fn: Callable[[dict], torch.Tensor]) -> Callable[[dict], torch.Tensor]:
    """torch.compile(fn); if compiling fails (no compiler, unsupported op), warn once and run eagerly."""
    compiled = torch.compile(fn, dynamic=True)
    state = {"fn": compiled}

    def call(batch: dict) -> torch.Tensor:
        try:
            return state["fn"](batch)
        except Exception as exc:  # noqa: BLE001 - any compiler failure must not end the run
            if state["fn"] is fn:
                raise
            warnings.warn(f"torch.compile failed ({type(exc).__name__}); training continues without it", stacklevel=2)
            state["fn"] = fn
            return fn(batch)

    return call


class Trainer:
    def __init__(self, model: NeuralRecommender, data: TrainData, split: Split, config: TrainerConfig,
                 device: torch.device, callbacks: list[Callback] | None = None,
                 should_stop: Callable[[], bool] | None = None, param_groups: list[dict] | None = None,
                 extra_loss: Callable[[dict], torch.Tensor | None] | None = None, dist: Dist = SINGLE) -> None:
        self.model = model.to(device)
        self.dist = dist
        self.data = data
        self.split = split
        self.config = config
        self.device = device
        self.callbacks = callbacks or []
        self.should_stop = should_stop or (lambda: False)
        self.extra_loss = extra_loss  # a strategy's penalty (L2-SP, EWC, distillation), given the batch
        self.generator = torch.Generator().manual_seed(config.seed)
        model.prepare(data)
        self.n_batches = sum(1 for _ in model.batches(data, config.batch_size, torch.Generator().manual_seed(0)))
        self.steps_per_epoch = distributed.steps_per_rank(self.n_batches, dist)
        self.total_steps = self.steps_per_epoch * config.epochs
        groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
        self.trainable = [p for g in groups for p in g["params"]]
        if not self.trainable:
            raise RecTuneError("nothing to train: every parameter is frozen")
        self.optimizer = self._make_optimizer(groups)
        self.scheduler = self._make_scheduler()
        # Under torchrun the loss runs through DDP (which averages gradients); ranks then differ only in
        # their data shard and their random draws (negatives, dropout).
        self.forward = distributed.wrap(model, self._loss, device) if dist.enabled else self._loss
        if config.compile:
            self.forward = _compiled_or_eager(self.forward)
        if dist.enabled:
            torch.manual_seed(config.seed + 7919 * dist.rank)
        hogwild.check_async(config.async_workers, device, dist.world)
        self.async_stats: dict | None = None  # what asynchrony cost (hogwild.AsyncStats), after fit()
        self.final_digest: str | None = None
        # loop state (saved in checkpoints)
        self.epoch = 0
        self.step = 0
        self.best_metric = -math.inf
        self.best_epoch = -1
        self.best_valid: dict = {}
        self.best_state: dict | None = None
        self.bad_evals = 0
        self.start_loss: float | None = None
        self.last_valid: dict = {}
        self.elapsed = 0.0
        self.step_lr = config.lr

    # -- construction --------------------------------------------------------------
    def _make_optimizer(self, groups: list[dict]) -> torch.optim.Optimizer:
        c = self.config
        fused = {"fused": True} if self.device.type == "cuda" else {}
        # a strategy may ask for a smaller rate on some groups (e.g. a gently tuned backbone)
        groups = [{**{k: v for k, v in g.items() if k != "lr_scale"}, "lr": c.lr * g.get("lr_scale", 1.0)} for g in groups]
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        if c.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay, **fused)
        return torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay, **fused)

    def _make_scheduler(self):
        c = self.config
        warm = int(self.total_steps * c.warmup_frac)
        if c.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max", factor=c.gamma or 0.5, patience=1)

        def factor(step: int) -> float:
            if warm and step < warm:
                return (step + 1) / warm
            if c.schedule == "cosine":
                progress = (step - warm) / max(1, self.total_steps - warm)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            if c.schedule == "step":
                return c.gamma ** ((step // self.steps_per_epoch) // c.step_epochs)
            return 1.0

        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    # -- the loop ------------------------------------------------------------------
    def fit(self) -> FitOutcome:
        c = self.config
        for cb in self.callbacks:
            cb.on_fit_start(self)
        status, reason = "finished", f"reached {c.epochs} epochs"
        t_start = time.perf_counter() - self.elapsed
        engine = hogwild.AsyncEpochs(self, c.async_workers) if c.async_workers else None
        try:
            while self.epoch < c.epochs:
                if engine.run(t_start) if engine is not None else self._train_epoch(t_start):
                    status, reason = "stopped", f"stop requested at step {self.step}"
                    break
                if self._end_epoch(t_start):
                    status, reason = "finished", f"early stop: no better validation {c.metric} in {c.patience} evaluations"
                    break
        finally:
            if engine is not None:
                engine.close()
                self.async_stats = engine.stats.as_dict()
        return self._conclude(status, reason, t_start)

    def _train_epoch(self, t_start: float) -> bool:
        """One synchronous epoch (this rank's shard of it under DDP); True when a stop request ended it."""
        c = self.config
        self.model.train()
        t_log, n_log = time.perf_counter(), 0
        batches = self.model.batches(self.data, c.batch_size, self.generator)
        for batch in distributed.shard(batches, self.n_batches, self.dist):
            if distributed.any_rank(self.should_stop(), self.dist):
                return True
            loss = self._train_step(batch)
            self.step += 1
            n_log += int(batch.get("n", len(next(iter(batch.values())))))
            if self.step % c.log_every == 0 or self.step == 1:
                now = time.perf_counter()
                info = {"step": self.step, "epoch": self.epoch + 1, "loss": loss, "lr": self.step_lr,
                        "throughput": n_log * self.dist.world / max(now - t_log, 1e-9), "elapsed": now - t_start,
                        "total_steps": self.total_steps}
                t_log, n_log = now, 0
                for cb in self.callbacks:
                    cb.on_step_end(self, info)
        return False

    def _end_epoch(self, t_start: float) -> bool:
        """Count the epoch, validate when due, checkpoint (callbacks); True when early stopping triggers."""
        c = self.config
        self.epoch += 1
        self.elapsed = time.perf_counter() - t_start
        stop = (self.epoch % c.eval_every == 0 or self.epoch == c.epochs) and self._validate()
        self.elapsed = time.perf_counter() - t_start
        for cb in self.callbacks:
            cb.on_epoch_end(self)
        return stop

    def _conclude(self, status: str, reason: str, t_start: float) -> FitOutcome:
        if self.dist.enabled:
            self.final_digest = distributed.weights_digest(self.model)
        if self.best_state is None and not self.best_valid:  # stopped before any validation: validate what we have
            self._validate()
        if self.best_state is not None:  # (only rank 0 keeps the best weights under DDP)
            self.model.load_state_dict(self.best_state)
        self.elapsed = time.perf_counter() - t_start
        outcome = FitOutcome(status, reason, self.epoch, self.step, self.best_epoch, self.best_metric,
                             self.best_valid, self.elapsed)
        for cb in self.callbacks:
            cb.on_fit_end(self, outcome)
        return outcome

    def _loss(self, batch: dict) -> torch.Tensor:
        """The model's loss plus the strategy's penalty and L1: everything the gradient comes from."""
        loss = self.model.loss(batch)
        extra = self.extra_loss(batch) if self.extra_loss is not None else None
        if extra is not None:
            loss = loss + extra
        if self.config.l1:
            loss = loss + self.config.l1 * sum(p.abs().sum() for p in self.trainable if p.dim() > 1)
        return loss

    def _train_step(self, batch: dict) -> float:
        c = self.config
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with autocast(self.device, c.amp):
            loss = self.forward(batch)
        value = distributed.mean_over_ranks(float(loss.detach()), self.dist)
        self.check_loss(value)
        self.step_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses (logged)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.trainable, c.grad_clip)
        self.optimizer.step()
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        return value

    def check_loss(self, value: float) -> None:
        """Raise TrainingFailed, in words, when a step's loss is not finite or has exploded."""
        c = self.config
        if not math.isfinite(value):
            raise TrainingFailed(f"the loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}); "
                                 f"lower the learning rate (now {self.optimizer.param_groups[0]['lr']:g}) or enable gradient clipping")
        if self.start_loss is None:
            self.start_loss = max(abs(value), 1e-3)
        elif value > c.explode_ratio * self.start_loss:
            raise TrainingFailed(f"the loss exploded to {value:.3g} at step {self.step + 1} "
                                 f"({c.explode_ratio:g}x its start {self.start_loss:.3g}); lower the learning rate")

    def _validate(self) -> bool:
        """Evaluate on validation; keep the best weights. Returns True when early stopping triggers."""
        self.model.eval()
        metrics = None
        if self.dist.is_main:  # other ranks wait for rank 0's figures, so every rank takes the same decision
            with torch.no_grad(), autocast(self.device, self.config.amp):
                metrics = evaluate(self.model, self.split, "valid", k=10).metrics
        metrics = distributed.broadcast(metrics, self.dist)
        self.model.train()
        metric = metrics.get(self.config.metric, metrics["ndcg@10"])
        self.last_valid = metrics
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metric)
        if metric > self.best_metric:
            self.best_metric, self.best_epoch, self.best_valid = metric, self.epoch, metrics
            if self.dist.is_main:
                self.best_state = copy.deepcopy({k: v.detach().clone() for k, v in self.model.state_dict().items()})
            self.bad_evals = 0
        else:
            self.bad_evals += 1
        for cb in self.callbacks:
            cb.on_eval_end(self, {"epoch": self.epoch, "step": self.step, "valid": metrics, "best_epoch": self.best_epoch})
        return bool(self.config.patience) and self.bad_evals >= self.config.patience and self.epoch >= self.config.min_epochs

    # -- checkpoint state ----------------------------------------------------------
    def loop_state(self) -> dict:
        best = self.best_metric if math.isfinite(self.best_metric) else None
        return {"epoch": self.epoch, "step": self.step, "best_metric": best, "best_epoch": self.best_epoch,
                "best_valid": self.best_valid, "bad_evals": self.bad_evals, "start_loss": self.start_loss,
                "elapsed": self.elapsed}

    def tensor_state(self) -> dict:
        """Optimizer, scheduler and RNG states: loadable with torch.load(weights_only=True)."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}

    def restore(self, loop: dict, tensors: dict, model_state: dict, best_state: dict | None) -> None:
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(tensors["optimizer"])
        self.scheduler.load_state_dict(tensors["scheduler"])
        self.generator.set_state(tensors["generator"])
        torch.set_rng_state(tensors["torch_rng"])
        for key, value in loop.items():
            setattr(self, key, value)
        if self.best_metric is None:
            self.best_metric = -math.inf
        self.best_state = best_state

