"""`rectune experiment transfer|incremental`, `rectune bases`, `rectune strategies`."""
from __future__ import annotations

import argparse
import sys

from recsys_core.bases import available_bases
from recsys_core.cli.common import Progress, emit_json, source_from_args
from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.experiments.common import STRATEGY_ORDER, ExperimentOptions
from recsys_core.experiments.job import ExperimentSpec, execute_job, run_experiment
from recsys_core.data.source import load_source
from recsys_core.experiments.prequential import prequential_table, run_prequential
from recsys_core.experiments.report import experiment_table, experiments_dir, save_experiment
from recsys_core.runs.spec import load_config_file
from recsys_core.storage.rundir import RunDir
from recsys_core.strategies import STRATEGIES


def spec_from_args(args: argparse.Namespace) -> ExperimentSpec:
    if not args.kind or not args.data:
        raise RecTuneError("experiment needs KIND (transfer or incremental) and --data DATA, "
                           "or --job-dir DIR holding an experiment.json")
    file_cfg = load_config_file(args.config) if args.config else {}
    if "tune" in file_cfg:
        raise ConfigError("every arm of an experiment trains under one budget: put training settings in the "
                          "'train' section (the 'tune' section is gone)")
    train = dict(file_cfg.get("train", {}))
    if args.epochs is not None:
        train["epochs"] = args.epochs
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip()) if args.strategies else None
    return ExperimentSpec(args.kind, source_from_args(args, args.data), args.model,
                          strategies=strategies or STRATEGY_ORDER, shots=args.shots, windows=args.windows, train=train,
                          model=file_cfg.get("model", {}), strategy_options=file_cfg.get("strategies", {}),
                          similar_by=args.similar_by, seed=args.seed, device=args.device)


def cmd_prequential(args: argparse.Namespace, progress: Progress) -> int:
    """`rectune experiment prequential`: replay the last 40% in time, scoring each event before learning from it."""
    if args.job_dir:
        raise ConfigError("the prequential replay runs in the foreground (the studio's Live page replays as a job)")
    if not args.data:
        raise RecTuneError("experiment prequential needs --data DATA")
    file_cfg = load_config_file(args.config) if args.config else {}
    train = {**file_cfg.get("train", {}), **({"epochs": args.epochs} if args.epochs is not None else {})}
    options = ExperimentOptions(family=args.model, model=file_cfg.get("model", {}), train=train,
                                strategy_options=file_cfg.get("strategies", {}), seed=args.seed, device=args.device)
    source = source_from_args(args, args.data)
    ds = load_source(source)
    result = run_prequential(ds, options, updates=args.updates, retrain_every=args.retrain_every, progress=progress)
    result["data"], result["dataset"] = source.path, ds.name
    progress(f"saved {save_experiment(result, experiments_dir(args.out) / 'prequential')}")
    emit_json(result) if args.json else print(prequential_table(result))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    progress = Progress(not args.quiet)
    if args.kind == "prequential":
        return cmd_prequential(args, progress)
    if args.job_dir and not args.kind:
        job = RunDir(args.job_dir)
        progress(f"running the experiment saved in {job.path}")
        result = execute_job(job, progress)
        if result is None:
            print(f"stopped: {job.path}", file=sys.stderr)
            return 0
    elif args.job_dir:
        result = execute_job(spec_from_args(args).save(args.job_dir), progress)
        if result is None:
            return 0
    else:
        result = run_experiment(spec_from_args(args), progress)
        progress(f"saved {save_experiment(result, args.out)}")
    if args.json:
        emit_json(result)
    else:
        print(experiment_table(result))
    return 0


def cmd_bases(args: argparse.Namespace) -> int:
    bases = available_bases(args.root)
    if args.json:
        emit_json({"bases": [b.describe() for b in bases]})
        return 0
    for b in bases:
        print(f"{b.spec:<40} {b.title}\n{'':<40} offers: {', '.join(b.offers) or '-'}; families: {', '.join(b.families)}")
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    described = [s.describe() for s in STRATEGIES.values()]
    if args.json:
        emit_json({"strategies": [{**d, "options": [{**o, "type": getattr(o["type"], "__name__", str(o["type"]))}
                                                    for o in d["options"]]} for d in described]})
        return 0
    for d in described:
        print(f"{d['name']}: {d['title']}\n  {d['summary']}")
        for o in d["options"]:
            print(f"    {o['name']} (default {o['default']!r}): {o['help']}")
    return 0
