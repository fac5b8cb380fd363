"""`rectune evaluate`: full-ranking evaluation of a baseline fitted now, or of a trained run."""
from __future__ import annotations

import argparse

from recsys_core.cli.common import Progress, emit_json, source_from_args
from recsys_core.data.source import load_source
from recsys_core.errors import RecTuneError
from recsys_core.eval.evaluator import evaluate
from recsys_core.models import baseline_class
from recsys_core.pipeline import evaluate_baseline
from recsys_core.runs.finished import load_finished
from recsys_core.runs.spec import load_config_file
from recsys_core.storage.rundir import RunDir

SHOWN = ("ndcg", "recall", "hr", "mrr", "map", "precision", "coverage", "novelty", "arp")


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.run:
        return evaluate_run(args)
    if not args.data or not args.model:
        raise RecTuneError("evaluate needs --data DATA and --model pop|itemknn|ease (or --run RUN_DIR)")
    baseline_class(args.model)  # a clear error for a family that is not a baseline, before loading anything
    progress = Progress(not args.quiet)
    progress(f"loading {args.data}")
    ds = load_source(source_from_args(args, args.data), progress=progress)
    progress(f"{len(ds):,} interactions, {ds.n_users:,} users, {ds.n_items:,} items")
    model_config = load_config_file(args.config).get("model", {}) if args.config else None
    model, valid, test, info = evaluate_baseline(ds, args.model, k=args.k, split_name=args.split, seed=args.seed,
                                                 progress=progress, model_config=model_config)
    out = {**test.metrics, "split": info["split"]["name"], "model": args.model, "split_detail": info["split"],
           "params": info["params"], "valid": valid.metrics, "train_seconds": info["train_seconds"],
           "eval_seconds": info["eval_seconds"], "notes": info["notes"]}
    if args.json:
        emit_json(out)
        return 0
    print(f"{args.model} on {ds.name} — split {out['split']}: {info['split']['description']}")
    print(f"  {test.metrics['n_users']:,} test users, full ranking over {ds.n_items:,} items, K={args.k}")
    for note in info["notes"]:
        print(f"  note: {note}")
    _print_metrics(test.metrics, valid.metrics, args.k)
    print(f"  fit {info['train_seconds']:.1f}s, test ranking {info['eval_seconds']:.1f}s, params {info['params']}")
    return 0


def evaluate_run(args: argparse.Namespace) -> int:
    progress = Progress(not args.quiet)
    run = RunDir(args.run)
    progress(f"loading run {run.path}")
    finished = load_finished(run)
    valid = evaluate(finished.model, finished.split, "valid", k=args.k)
    test = evaluate(finished.model, finished.split, "test", k=args.k)
    out = {**test.metrics, "split": finished.split.name, "model": finished.family, "run_dir": str(run.path),
           "valid": valid.metrics, "eval_seconds": round(test.eval_seconds, 3)}
    if args.json:
        emit_json(out)
        return 0
    print(f"run {run.run_id} ({finished.family}) on {finished.ds.name}, split {finished.split.name}, K={args.k}")
    _print_metrics(test.metrics, valid.metrics, args.k)
    return 0


def _print_metrics(test: dict, valid: dict, k: int) -> None:
    for name in SHOWN:
        key = f"{name}@{k}"
        print(f"  {key:<14} test {test[key]:.4f}   valid {valid[key]:.4f}")
