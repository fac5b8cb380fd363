"""One training run end to end: data -> split -> model -> trainer -> run directory (used by `rectune train`)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from recsys_core.data.clean import CleaningOptions
from recsys_core.data.dataset import Dataset, load_dataset
from recsys_core.data.splits import Split, make_split
from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.eval.evaluator import evaluate
from recsys_core.models import BASELINES, FAMILIES, build_model, family_class
from recsys_core.models.base import FittedRecommender
from recsys_core.models.neural import NeuralRecommender, TrainData
from recsys_core.runs.atomic import (atomic_write_dir, atomic_write_json, existing_dir, read_json, verify_manifest,
                                    write_manifest)
from recsys_core.runs.index import RunIndex
from recsys_core.runs.rundir import RunDir, new_run_id, runs_root
from recsys_core.train.device import device_name, pick_device, seed_everything
from recsys_core.train.distributed import SINGLE, Dist
from recsys_core.train.trainer import Callback, FitOutcome, Trainer, TrainerConfig, TrainingFailed

Progress = Callable[[str], None]


# ---------------------------------------------------------------- configuration

def make_run_config(data: str, family: str, model: dict | None = None, train: dict | None = None,
                    data_options: dict | None = None, split: str = "leave-last-out", seed: int = 0,
                    device: str = "auto", base: str = "none", strategy: dict | str | None = None) -> dict:
    """Everything needed to reproduce a run, validated now so a bad option fails before any work."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown model {family!r}; choose from {', '.join(FAMILIES)}")
    cls = family_class(family)
    from recsys_core.bases import model_config_for, resolve_base
    from recsys_core.strategies import parse_strategy

    chosen, strategy_cfg = parse_strategy(strategy)
    base_obj = resolve_base(base)
    if family in BASELINES:
        if base_obj.kind != "none" or chosen.name != "scratch":
            raise ConfigError(f"{family} is fitted in closed form: it takes no base and no fine-tuning strategy")
        model_cfg = cls.config_class.from_dict(model or {}).as_dict()
    else:
        # a run base fixes the architecture; the strategy may switch e.g. the text encoder to trainable
        implied = model_config_for(base_obj, family, chosen.model_overrides(family, base_obj, strategy_cfg))
        model_cfg = cls.config_class.from_dict({**implied, **(model or {})}).as_dict()
    train_cfg = {**getattr(cls, "default_train", {}), **(train or {})}
    train_cfg.setdefault("seed", seed)
    train_cfg = TrainerConfig.from_dict(train_cfg).as_dict()
    strategy = {"name": chosen.name, **strategy_cfg.as_dict()}
    if base_obj.kind == "run" and base_obj.path is not None:
        base = f"run:{base_obj.path}"  # an absolute reference keeps the config reproducible from anywhere
    data_path = data if data == "demo" else str(Path(data).expanduser().resolve())
    return {"version": 1, "data": {"path": data_path, **(data_options or {})}, "split": {"name": split, "seed": seed},
            "model": {"family": family, **model_cfg}, "train": train_cfg, "base": base, "strategy": strategy,
            "seed": seed, "device": device}


def load_config_file(path: str | Path) -> dict:
    """A JSON file with any of the keys model, train, data, split, base, strategy."""
    try:
        cfg = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: the config must be a JSON object")
    return cfg


def dataset_from_config(config: dict) -> Dataset:
    d = dict(config["data"])
    cleaning = CleaningOptions(**{k: d.pop(k) for k in list(d) if k in CleaningOptions.__dataclass_fields__})
    return load_dataset(d.pop("path"), columns=d.get("columns"), sep=d.get("sep"),
                        header=False if d.get("no_header") else None, items_path=d.get("items"), cleaning=cleaning,
                        name=d.get("name"))


def split_from_config(ds: Dataset, config: dict) -> Split:
    return make_split(ds, config["split"]["name"], seed=config["split"].get("seed", 0))


# ---------------------------------------------------------------- callbacks

class CheckpointFailed(TrainingFailed):
    """The run directory could not be written (disk full, permissions); earlier checkpoints are untouched."""


