"""`rectune experiment transfer|incremental`, `rectune bases`, `rectune strategies`."""
from __future__ import annotations

import argparse

from recsys_core.bases import available_bases
from recsys_core.cli.common import Progress, emit_json, source_from_args
from recsys_core.data.source import load_source
from recsys_core.errors import ConfigError
from recsys_core.experiments.common import ExperimentOptions
from recsys_core.experiments.incremental import run_incremental
from recsys_core.experiments.report import experiment_table, save_experiment
from recsys_core.experiments.transfer import run_transfer
from recsys_core.runs.spec import load_config_file
from recsys_core.strategies import STRATEGIES


def options_from_args(args: argparse.Namespace) -> ExperimentOptions:
    file_cfg = load_config_file(args.config) if args.config else {}
    if "tune" in file_cfg:
        raise ConfigError("every arm of an experiment trains under one budget: put training settings in the "
                          "'train' section (the 'tune' section is gone)")
    train = dict(file_cfg.get("train", {}))
    if args.epochs is not None:
        train["epochs"] = args.epochs
    options = ExperimentOptions(family=args.model, model=file_cfg.get("model", {}), train=train,
                                strategy_options=file_cfg.get("strategies", {}),
                                seed=args.seed, device=args.device, similar_by=args.similar_by)
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip()) if args.strategies else None
    if strategies:
        options.strategies = strategies
    return options


def cmd_experiment(args: argparse.Namespace) -> int:
    progress = Progress(not args.quiet)
    options = options_from_args(args)
    ds = load_source(source_from_args(args, args.data))
    progress(f"{ds.name}: {len(ds):,} interactions, {ds.n_users:,} users, {ds.n_items:,} items")
    if args.kind == "transfer":
        result = run_transfer(ds, options, shots=args.shots, progress=progress)
    else:
        result = run_incremental(ds, options, windows=args.windows, progress=progress)
    result["data"], result["dataset"] = args.data, ds.name
    path = save_experiment(result, args.out)
    progress(f"saved {path}")
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
