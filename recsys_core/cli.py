"""The `rectune` command (also `python -m recsys_core`). Contract: ../shared/DESIGN.md, "CLI contract".

With --json, stdout carries exactly one JSON object; progress goes to stderr. User errors print one
line on stderr and exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from recsys_core.errors import RecTuneError

Handler = Callable[[argparse.Namespace], int]


class Progress:
    """Stage messages on stderr, stamped with elapsed seconds; silent with --quiet."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--columns", help="role mapping, e.g. user=userId,item=movieId,rating=rating,timestamp=ts "
                                     "(0-based positions with --no-header)")
    p.add_argument("--sep", help="column separator (tab, comma, ';', '|', '::', ...); detected when omitted")
    p.add_argument("--no-header", action="store_true", help="the file has no header row")
    p.add_argument("--items", help="item text file (id + title/genres/description) joined by item id")
    p.add_argument("--min-rating", type=float, help="keep only interactions rated at least this")
    p.add_argument("--drop-invalid", action="store_true", help="drop rows with missing ids/ratings/timestamps (reported)")
    p.add_argument("--keep-duplicates", action="store_true", help="keep repeated (user, item) pairs (default keeps the last)")
    p.add_argument("--min-user-interactions", type=int, default=0, help="drop users with fewer interactions")
    p.add_argument("--min-item-interactions", type=int, default=0, help="drop items with fewer interactions")


def load_from_args(args: argparse.Namespace, data: str):
    from recsys_core.data.clean import CleaningOptions
    from recsys_core.data.dataset import load_dataset

    cleaning = CleaningOptions(drop_invalid=args.drop_invalid, dedupe="none" if args.keep_duplicates else "last",
                               min_rating=args.min_rating, min_user_interactions=args.min_user_interactions,
                               min_item_interactions=args.min_item_interactions)
    return load_dataset(data, columns=args.columns, sep=args.sep, header=False if args.no_header else None,
                        items_path=args.items, cleaning=cleaning)


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, default=_json_default))


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------- data report

def cmd_data_report(args: argparse.Namespace) -> int:
    from recsys_core.data.describe import describe

    progress = Progress(not args.quiet)
    progress(f"loading {args.data}")
    ds = load_from_args(args, args.data)
    info = describe(ds)
    if args.json:
        emit_json(info)
    else:
        print(render_report(info))
    return 0


def render_report(info: dict) -> str:
    lines = [f"Dataset {info['name']}",
             f"  interactions {info['interactions']:,}   users {info['users']:,}   items {info['items']:,}",
             f"  density {info['density']:.4%}   sparsity {info['sparsity']:.4%}"]
    ua, ip = info["user_activity"], info["item_popularity"]
    lines.append("  user activity (interactions per user): " + _dist(ua))
    lines.append("  item popularity (interactions per item): " + _dist(ip))
    lines.append(f"    gini {ip['gini']:.3f}; top 1% of items hold {ip['share_top_1pct_items']:.1%} of interactions, "
                 f"top 10% hold {ip['share_top_10pct_items']:.1%}; {ip['items_with_1_interaction']:,} items seen once")
    lines.append(f"  users with fewer than 3 interactions (train only): {info['users_below_3_interactions']:,}")
    if "time_span" in info:
        ts = info["time_span"]
        lines.append(f"  time span {ts['first'][:10]} .. {ts['last'][:10]} ({ts['days']:,} days)")
    else:
        lines.append("  no timestamps: evaluation uses a seeded random leave-one-out")
    if "ratings" in info:
        r = info["ratings"]
        counts = ", ".join(f"{k}: {v:,}" for k, v in list(r["counts"].items())[:12])
        lines.append(f"  ratings {r['min']:g}..{r['max']:g}, mean {r['mean']:.2f}; {counts}")
    rep = info.get("report")
    if rep:
        lines.append(f"Source {rep['source']} ({rep['raw_rows']:,} rows read)")
        lines.append("  columns: " + ", ".join(f"{k}={v}" for k, v in rep["mapping"].items() if v is not None))
        for note in rep["notes"]:
            lines.append(f"  note: {note}")
        lines.append("Cleaning")
        if not rep["cleaning"]:
            lines.append("  no cleaning steps applied")
        for step in rep["cleaning"]:
            lines.append(f"  {step['step']}: {step['rows_before']:,} -> {step['rows_after']:,} rows "
                         f"({step['removed']:,} removed: {step['reason']})")
        lines.append("Warnings" if rep["warnings"] else "Warnings: none")
        for w in rep["warnings"]:
            ex = f" (e.g. {', '.join(w['examples'])})" if w["examples"] else ""
            lines.append(f"  {w['message']}{ex}")
    return "\n".join(lines)


