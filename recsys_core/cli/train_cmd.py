"""`rectune train`: build a run spec from flags, or run a directory's spec, or resume a run.

Every way in ends the same: a run directory holding a config.json (a RunSpec), executed as it is.
- `--data DATA --model MODEL [...]`: the flags (and --config FILE) make a spec, saved once into
  --run-dir (default runs/<run id>), then run.
- `--run-dir DIR` alone: DIR's config.json runs exactly as written (the studio and the experiments
  launch workers this way).
- `--resume DIR`: continue from DIR's last checkpoint.
"""
from __future__ import annotations

import argparse
import subprocess

from recsys_core.cli.common import Progress, data_flags_given, emit_json, source_from_args
from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.runs.execute import RunResult, execute_run
from recsys_core.runs.spec import RunSpec, load_config_file
from recsys_core.storage.rundir import RunDir, new_run_id, runs_root
from recsys_core.train import distributed
from recsys_core.train.distributed import Dist

SPEC_FLAGS = {"base": "--base", "strategy": "--strategy", "config": "--config", "epochs": "--epochs",
              "batch_size": "--batch-size", "lr": "--lr", "async_workers": "--async-workers"}


def cmd_train(args: argparse.Namespace) -> int:
    if args.nproc > 1 and not distributed.launched_by_torchrun():
        # torchrun starts N copies of this command (without --nproc); its exit status is ours
        return subprocess.call(distributed.torchrun_command(args.nproc, distributed.strip_nproc(args.argv)))
    dist, _ = distributed.init_from_env(args.device)
    try:
        return _train(args, dist)
    finally:
        distributed.shutdown()


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The spec that --data, --model, --config FILE and the other flags describe (flags win over the file)."""
    if not args.data or not args.model:
        raise RecTuneError("train needs --data DATA and --model MODEL, or --run-dir DIR holding a config.json, "
                           "or --resume RUN_DIR")
    file_cfg = load_config_file(args.config) if args.config else {}
    train = dict(file_cfg.get("train", {}))
    for key in ("epochs", "batch_size", "lr", "async_workers"):
        if getattr(args, key) is not None:
            train[key] = getattr(args, key)
    return RunSpec.create(source_from_args(args, args.data, file_cfg.get("data")), args.model,
                          model=file_cfg.get("model"), train=train, base=args.base or file_cfg.get("base", "none"),
                          strategy=args.strategy or file_cfg.get("strategy"),
                          split=file_cfg.get("split", {}).get("name", "leave-last-out"), seed=args.seed,
                          device=args.device)


def _fresh(run: RunDir) -> RunDir:
    if run.read_status().get("state") not in (None, "queued"):
        raise ConfigError(f"{run.path} already holds a run; use --resume to continue it or pick another --run-dir")
    return run


def _run_as_written(args: argparse.Namespace) -> RunDir:
    """--run-dir DIR alone: DIR's spec, checked now; flags that would change it are refused, not ignored."""
    run = RunDir(args.run_dir)
    if not run.exists():
        raise RecTuneError(f"{run.path} holds no config.json; give --data and --model to start a run there")
    extra = [flag for attr, flag in SPEC_FLAGS.items() if getattr(args, attr) is not None] + data_flags_given(args)
    extra += ["--seed"] * (args.seed != 0) + ["--device"] * (args.device != "auto")
    if extra:
        raise ConfigError(f"{run.path}/config.json fixes the run; drop {', '.join(extra)} (or start a new run "
                          "with --data and --model)")
    RunSpec.load(run.path)  # a clear error for a damaged or foreign config.json before the worker starts
    return _fresh(run)


def _prepare_run(args: argparse.Namespace, dist: Dist, progress: Progress) -> RunDir:
    """Rank 0 decides the run directory (writing its spec if new) and tells the other ranks."""
    if not dist.is_main:
        return RunDir(distributed.broadcast(None, dist))
    if args.data or args.model:
        spec = spec_from_args(args)
        run = _fresh(RunDir(args.run_dir or runs_root() / new_run_id(spec.family)))
        spec.save(run.path)
    elif args.run_dir:
        run = _run_as_written(args)
    else:
        spec_from_args(args)  # raises the usage message
    progress(f"run directory {run.path}")
    distributed.broadcast(str(run.path), dist)
    return run


def _train(args: argparse.Namespace, dist: Dist) -> int:
    progress = Progress(not args.quiet and dist.is_main)
    if args.resume:
        run = RunDir(args.resume)
        run.read_config()  # a clear error if this is not a run directory
        progress(f"resuming {run.path}")
        result = execute_run(run, resume=True, progress=progress, dist=dist)
    else:
        result = execute_run(_prepare_run(args, dist, progress), progress=progress, dist=dist)
    ok = 0 if result.status in ("finished", "stopped") else 1
    if dist.is_main:
        _report(result, args.json)
    return ok


def _report(result: RunResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.as_json())
        return
    print(f"{result.status}: {result.run.path}")
    if result.error:
        print(f"  reason: {result.error}")
    else:
        print(f"  test ndcg@10 {result.test['ndcg@10']:.4f}  hr@10 {result.test['hr@10']:.4f}  "
              f"valid ndcg@10 {result.valid['ndcg@10']:.4f}  ({result.train_seconds:.1f}s on {result.device})")
