"""What a training worker does besides training: log metrics, checkpoint, beat, and listen for a stop.

Everything here writes from the worker's side, so the studio and the CLI only ever read: the
heartbeat file says the worker is alive, status.json says how far it got, metrics.jsonl has the
curves, and a STOP file (or SIGTERM/SIGINT) asks it to stop at its next step.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Callable

from recsys_core.runs.checkpoints import checkpoint_epoch, save_checkpoint
from recsys_core.storage.rundir import RunDir
from recsys_core.train.trainer import Callback, Trainer, TrainingFailed

Progress = Callable[[str], None]
HEARTBEAT_SECONDS = 2.0


class CheckpointFailed(TrainingFailed):
    """The run directory could not be written (disk full, permissions); earlier checkpoints are untouched."""


#: seconds between progress lines on stderr inside an epoch
PROGRESS_SECONDS = 15.0


class RunLogger(Callback):
    """Writes metrics.jsonl, status.json progress, a checkpoint each epoch, and mirrors progress to stderr."""

    def __init__(self, run: RunDir, progress: Progress | None = None) -> None:
        self.run = run
        self.progress = progress
        self.last_status = 0.0
        self.last_said = time.time()

    def on_step_end(self, trainer: Trainer, info: dict) -> None:
        with self._writing("the metrics log"):
            self.run.append_metrics({"type": "step", "time": time.time(), **info})
            if time.time() - self.last_status > HEARTBEAT_SECONDS:
                self.run.write_status(epoch=info["epoch"], step=info["step"], total_steps=info["total_steps"],
                                      loss=info["loss"], throughput=info["throughput"])
                self.last_status = time.time()
        if self.progress and time.time() - self.last_said > PROGRESS_SECONDS:  # long epochs say how far they are
            self.progress(f"epoch {info['epoch']}: step {info['step']:,} of {info['total_steps']:,}, "
                          f"loss {info['loss']:.4f}, {info['throughput']:,.0f} samples/s")
            self.last_said = time.time()

    def on_eval_end(self, trainer: Trainer, metrics: dict) -> None:
        with self._writing("the metrics log"):
            self.run.append_metrics({"type": "eval", "time": time.time(), **metrics})
        if self.progress:
            v = metrics["valid"]
            self.progress(f"epoch {metrics['epoch']}: valid ndcg@10 {v['ndcg@10']:.4f} hr@10 {v['hr@10']:.4f} "
                          f"(best epoch {metrics['best_epoch']})")

    def on_epoch_end(self, trainer: Trainer) -> None:
        with self._writing(f"the checkpoint of epoch {trainer.epoch}"):
            save_checkpoint(self.run, trainer)

    @contextlib.contextmanager
    def _writing(self, what: str):
        """A failed write (disk full, permissions) ends the run in words, naming the checkpoint that survives."""
        try:
            yield
        except OSError as exc:
            epoch = checkpoint_epoch(self.run)
            earlier = f"the checkpoint of epoch {epoch} is intact" if epoch is not None else "there is no earlier checkpoint"
            raise CheckpointFailed(f"could not write {what} ({exc.strerror or exc}); {earlier}; "
                                   f"free space and resume with: rectune train --resume {self.run.path}") from None


class StopSignal:
    """A stop flag set by the STOP file or by SIGTERM/SIGINT, checked by the trainer every step."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.flag = False
        self._last_check = 0.0
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass

    def _handle(self, signum, frame) -> None:
        self.flag = True

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.flag and now - self._last_check > 0.2:  # a stat() per step would be wasteful
            self._last_check = now
            self.flag = self.run.stop_requested()
        return self.flag


@contextlib.contextmanager
def heartbeat(run: RunDir, every: float = HEARTBEAT_SECONDS):
    """Touch the run's heartbeat file every `every` seconds while the block runs (loading, training, evaluating).

    Readers judge a worker on another host (where its pid means nothing) by this file's age.
    """
    done = threading.Event()

    def beat() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):  # a full disk must not kill the worker from this thread
                run.beat()
            done.wait(every)

    thread = threading.Thread(target=beat, name="rectune-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(every + 1)