def _dist(d: dict) -> str:
    return (f"min {d['min']:g}, median {d['p50']:g}, mean {d['mean']:g}, p90 {d['p90']:g}, "
            f"p99 {d['p99']:g}, max {d['max']:g}")


# ---------------------------------------------------------------- evaluate

def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.run:
        return evaluate_run(args)
    if not args.data or not args.model:
        raise RecTuneError("evaluate needs --data DATA and --model pop|itemknn|ease (or --run RUN_DIR)")
    from recsys_core.pipeline import evaluate_baseline

    progress = Progress(not args.quiet)
    progress(f"loading {args.data}")
    ds = load_from_args(args, args.data)
    progress(f"{len(ds):,} interactions, {ds.n_users:,} users, {ds.n_items:,} items")
    model, valid, test, info = evaluate_baseline(ds, args.model, k=args.k, split_name=args.split, seed=args.seed,
                                                 progress=progress)
    out = {**{k: v for k, v in test.metrics.items()}, "split": info["split"]["name"], "model": args.model,
           "split_detail": info["split"], "params": info["params"], "valid": valid.metrics,
           "train_seconds": info["train_seconds"], "eval_seconds": info["eval_seconds"]}
    if args.json:
        emit_json(out)
    else:
        print(f"{args.model} on {ds.name} — split {out['split']}: {info['split']['description']}")
        print(f"  {test.metrics['n_users']:,} test users, full ranking over {ds.n_items:,} items, K={args.k}")
        for name in ("ndcg", "recall", "hr", "mrr", "map", "precision", "coverage", "novelty", "arp"):
            key = f"{name}@{args.k}"
            print(f"  {key:<14} test {test.metrics[key]:.4f}   valid {valid.metrics[key]:.4f}")
        print(f"  fit {info['train_seconds']:.1f}s, test ranking {info['eval_seconds']:.1f}s, params {info['params']}")
    return 0


def evaluate_run(args: argparse.Namespace) -> int:
    from recsys_core.eval.evaluator import evaluate
    from recsys_core.runs.rundir import RunDir
    from recsys_core.train.run import load_run_model

    progress = Progress(not args.quiet)
    run = RunDir(args.run)
    progress(f"loading run {run.path}")
    model, ds, split = load_run_model(run)
    valid = evaluate(model, split, "valid", k=args.k)
    test = evaluate(model, split, "test", k=args.k)
    family = run.read_config()["model"]["family"]
    out = {**test.metrics, "split": split.name, "model": family, "run_dir": str(run.path), "valid": valid.metrics,
           "eval_seconds": round(test.eval_seconds, 3)}
    if args.json:
        emit_json(out)
    else:
        print(f"run {run.run_id} ({family}) on {ds.name}, split {split.name}, K={args.k}")
        for name in ("ndcg", "recall", "hr", "mrr", "map", "precision", "coverage", "novelty", "arp"):
            key = f"{name}@{args.k}"
            print(f"  {key:<14} test {test.metrics[key]:.4f}   valid {valid.metrics[key]:.4f}")
    return 0


# ---------------------------------------------------------------- train