class RunLogger(Callback):
    """Writes metrics.jsonl, heartbeats status.json, checkpoints each epoch, and mirrors progress to stderr."""

    def __init__(self, run: RunDir, progress: Progress | None = None) -> None:
        self.run = run
        self.progress = progress
        self.last_status = 0.0

    def on_step_end(self, trainer: Trainer, info: dict) -> None:
        with self._writing(trainer, "the metrics log"):
            self.run.append_metrics({"type": "step", "time": time.time(), **info})
            if time.time() - self.last_status > 2:
                self.run.write_status(epoch=info["epoch"], step=info["step"], total_steps=info["total_steps"],
                                      loss=info["loss"], throughput=info["throughput"])
                self.last_status = time.time()

    def on_eval_end(self, trainer: Trainer, metrics: dict) -> None:
        with self._writing(trainer, "the metrics log"):
            self.run.append_metrics({"type": "eval", "time": time.time(), **metrics})
        if self.progress:
            v = metrics["valid"]
            self.progress(f"epoch {metrics['epoch']}: valid ndcg@10 {v['ndcg@10']:.4f} hr@10 {v['hr@10']:.4f} "
                          f"(best epoch {metrics['best_epoch']})")

    def on_epoch_end(self, trainer: Trainer) -> None:
        with self._writing(trainer, f"the checkpoint of epoch {trainer.epoch}"):
            save_checkpoint(self.run, trainer)

    @contextlib.contextmanager
    def _writing(self, trainer: Trainer, what: str):
        """A failed write (disk full, permissions) ends the run in words, naming the checkpoint that survives."""
        try:
            yield
        except OSError as exc:
            kept = existing_dir(self.run.checkpoint_dir)
            earlier = (f"the checkpoint of epoch {json.loads((kept / 'loop.json').read_text())['epoch']} is intact"
                       if kept is not None and (kept / "loop.json").exists() else "there is no earlier checkpoint")
            raise CheckpointFailed(f"could not write {what} ({exc.strerror or exc}); {earlier}; "
                                   f"free space and resume with: rectune train --resume {self.run.path}") from None


def save_checkpoint(run: RunDir, trainer: Trainer) -> None:
    """checkpoints/last: model + best weights (safetensors), optimizer/RNG state (weights-only torch), loop state.

    The one before it moves to checkpoints/previous, and a manifest of checksums goes with each, so a
    damaged last checkpoint is detected and the previous one used.
    """
    from safetensors.torch import save_file

    def fill(tmp: Path) -> None:
        save_file(_plain(trainer.model.state_dict()), str(tmp / "model.safetensors"))
        if trainer.best_state is not None:
            save_file(_plain(trainer.best_state), str(tmp / "best.safetensors"))
        torch.save(trainer.tensor_state(), tmp / "trainer.pt")
        (tmp / "loop.json").write_text(json.dumps(trainer.loop_state()))
        write_manifest(tmp)

    atomic_write_dir(run.checkpoint_dir, fill, keep_previous=run.checkpoint_dir.with_name("previous"))


