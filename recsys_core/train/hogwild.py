"""Asynchronous (Hogwild-style) training: worker processes update shared parameters without locks.

The model's parameters move into shared memory and N forked worker processes each train on their shard
of every epoch's batches (batch j to worker j mod N, like DDP's shard), reading and writing the same
tensors with no lock and no gradient averaging (Recht et al. 2011; PyTorch's mnist_hogwild example).
Each worker has its own optimizer; embedding tables of families that declare `sparse_updates` get sparse
gradients and a sparse optimizer, so a step writes only the rows its batch touched (the premise of
Hogwild: collisions are rare). The trainer's own process only orchestrates: it hands out epochs, relays
the workers' loss logs to the callbacks as they arrive, obeys stop requests, and validates and
checkpoints between epochs exactly as in synchronous training.

Staleness: before its forward pass a worker reads how many updates the others have applied; after its
own write it reads again. The difference is how many foreign updates landed while it computed its
gradient from what it had read: 0 in synchronous training.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.train.distributed import Dist, shard

#: seconds between the trainer process's checks of stop requests and worker liveness while an epoch runs
POLL_SECONDS = 0.2
#: how long workers may take to finish their current step after a stop request before they are killed
STOP_GRACE_SECONDS = 30.0


class WorkerDied(RecTuneError):
    """An async worker process ended without finishing its epoch (killed, out of memory, crashed)."""


@dataclass
class AsyncStats:
    """What asynchrony cost: updates applied, and how stale the parameters each update read were."""

    workers: int
    updates: str = "dense"  # 'sparse' when embedding rows are written only where a batch touched them
    steps: int = 0
    staleness_sum: int = 0
    staleness_max: int = 0
    per_worker_steps: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"workers": self.workers, "updates": self.updates, "steps": self.steps,
                "staleness_mean": self.staleness_sum / max(1, self.steps), "staleness_max": self.staleness_max,
                "per_worker_steps": self.per_worker_steps, "notes": self.notes}


def check_async(workers: int, device: torch.device, world: int) -> None:
    """Refuse the combinations asynchronous training does not do, naming the option to change."""
    if workers < 0:
        raise ConfigError("async workers must be 0 (synchronous) or more", field="async_workers")
    if workers and device.type != "cpu":
        raise ConfigError(f"async workers share parameters in CPU memory and the run is on {device.type}: "
                          "use device cpu, or 0 async workers", field="async_workers")
    if workers and world > 1:
        raise ConfigError("async workers and data-parallel ranks (--nproc) are two ways to train in parallel; "
                          "choose one", field="async_workers")
    if workers and "fork" not in mp.get_all_start_methods():
        raise ConfigError("async workers need fork-based processes, which this platform lacks", field="async_workers")


class AsyncEpochs:
    """N persistent forked workers training one shared model; `run(trainer)` trains one epoch with them."""

    def __init__(self, trainer, workers: int) -> None:
        self.trainer = trainer
        self.world = workers
        model = trainer.model
        model.share_memory()  # parameters (and buffers) move to shared memory: the workers write them in place
        self.counts = torch.zeros(workers, dtype=torch.int64).share_memory_()
        ctx = mp.get_context("fork")  # fork shares the prepared model, data and strategy closures as they are
        self.stop = ctx.Event()
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(workers)]
        self.stats = AsyncStats(workers, per_worker_steps=[0] * workers)
        self._epoch_steps = [0] * workers
        self.processes = [ctx.Process(target=_worker_main, args=(trainer, rank, workers, self.commands[rank],
                                                                  self.results, self.counts, self.stop, os.getpid()),
                                      daemon=True, name=f"rectune-async-{rank}") for rank in range(workers)]
        for p in self.processes:
            p.start()

    def run(self, t_start: float) -> bool:
        """Train one epoch on the workers; True when a stop request ended it early."""
        trainer = self.trainer
        self.stop.clear()
        lrs = [g["lr"] for g in trainer.optimizer.param_groups]
        for q in self.commands:
            q.put(("epoch", trainer.epoch, lrs))
        done, stopped, first_step = 0, False, trainer.step
        self._epoch_steps = [0] * self.world
        self._counted = int(self.counts.sum())  # updates before this epoch (the counts restart on resume)
        relay = _Relay(trainer, t_start)
        stop_asked = 0.0
        while done < self.world:
            if not stopped and trainer.should_stop():
                self.stop.set()
                stopped, stop_asked = True, time.monotonic()
            try:
                msg = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                self._check_alive()
                if stopped and time.monotonic() - stop_asked > STOP_GRACE_SECONDS:
                    raise WorkerDied(f"async workers did not stop within {STOP_GRACE_SECONDS:.0f} s of the stop request; "
                                     "they were killed and the last checkpoint is intact: resume the run")
                continue
            done += self._handle(msg, relay, first_step)
        trainer.model.weights_changed()  # the workers wrote the weights: nothing derived from them is current
        trainer.step = first_step + sum(self._epoch_steps)
        if not isinstance(trainer.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            with warnings.catch_warnings():  # this process's optimizer never steps: the workers' do
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(trainer.step - first_step):  # the schedule advances by the updates made
                    trainer.scheduler.step()
        trainer.step_lr = trainer.optimizer.param_groups[0]["lr"]
        return stopped

    def _handle(self, msg: tuple, relay: "_Relay", first_step: int) -> int:
        kind, rank = msg[0], msg[1]
        if kind == "log":
            relay.log(rank, *msg[2:], updates=first_step + int(self.counts.sum()) - self._counted)
            return 0
        if kind == "failed":  # a non-finite loss: the trainer's own check raises TrainingFailed in words
            self.stop.set()
            self._drain()
            self.trainer.check_loss(msg[2])
            return 0
        if kind == "error":
            self.stop.set()
            _raise_worker_error(msg)
        _, _, steps, stale_sum, stale_max, updates, notes = msg
        self._epoch_steps[rank] = steps
        s = self.stats
        s.steps += steps
        s.staleness_sum += stale_sum
        s.staleness_max = max(s.staleness_max, stale_max)
        s.per_worker_steps[rank] += steps
        s.updates = updates
        s.notes = sorted(set(s.notes) | set(notes))
        return 1

    def _check_alive(self) -> None:
        for rank, p in enumerate(self.processes):
            if not p.is_alive():
                self.stop.set()
                time.sleep(POLL_SECONDS)  # a worker that failed in words says why before it exits
                reported = self._drain()
                if reported is not None:
                    _raise_worker_error(reported)
                raise WorkerDied(f"async worker {rank} ended with exit code {p.exitcode} in the middle of epoch "
                                 f"{self.trainer.epoch + 1} (killed or out of memory?); the last checkpoint is intact: "
                                 "resume the run, or train with fewer async workers")

    def _drain(self) -> tuple | None:
        """Empty the results queue; the first error a worker reported, if any."""
        error = None
        try:
            while True:
                msg = self.results.get_nowait()
                if error is None and msg[0] == "error":
                    error = msg
        except queue.Empty:
            return error

    def close(self) -> None:
        self.stop.set()
        for q in self.commands:
            q.put(("close",))
        for p in self.processes:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


def _raise_worker_error(msg: tuple) -> None:
    raise RecTuneError(f"async worker {msg[1]} failed: {msg[2]}")


class _Relay:
    """Turns the workers' log messages into the trainer's step records (loss, lr, throughput, staleness)."""

    def __init__(self, trainer, t_start: float) -> None:
        self.trainer = trainer
        self.t_start = t_start
        self.epoch_start = time.perf_counter()
        self.examples = 0

    def log(self, rank: int, loss: float, examples: int, staleness: float, updates: int) -> None:
        t = self.trainer
        t.check_loss(loss)
        self.examples += examples
        now = time.perf_counter()
        t.step = max(t.step, updates)
        # all workers together, averaged over the epoch so far (their logs interleave at random moments)
        info = {"step": t.step, "epoch": t.epoch + 1, "loss": loss, "lr": t.optimizer.param_groups[0]["lr"],
                "throughput": self.examples / max(now - self.epoch_start, 1e-9), "elapsed": now - self.t_start,
                "total_steps": t.total_steps, "worker": rank, "staleness": staleness}
        for cb in t.callbacks:
            cb.on_step_end(t, info)


# ------------------------------------------------------------------ inside a worker process

def _worker_main(trainer, rank: int, world: int, commands, results, counts: torch.Tensor, stop, parent: int) -> None:
    """A worker: wait for an epoch, train this worker's shard of it on the shared weights, report, repeat."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # stopping is the trainer process's decision (it sets `stop`)
    torch.set_num_threads(1)  # one core per worker: the point is to run them side by side
    torch.manual_seed(trainer.config.seed + 7919 * (rank + 1))
    try:
        worker = _Worker(trainer, rank, world, results, counts, stop, parent)
        while True:
            try:
                cmd = commands.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    return  # the trainer process is gone
                continue
            if cmd[0] == "close":
                return
            worker.epoch(cmd[1], cmd[2])
    except Exception as exc:  # noqa: BLE001 - reported to the trainer process, which ends the run in words
        results.put(("error", rank, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"))


class _Worker:
    def __init__(self, trainer, rank: int, world: int, results, counts: torch.Tensor, stop, parent: int) -> None:
        self.t, self.rank, self.world = trainer, rank, world
        self.results, self.counts, self.stop, self.parent = results, counts, stop, parent
        self.sparse_ok = bool(trainer.model.sparse_updates and not trainer.config.l1 and trainer.extra_loss is None)
        if self.sparse_ok:
            for m in trainer.model.modules():
                if isinstance(m, nn.Embedding):
                    m.sparse = True
        self.optimizers: list[torch.optim.Optimizer] | None = None
        #: per worker optimizer, the trainer's parameter group each of its groups mirrors (for the lr)
        self.group_of_opt: dict[int, list[int]] = {}
        self.notes: list[str] = []
        self.updates = "dense"

    def epoch(self, epoch: int, lrs: list[float]) -> None:
        t, c = self.t, self.t.config
        t.model.train()
        generator = torch.Generator().manual_seed(c.seed * 1_000_003 + epoch)  # the same order in every worker
        batches = shard(t.model.batches(t.data, c.batch_size, generator), t.n_batches, Dist(self.rank, self.world))
        steps = stale_sum = stale_max = examples = since = 0
        for batch in batches:
            if self.stop.is_set() or os.getppid() != self.parent:
                break
            seen = int(self.counts.sum()) - int(self.counts[self.rank])
            loss = self._step(batch, lrs)
            if not math.isfinite(loss):
                self.results.put(("failed", self.rank, loss))
                break
            self.counts[self.rank] += 1
            stale = int(self.counts.sum()) - int(self.counts[self.rank]) - seen
            steps, stale_sum, stale_max = steps + 1, stale_sum + stale, max(stale_max, stale)
            examples += int(batch.get("n", len(next(iter(batch.values())))))
            since += stale
            if steps % c.log_every == 0 or (epoch == 0 and steps == 1):
                self.results.put(("log", self.rank, loss, examples, since / (c.log_every if steps > 1 else 1)))
                examples = since = 0
        self.results.put(("done", self.rank, steps, stale_sum, stale_max, self.updates, self.notes))

    def _step(self, batch: dict, lrs: list[float]) -> float:
        t = self.t
        loss = t._loss(batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            return value
        for p in t.trainable:
            p.grad = None
        loss.backward()
        if self.optimizers is None:  # the first backward shows which tables got sparse gradients
            self._build_optimizers()
        dense = [p for p in t.trainable if p.grad is not None and not p.grad.is_sparse]
        if t.config.grad_clip and dense:
            torch.nn.utils.clip_grad_norm_(dense, t.config.grad_clip)
        for opt in self.optimizers:
            for group, source in zip(opt.param_groups, self.group_of_opt[id(opt)]):
                group["lr"] = lrs[source]
            opt.step()
        return value

    def _build_optimizers(self) -> None:
        c, groups = self.t.config, self.t.optimizer.param_groups
        sparse_groups, dense_groups, sparse_src, dense_src = [], [], [], []
        for k, g in enumerate(groups):
            sp_params = [p for p in g["params"] if p.grad is not None and p.grad.is_sparse]
            dn_params = [p for p in g["params"] if not (p.grad is not None and p.grad.is_sparse)]
            if sp_params:
                sparse_groups.append({"params": sp_params, "lr": g["lr"]})
                sparse_src.append(k)
            if dn_params:
                dense_groups.append({"params": dn_params, "lr": g["lr"]})
                dense_src.append(k)
        self.optimizers = []
        if sparse_groups:
            sparse = (torch.optim.SGD(sparse_groups, lr=c.lr) if c.optimizer == "sgd"
                      else torch.optim.SparseAdam(sparse_groups, lr=c.lr))
            self.optimizers.append(sparse)
            self.group_of_opt[id(sparse)] = sparse_src
            self.updates = "sparse"
            if c.weight_decay:
                self.notes.append("weight decay is not applied to sparsely updated embedding rows")
        if dense_groups:
            dense = _dense_optimizer(dense_groups, c)
            self.optimizers.append(dense)
            self.group_of_opt[id(dense)] = dense_src


def _dense_optimizer(groups: list[dict], c) -> torch.optim.Optimizer:
    if c.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay)
    return torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay)