def cmd_train(args: argparse.Namespace) -> int:
    from recsys_core.train import distributed

    if args.nproc > 1 and not distributed.launched_by_torchrun():
        # torchrun starts N copies of this command (without --nproc); its exit status is ours
        import subprocess

        return subprocess.call(distributed.torchrun_command(args.nproc, distributed.strip_nproc(args.argv)))
    dist, _ = distributed.init_from_env(args.device)
    try:
        return _train(args, dist)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, dist) -> int:
    from recsys_core.runs.rundir import RunDir
    from recsys_core.train import distributed
    from recsys_core.train.run import execute_run, load_config_file, make_run_config, start_run

    progress = Progress(not args.quiet and dist.is_main)
    if args.resume:
        run = RunDir(args.resume)
        run.read_config()  # a clear error if this is not a run directory
        progress(f"resuming {run.path}")
        result = execute_run(run, resume=True, progress=progress, dist=dist)
    elif not dist.is_main:  # rank 0 creates the run directory; the others train into it
        run = RunDir(distributed.broadcast(None, dist))
        result = execute_run(run, progress=progress, dist=dist)
    else:
        if not args.data or not args.model:
            raise RecTuneError("train needs --data DATA and --model MODEL (or --resume RUN_DIR)")
        file_cfg = load_config_file(args.config) if args.config else {}
        train_cfg = dict(file_cfg.get("train", {}))
        for key in ("epochs", "batch_size", "lr"):
            if getattr(args, key) is not None:
                train_cfg[key] = getattr(args, key)
        data_options = {k: v for k, v in {
            "columns": args.columns, "sep": args.sep, "no_header": args.no_header or None, "items": args.items,
            "min_rating": args.min_rating, "drop_invalid": args.drop_invalid or None,
            "dedupe": "none" if args.keep_duplicates else None,
            "min_user_interactions": args.min_user_interactions or None,
            "min_item_interactions": args.min_item_interactions or None}.items() if v is not None}
        if args.items:
            data_options["items"] = str(Path(args.items).resolve())
        config = make_run_config(args.data, args.model, model=file_cfg.get("model"), train=train_cfg,
                                 data_options={**file_cfg.get("data", {}), **data_options},
                                 split=file_cfg.get("split", {}).get("name", "leave-last-out"), seed=args.seed,
                                 device=args.device, base=args.base or file_cfg.get("base", "none"),
                                 strategy=args.strategy or file_cfg.get("strategy"))
        run = start_run(config, args.run_dir)
        progress(f"run directory {run.path}")
        distributed.broadcast(str(run.path), dist)
        result = execute_run(run, progress=progress, dist=dist)
    if not dist.is_main:
        return 0 if result.status in ("finished", "stopped") else 1
    if args.json:
        emit_json(result.as_json())
    else:
        print(f"{result.status}: {run.path}")
        if result.error:
            print(f"  reason: {result.error}")
        else:
            print(f"  test ndcg@10 {result.test['ndcg@10']:.4f}  hr@10 {result.test['hr@10']:.4f}  "
                  f"valid ndcg@10 {result.valid['ndcg@10']:.4f}  ({result.train_seconds:.1f}s on {result.device})")
    return 0 if result.status in ("finished", "stopped") else 1


# ---------------------------------------------------------------- recommend

def cmd_recommend(args: argparse.Namespace) -> int:
    from recsys_core.recommend import recommend_for_user
    from recsys_core.runs.rundir import RunDir

    progress = Progress(not args.quiet)
    run = RunDir(args.run)
    progress(f"loading run {run.path}")
    out = recommend_for_user(run, args.user, k=args.k)
    if args.json:
        emit_json(out)
    else:
        print(f"top {args.k} for user {out['user']} ({out['history_size']} known interactions), run {run.run_id}")
        for rec in out["items"]:
            print(f"  {rec['rank']:>3}. {rec['title']}  [{rec['item']}]  score {rec['score']:.4f}")
    return 0


# ---------------------------------------------------------------- runs

def cmd_runs_list(args: argparse.Namespace) -> int:
    from recsys_core.runs.index import RunIndex
    from recsys_core.runs.launcher import check_alive
    from recsys_core.runs.rundir import RunDir, runs_root

    root = Path(args.root) if args.root else runs_root()
    index = RunIndex(root)
    for cfg in root.glob("*/config.json") if root.exists() else []:
        check_alive(RunDir(cfg.parent))
    rows = index.sync()
    if args.json:
        emit_json({"root": str(root), "runs": [{k: v for k, v in r.items() if k != "config"} for r in rows]})
        return 0
    if not rows:
        print(f"no runs under {root}")
        return 0
    print(f"{'run':<34} {'model':<9} {'strategy':<11} {'state':<11} {'valid ndcg':>10} {'test ndcg':>10} {'seconds':>8}")
    for r in rows:
        fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
        print(f"{r['run_id']:<34} {r['family'] or '-':<9} {r['strategy'] or '-':<11} {r['state']:<11} "
              f"{fmt(r['valid_ndcg'], '.4f'):>10} {fmt(r['test_ndcg'], '.4f'):>10} {fmt(r['train_seconds'], '.1f'):>8}")
    return 0