def _plain(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def load_checkpoint(run: RunDir, trainer: Trainer, keep_best: bool = True, say: Progress | None = None) -> bool:
    """Restore the trainer from checkpoints/last, or from checkpoints/previous if the last is damaged.

    False if there is no checkpoint at all; a RecTuneError (nothing deleted) if every one is damaged.
    """
    candidates = [d for d in (existing_dir(run.checkpoint_dir), run.checkpoint_dir.with_name("previous"))
                  if d is not None and d.exists() and (d / "loop.json").exists()]
    if not candidates:
        return False
    problems = []
    for directory in candidates:
        try:
            model_state, best, tensors, loop = _read_checkpoint(directory)
        except RecTuneError as exc:
            problems.append(str(exc))
            continue
        if problems and say:
            say(f"{problems[0]}; using the previous checkpoint (epoch {loop['epoch']}) instead")
        trainer.restore(loop, tensors, {k: v.to(trainer.device) for k, v in model_state.items()},
                        {k: v.to(trainer.device) for k, v in best.items()} if best and keep_best else None)
        return True
    raise RecTuneError("no usable checkpoint: " + "; ".join(problems) + " (nothing was deleted)")


def _read_checkpoint(directory: Path):
    from safetensors.torch import load_file

    damage = verify_manifest(directory)
    if damage:
        raise RecTuneError(f"{directory}: the checkpoint is damaged ({damage})")
    try:
        model_state = load_file(str(directory / "model.safetensors"))
        best = load_file(str(directory / "best.safetensors")) if (directory / "best.safetensors").exists() else None
        tensors = torch.load(directory / "trainer.pt", weights_only=True, map_location="cpu")
        loop = json.loads((directory / "loop.json").read_text())
    except Exception as exc:
        raise RecTuneError(f"{directory}: the checkpoint is corrupt and cannot be resumed "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    return model_state, best, tensors, loop


# ---------------------------------------------------------------- the run

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


def start_run(config: dict, run_dir: str | Path | None = None) -> RunDir:
    run = RunDir(run_dir or runs_root() / new_run_id(config["model"]["family"]))
    if run.exists() and run.read_status().get("state") not in (None, "queued"):
        raise ConfigError(f"{run.path} already holds a run; use --resume to continue it or pick another --run-dir")
    run.write_config(config)
    return run


def execute_run(run: RunDir, resume: bool = False, progress: Progress | None = None, dist: Dist = SINGLE) -> RunResult:
    """Train (or resume) the run in `run`; never raises for training failures: they end as status 'failed'.

    Under torchrun (`dist.enabled`) every rank trains its shard; only rank 0 writes to the run directory.
    """
    config = run.read_config()
    if not dist.is_main:
        return _execute_worker_rank(run, config, resume, dist)
    index = RunIndex(run.path.parent)
    device = _device_for(config, dist)
    seed_everything(config.get("seed", 0))
    run.stop_path.unlink(missing_ok=True)
    extra = {"world_size": dist.world, "backend": dist.backend} if dist.enabled else {}
    run.write_status("running", pid=os.getpid(), device=device_name(device), error=None, resumed=resume, **extra)
    index.upsert(run)
    say = progress or (lambda m: None)
    try:
        ds = dataset_from_config(config)
        split = split_from_config(ds, config)
        family = config["model"]["family"]
        model_cfg = {k: v for k, v in config["model"].items() if k != "family"}
        say(f"{family}: {len(split.train):,} training interactions, {split.n_users:,} users, {split.n_items:,} items "
            f"on {device_name(device)}")
        if family in BASELINES:
            if dist.enabled:
                raise ConfigError(f"{family} is fitted in closed form: there is nothing to distribute (drop --nproc)")
            model = build_model(family, split.n_users, split.n_items, model_cfg)
            result = _fit_closed_form(run, model, split, ds, say)
        else:
            result = _train_neural(run, family, model_cfg, ds, split, config, device, resume, say, dist)
    except TrainingFailed as exc:
        run.write_status("failed", error=str(exc))
        index.upsert(run)
        return RunResult(run, "failed", device_name(device), {}, {}, 0.0, 0, 0, error=str(exc))
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


def _device_for(config: dict, dist: Dist) -> torch.device:
    """The configured device; under DDP on GPUs, this rank's own GPU."""
    device = pick_device(config.get("device", "auto"))
    if dist.enabled and device.type == "cuda":
        return torch.device("cuda", dist.local_rank)
    return device


def _execute_worker_rank(run: RunDir, config: dict, resume: bool, dist: Dist) -> RunResult:
    """A rank other than 0: the same data, model and plan, its shard of the batches, no writes."""
    device = _device_for(config, dist)
    seed_everything(config.get("seed", 0))
    ds = dataset_from_config(config)
    split = split_from_config(ds, config)
    family = config["model"]["family"]
    if family in BASELINES:
        raise ConfigError(f"{family} is fitted in closed form: there is nothing to distribute (drop --nproc)")
    model_cfg = {k: v for k, v in config["model"].items() if k != "family"}
    try:
        result = _train_neural(run, family, model_cfg, ds, split, config, device, resume, lambda m: None, dist)
    except TrainingFailed as exc:  # rank 0 records the failure; every rank sees the same NaN
        return RunResult(run, "failed", device_name(device), {}, {}, 0.0, 0, 0, error=str(exc))
    return result


def _fit_closed_form(run: RunDir, model: FittedRecommender, split: Split, ds: Dataset, say: Progress) -> RunResult:
    start = time.perf_counter()
    if hasattr(model, "fit_tuned"):
        model.fit_tuned(split.train_history, lambda m: evaluate(m, split, "valid").metrics["ndcg@10"], progress=say)
    else:
        model.fit(split.train_history)
    seconds = time.perf_counter() - start
    n_params = int(sum(t.numel() for t in _tensors_of(model)))
    return _finish(run, model, split, ds, "finished", "fitted in closed form", seconds, (0, n_params), say)


def _tensors_of(model: FittedRecommender) -> list[torch.Tensor]:
    return [v for v in vars(model).values() if torch.is_tensor(v)]


def _train_neural(run: RunDir, family: str, model_cfg: dict, ds: Dataset, split: Split, config: dict,
                  device: torch.device, resume: bool, say: Progress, dist: Dist = SINGLE) -> RunResult:
    from recsys_core.bases import resolve_base
    from recsys_core.strategies import parse_strategy
    from recsys_core.train.finetune import prepare, train_prepared

    base = resolve_base(config.get("base", "none"))
    strategy, strategy_cfg = parse_strategy(config.get("strategy"))
    history = split.train_history
    new_rows = _new_rows(base, split) if strategy.name == "incremental" else None
    item_texts = ds.item_texts() if ds.item_table is not None else None
    prepared = prepare(family, model_cfg, base, strategy, strategy_cfg, history, ds.users.ids, ds.items.ids,
                       item_texts, new_rows=new_rows, seed=config.get("seed", 0),
                       optimizer=config["train"].get("optimizer", "adam"))
    summary = prepared.summary()
    if dist.is_main:
        atomic_write_json(run.path / "plan.json", summary)
    say(f"base {base.spec}, strategy {strategy.name}: {summary['trainable_params']:,} of {summary['total_params']:,} "
        f"parameters train ({summary['trainable_share']:.1%})" + "".join(f"; {n}" for n in prepared.notes))
    callbacks = [RunLogger(run, say)] if dist.is_main else []
    trainer_cfg = TrainerConfig.from_dict(config["train"])
    if resume:
        outcome_model, outcome, trainer = _resume(run, prepared, split, trainer_cfg, device, item_texts, callbacks, say, dist)
    else:
        outcome_model, outcome, trainer = train_prepared(prepared, split, trainer_cfg, device, item_texts, callbacks,
                                                         StopSignal(run), dist=dist, return_trainer=True)
    if dist.enabled:
        _record_ranks(run, trainer, dist)
        if not dist.is_main:
            return RunResult(run, outcome.status, device_name(device), {}, {}, outcome.seconds,
                             summary["trainable_params"], summary["total_params"])
    say(f"{outcome.status}: {outcome.reason}; best validation ndcg@10 {outcome.best_metric:.4f} at epoch {outcome.best_epoch}")
    return _finish(run, outcome_model, split, ds, outcome.status, outcome.reason, outcome.seconds,
                   (summary["trainable_params"], summary["total_params"]), say, epochs=outcome.epochs,
                   steps=outcome.steps, base=base.spec, strategy=strategy.name)


def _record_ranks(run: RunDir, trainer: Trainer, dist: Dist) -> None:
    """distributed.json: world size, backend and each rank's weight digest after the last step (they must agree)."""
    from recsys_core.train import distributed

    mine = {"rank": dist.rank, "weights_sha256": trainer.final_digest, "steps": trainer.step,
            "steps_per_epoch": trainer.steps_per_epoch, "device": str(trainer.device)}
    ranks = distributed.gather(mine, dist)
    if dist.is_main:
        digests = {r["weights_sha256"] for r in ranks}
        atomic_write_json(run.path / "distributed.json", {
            "world_size": dist.world, "backend": dist.backend, "ranks": ranks, "ranks_agree": len(digests) == 1,
            "batches_per_epoch": trainer.n_batches, "batch_size_per_rank": trainer.config.batch_size})


def _new_rows(base, split: Split):
    """Interactions newer than what the base was trained on (by timestamp); None when that cannot be told."""
    f = split.train
    if base.data_until is None or not f["timestamp"].notna().all():
        return None
    return f.loc[f["timestamp"] > base.data_until, "row"].to_numpy()


def _resume(run: RunDir, prepared, split: Split, trainer_cfg: TrainerConfig, device: torch.device, item_texts,
            callbacks: list, say: Progress, dist: Dist = SINGLE):
    """Continue from checkpoints/last with the same plan (same frozen parts, adapters and data)."""
    plan = prepared.plan
    data = TrainData(split.train_history, item_texts=item_texts if getattr(prepared.model, "needs_text", False) else None,
                     train_rows=plan.train_rows)
    trainer = Trainer(prepared.model, data, split, trainer_cfg, device, callbacks=callbacks, should_stop=StopSignal(run),
                      param_groups=plan.param_groups, extra_loss=plan.extra_loss, dist=dist)
    if load_checkpoint(run, trainer, keep_best=dist.is_main, say=say):
        say(f"resumed at epoch {trainer.epoch}, step {trainer.step}")
    else:
        say("no checkpoint yet: starting from the beginning")
        if dist.is_main:
            run.metrics_path.unlink(missing_ok=True)
    outcome = trainer.fit()
    model = plan.finish(prepared.model) if plan.finish is not None else prepared.model
    return model, outcome, trainer


def _finish(run: RunDir, model, split: Split, ds: Dataset, status: str, reason: str, seconds: float,
            params: tuple[int, int], say: Progress, **extra: Any) -> RunResult:
    """Evaluate the kept model on validation and test, save it, write eval.json and the final status."""
    say(f"ranking all {split.n_items:,} items for validation and test users")
    valid = evaluate(model, split, "valid", k=10)
    test = evaluate(model, split, "test", k=10)
    from recsys_core.bases import save_ids

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
    if hasattr(model, "classification_metrics"):
        say("classification metrics on validation positives vs sampled negatives")
        ev["classification"] = model.classification_metrics(split)
    atomic_write_json(run.eval_path, ev)
    test.per_user.to_csv(run.path / "per_user_test.csv", index=False)
    run.write_status(status, reason=reason, error=None)
    return RunResult(run, status, run.read_status().get("device", ""), valid.metrics, test.metrics, seconds, trainable, total)


def load_run_model(run: RunDir):
    """The trained model of a finished (or stopped) run, with its dataset and split rebuilt from config.json."""
    from recsys_core.models import load_recommender

    status = run.read_status()
    if not (run.model_dir / "model.json").exists():
        state = status.get("state", "unknown")
        raise RecTuneError(f"{run.path}: no trained model yet (run state: {state})")
    config = run.read_config()
    ds = dataset_from_config(config)
    split = split_from_config(ds, config)
    model = load_recommender(run.model_dir, item_texts=ds.item_texts())
    return model, ds, split


def read_eval(run: RunDir) -> dict:
    return read_json(run.eval_path, default={}) or {}


def config_file_for(config: dict) -> dict:
    """The `--config FILE` content that, with --data and --model, reproduces `config` exactly."""
    data = {k: v for k, v in config["data"].items() if k != "path"}
    return {"model": {k: v for k, v in config["model"].items() if k != "family"}, "train": config["train"],
            "data": data, "split": {"name": config["split"]["name"]}, "base": config.get("base", "none"),
            "strategy": config.get("strategy", {"name": "scratch"})}


def command_for(config: dict, config_path: str | Path = "setup.json") -> str:
    """The `rectune train` command line for a config saved with config_file_for at `config_path`."""
    import shlex

    parts = ["rectune", "train", "--data", config["data"]["path"], "--model", config["model"]["family"],
             "--config", str(config_path)]
    if config.get("seed", 0):
        parts += ["--seed", str(config["seed"])]
    if config.get("device", "auto") != "auto":
        parts += ["--device", config["device"]]
    return " ".join(shlex.quote(p) for p in parts)
