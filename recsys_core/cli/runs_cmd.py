"""`rectune recommend`, `rectune compress` and `rectune runs list`: working with trained runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from recsys_core.cli.common import Progress, emit_json
from recsys_core.compress import compress_run
from recsys_core.recommend import recommend_for_user
from recsys_core.runs.finished import load_finished
from recsys_core.runs.listing import list_runs
from recsys_core.storage.rundir import RunDir, runs_root


def cmd_recommend(args: argparse.Namespace) -> int:
    progress = Progress(not args.quiet)
    run = RunDir(args.run)
    progress(f"loading run {run.path}")
    out = recommend_for_user(load_finished(run), args.user, k=args.k)
    if args.json:
        emit_json(out)
    else:
        print(f"top {args.k} for user {out['user']} ({out['history_size']} known interactions), run {run.run_id}")
        for rec in out["items"]:
            print(f"  {rec['rank']:>3}. {rec['title']}  [{rec['item']}]  score {rec['score']:.4f}")
    return 0


def cmd_runs_list(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve() if args.root else runs_root()
    rows = list_runs(root, reconcile_every=0)  # an explicit command: reconcile the index with the folders now
    if args.json:
        emit_json({"root": str(root), "runs": [{k: v for k, v in r.items() if k != "config"} for r in rows]})
        return 0
    if not rows:
        print(f"no runs under {root}")
        return 0
    print(f"{'run':<34} {'model':<9} {'strategy':<11} {'state':<11} {'valid ndcg':>10} {'test ndcg':>10} {'seconds':>8}")
    for r in rows:
        print(f"{r['run_id']:<34} {r['family'] or '-':<9} {r['strategy'] or '-':<11} {r['state']:<11} "
              f"{_fmt(r['valid_ndcg'], '.4f'):>10} {_fmt(r['test_ndcg'], '.4f'):>10} {_fmt(r['train_seconds'], '.1f'):>8}")
    return 0


def _fmt(value, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def cmd_compress(args: argparse.Namespace) -> int:
    progress = Progress(not args.quiet)
    out = compress_run(args.run, prune=args.prune, quantize=args.quantize, out=args.out, progress=progress,
                       recover_epochs=args.recover_epochs)
    if args.json:
        emit_json(out)
        return 0
    print(f"compressed {out['run_dir']} -> {out['out']}")
    print(f"  size     {out['size_before'] / 1e6:.2f} MB -> {out['size_after'] / 1e6:.2f} MB ({out['size_ratio']:.2f}x)")
    print(f"  ndcg@10  {out['ndcg_before']:.4f} -> {out['ndcg_after']:.4f}")
    print(f"  top-10 latency for one user {out['latency_before_ms']:.2f} ms -> {out['latency_after_ms']:.2f} ms")
    return 0