# ---------------------------------------------------------------- experiments, bases, strategies

def cmd_experiment(args: argparse.Namespace) -> int:
    from recsys_core.experiments.report import experiment_table, save_experiment
    from recsys_core.experiments.common import ExperimentOptions
    from recsys_core.train.run import load_config_file

    progress = Progress(not args.quiet)
    file_cfg = load_config_file(args.config) if args.config else {}
    train = dict(file_cfg.get("train", {}))
    if args.epochs is not None:
        train["epochs"] = args.epochs
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip()) if args.strategies else None
    options = ExperimentOptions(family=args.model, model=file_cfg.get("model", {}), train=train,
                                tune=file_cfg.get("tune", {}), strategy_options=file_cfg.get("strategies", {}),
                                seed=args.seed, device=args.device, similar_by=args.similar_by)
    if strategies:
        options.strategies = strategies
    ds = load_from_args(args, args.data)
    progress(f"{ds.name}: {len(ds):,} interactions, {ds.n_users:,} users, {ds.n_items:,} items")
    if args.kind == "transfer":
        from recsys_core.experiments.transfer import run_transfer

        result = run_transfer(ds, options, shots=args.shots, progress=progress)
    else:
        from recsys_core.experiments.incremental import run_incremental

        result = run_incremental(ds, options, windows=args.windows, progress=progress)
    result["data"], result["dataset"] = args.data, ds.name
    path = save_experiment(result, args.out)
    progress(f"saved {path}")
    if args.json:
        emit_json(result)
    else:
        print(experiment_table(result))
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from recsys_core.compress import compress_run

    progress = Progress(not args.quiet)
    out = compress_run(args.run, prune=args.prune, quantize=args.quantize, out=args.out, progress=progress,
                       recover_epochs=args.recover_epochs)
    if args.json:
        emit_json(out)
    else:
        print(f"compressed {out['run_dir']} -> {out['out']}")
        print(f"  size     {out['size_before'] / 1e6:.2f} MB -> {out['size_after'] / 1e6:.2f} MB ({out['size_ratio']:.2f}x)")
        print(f"  ndcg@10  {out['ndcg_before']:.4f} -> {out['ndcg_after']:.4f}")
        print(f"  top-10 latency for one user {out['latency_before_ms']:.2f} ms -> {out['latency_after_ms']:.2f} ms")
    return 0


