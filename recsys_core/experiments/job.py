"""An experiment as a background job: its spec saved once in a job directory, run by a worker process.

The studio's Experiments page saves an `ExperimentSpec` as experiment.json in a new job directory and
starts `rectune experiment --job-dir DIR` through the same launcher as training. The worker beats a
heartbeat, writes its status and one event per arm epoch to metrics.jsonl (the live per-arm view),
listens for a STOP file, and ends with result.json (also saved among the experiments).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recsys_core.data.source import DataSource, load_source
from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.experiments.common import STRATEGY_ORDER, ExperimentOptions, ExperimentStopped
from recsys_core.experiments.incremental import run_incremental
from recsys_core.experiments.report import experiments_dir, save_experiment
from recsys_core.experiments.transfer import run_transfer
from recsys_core.models import family_class
from recsys_core.runs.launcher import spawn
from recsys_core.runs.worker import StopSignal, heartbeat
from recsys_core.storage.atomic import atomic_write_json, read_json
from recsys_core.storage.rundir import RunDir, new_run_id

KINDS = ("transfer", "incremental")
SPEC_FILE, RESULT_FILE = "experiment.json", "result.json"


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything an experiment needs: which one, on what data, which model and arms, and the one budget."""

    kind: str = field(metadata={"help": "transfer (new users) or incremental (new time windows)", "choices": KINDS})
    data: DataSource = field(default_factory=DataSource)
    family: str = field(default="sasrec", metadata={"help": "a trainable model family"})
    strategies: tuple[str, ...] = STRATEGY_ORDER
    shots: int = field(default=10, metadata={"help": "transfer: interactions each new user gives", "min": 1})
    windows: int = field(default=3, metadata={"help": "incremental: windows the last 40% of time is cut into",
                                              "min": 2})
    train: dict = field(default_factory=dict)  # the budget every arm shares (epochs, patience, min_epochs, ...)
    model: dict = field(default_factory=dict)
    strategy_options: dict = field(default_factory=dict)
    similar_by: str = "interactions"
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"experiment must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not family_class(self.family).trainable:
            raise ConfigError(f"the {self.kind} experiment needs a trainable family; {self.family} is fitted in closed form",
                              field="family")
        object.__setattr__(self, "strategies", tuple(self.strategies))
        self.options()  # the budget and options are checked now, before any worker starts

    def options(self, listener: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> ExperimentOptions:
        options = ExperimentOptions(family=self.family, model=dict(self.model), train=dict(self.train),
                                    strategies=self.strategies, strategy_options=dict(self.strategy_options),
                                    similar_by=self.similar_by, seed=self.seed, device=self.device,
                                    listener=listener, should_stop=should_stop)
        options.trainer()
        return options

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data"], out["strategies"] = self.data.as_dict(), list(self.strategies)
        return out

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "ExperimentSpec":
        values = dict(values)
        values["data"] = DataSource.from_dict(values.get("data"))
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"experiment: unknown option(s) {', '.join(unknown)}")
        return cls(**values)

    def save(self, directory: str | Path) -> RunDir:
        job = RunDir(directory)
        if (job.path / SPEC_FILE).exists():
            raise ConfigError(f"{job.path} already holds an experiment; pick another job directory")
        atomic_write_json(job.path / SPEC_FILE, self.to_json())
        return job


def jobs_root() -> Path:
    return experiments_dir() / "jobs"


def new_job(spec: ExperimentSpec, root: str | Path | None = None) -> RunDir:
    """Save the spec in a new job directory and start its worker; returns the job directory at once."""
    job = spec.save(Path(root or jobs_root()) / new_run_id(f"{spec.kind}-{spec.family}"))
    spawn(["experiment", "--job-dir", str(job.path)], job)
    return job


def load_spec(job: RunDir) -> ExperimentSpec:
    values = read_json(job.path / SPEC_FILE)
    if values is None:
        raise RecTuneError(f"{job.path}: not an experiment job ({SPEC_FILE} missing or unreadable)")
    return ExperimentSpec.from_json(values)


def run_experiment(spec: ExperimentSpec, progress: Callable[[str], None] | None = None,
                   listener: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Load the data and run the experiment the spec names; the result dict of DESIGN.md's contract."""
    ds = load_source(spec.data)
    if progress:
        progress(f"{ds.name}: {len(ds):,} interactions, {ds.n_users:,} users, {ds.n_items:,} items")
    options = spec.options(listener, should_stop)
    if spec.kind == "transfer":
        result = run_transfer(ds, options, shots=spec.shots, progress=progress)
    else:
        result = run_incremental(ds, options, windows=spec.windows, progress=progress)
    result["data"], result["dataset"], result["spec"] = spec.data.path, ds.name, spec.to_json()
    return result


def execute_job(job: RunDir, progress: Callable[[str], None] | None = None) -> dict | None:
    """Run the job's experiment in this process, recording status, per-arm events and the result."""
    spec = load_spec(job)
    job.stop_path.unlink(missing_ok=True)
    job.write_status("running", pid=os.getpid(), error=None, started=time.time())

    def listener(event: dict) -> None:
        job.append_metrics({"time": time.time(), **event})

    try:
        with heartbeat(job):
            result = run_experiment(spec, progress, listener, StopSignal(job))
    except ExperimentStopped:
        job.write_status("stopped", reason="stop requested")
        return None
    except RecTuneError as exc:
        job.write_status("failed", error=str(exc))
        raise
    except Exception as exc:
        job.write_status("failed", error=f"internal error: {type(exc).__name__}: {exc}")
        raise
    atomic_write_json(job.path / RESULT_FILE, result)
    saved = save_experiment(result)
    job.write_status("finished", reason="done", saved=str(saved))
    return result


def job_result(job: RunDir) -> dict | None:
    return read_json(job.path / RESULT_FILE)