def cmd_bases(args: argparse.Namespace) -> int:
    from recsys_core.bases import available_bases

    bases = available_bases(args.root)
    if args.json:
        emit_json({"bases": [b.describe() for b in bases]})
        return 0
    for b in bases:
        print(f"{b.spec:<40} {b.title}\n{'':<40} offers: {', '.join(b.offers) or '-'}; families: {', '.join(b.families)}")
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    from recsys_core.strategies import STRATEGIES

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


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rectune", description="RecTune: recommenders, transfer learning and fine-tuning")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect a dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    report = data_sub.add_parser("report", help="counts, distributions, time span, validation and cleaning summary")
    report.add_argument("data", metavar="DATA", help="a file, a MovieLens-style folder, or 'demo'")
    add_data_options(report)
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=cmd_data_report)

    ev = sub.add_parser("evaluate", help="full-ranking evaluation of a baseline (or of a trained run)")
    ev.add_argument("--data", metavar="DATA")
    ev.add_argument("--model", choices=["pop", "itemknn", "ease"], help="a baseline to fit and evaluate")
    ev.add_argument("--run", metavar="RUN_DIR")
    ev.add_argument("--k", type=int, default=10)
    ev.add_argument("--split", default="leave-last-out", choices=["leave-last-out", "temporal", "random"])
    ev.add_argument("--seed", type=int, default=0)
    add_data_options(ev)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(handler=cmd_evaluate)

    tr = sub.add_parser("train", help="train a model into a run directory (or --resume one)")
    tr.add_argument("--data", metavar="DATA")
    tr.add_argument("--model", metavar="MODEL", help="pop, itemknn, ease, mf, ncf, sasrec, two_tower, text_ctr")
    tr.add_argument("--base", help="pretrained base: none (default), minilm, hf:NAME_OR_PATH, run:RUN_ID")
    tr.add_argument("--strategy", help="fine-tuning strategy, optionally with options: scratch (default), full, frozen, "
                                       "partial:top_blocks=1, lora:rank=8,alpha=16, incremental:replay=0.1,penalty=ewc")
    tr.add_argument("--config", metavar="FILE", help="JSON with model/train/data/split/strategy sections")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", dest="batch_size", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--run-dir", metavar="DIR", help="where the run goes (default runs/<run id>)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted or stopped run from its last checkpoint")
    tr.add_argument("--nproc", type=int, default=1, metavar="N",
                    help="train with N data-parallel processes on this machine (torchrun + DDP; NCCL on GPUs, gloo on CPU)")
    add_data_options(tr)
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(handler=cmd_train)

    rec = sub.add_parser("recommend", help="top-K items for one user from a trained run")
    rec.add_argument("--run", metavar="RUN_DIR", required=True)
    rec.add_argument("--user", required=True)
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(handler=cmd_recommend)

    exp = sub.add_parser("experiment", help="compare fine-tuning strategies: transfer to new users, or incremental updates")
    exp.add_argument("kind", choices=["transfer", "incremental"])
    exp.add_argument("--data", metavar="DATA", required=True)
    exp.add_argument("--model", default="sasrec", help="a trainable family: mf, ncf, sasrec, two_tower, text_ctr")
    exp.add_argument("--shots", type=int, default=10, help="transfer: interactions each new user gives for fine-tuning")
    exp.add_argument("--windows", type=int, default=3, help="incremental: windows the last 40%% of time is cut into")
    exp.add_argument("--strategies", help="comma-separated subset of full,frozen,partial,lora,incremental")
    exp.add_argument("--epochs", type=int, help="maximum epochs of every training (early stopping still applies)")
    exp.add_argument("--config", metavar="FILE", help="JSON with model, train, tune (fine-tuning arms) and strategies "
                                                     "(per-strategy options) sections")
    exp.add_argument("--similar-by", default="interactions", choices=["interactions", "text"],
                     help="how the similar_users reference matches users: interaction or item-text profiles")
    exp.add_argument("--device", default="auto")
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--out", metavar="DIR", help="where the result JSON is saved (default runs/experiments)")
    add_data_options(exp)
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(handler=cmd_experiment)

    cp = sub.add_parser("compress", help="prune and quantise a trained run; report size, NDCG and latency")
    cp.add_argument("--run", metavar="RUN_DIR", required=True)
    cp.add_argument("--prune", type=float, default=0.5, help="share of weights zeroed by magnitude (0 = none)")
    cp.add_argument("--quantize", default="int8", choices=["int8", "none"])
    cp.add_argument("--recover-epochs", type=int, default=3, metavar="N",
                    help="fine-tune the surviving weights N epochs after pruning, masks held (0 = prune only)")
    cp.add_argument("--out", metavar="DIR", help="where the compressed model goes (default RUN_DIR/compressed)")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(handler=cmd_compress)

    bs = sub.add_parser("bases", help="pretrained bases available here (offline)")
    bs.add_argument("--root", help="runs folder to look for finished runs (default ./runs)")
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(handler=cmd_bases)

    st = sub.add_parser("strategies", help="fine-tuning strategies and their options")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler=cmd_strategies)

    runs = sub.add_parser("runs", help="list runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    rl = runs_sub.add_parser("list", help="every run under the runs folder, newest first")
    rl.add_argument("--root", help="runs folder (default ./runs or $RECTUNE_RUNS_DIR)")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(handler=cmd_runs_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    for attr in ("quiet",):  # allow --quiet after the sub-command too
        setattr(args, attr, getattr(args, attr, False))
    try:
        return args.handler(args)
    except RecTuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for the user; RECTUNE_DEBUG=1 shows it
        if os.environ.get("RECTUNE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(set RECTUNE_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
