"""The `rectune` argument parser (DESIGN.md, "CLI contract"). It imports nothing heavy, so --help is instant.

Each sub-command names its handler as "module:function" inside recsys_core.cli; the module is
imported only when that command runs.
"""
from __future__ import annotations

import argparse


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--columns", help="role mapping, e.g. user=userId,item=movieId,rating=rating,timestamp=ts "
                                     "(0-based positions with --no-header)")
    p.add_argument("--sep", help="column separator (tab, comma, ';', '|', '::', space, ...); detected when omitted")
    p.add_argument("--order", choices=["time", "file"], help="what orders each user's interactions: 'time' "
                   "(timestamps, the default) or 'file' (row order within a user is time order, for files without "
                   "timestamps)")
    p.add_argument("--no-header", action="store_true", help="the file has no header row")
    p.add_argument("--items", help="item text file (id + title/genres/description) joined by item id")
    p.add_argument("--min-rating", type=float, help="keep only interactions rated at least this")
    p.add_argument("--drop-invalid", action="store_true", help="drop rows with missing ids/ratings/timestamps (reported)")
    p.add_argument("--keep-duplicates", action="store_true", help="keep repeated (user, item) pairs (default keeps the last)")
    p.add_argument("--min-user-interactions", type=int, default=0, help="drop users with fewer interactions")
    p.add_argument("--min-item-interactions", type=int, default=0, help="drop items with fewer interactions")


def _data_parsers(sub) -> None:
    data = sub.add_parser("data", help="inspect a dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    report = data_sub.add_parser("report", help="counts, distributions, time span, validation and cleaning summary")
    report.add_argument("data", metavar="DATA", help="a file, a MovieLens-style folder, or 'demo'")
    add_data_options(report)
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler="data_cmd:cmd_data_report")

    ev = sub.add_parser("evaluate", help="full-ranking evaluation of a baseline (or of a trained run)")
    ev.add_argument("--data", metavar="DATA")
    ev.add_argument("--model", help="a baseline to fit and evaluate: pop, itemknn, ease")
    ev.add_argument("--run", metavar="RUN_DIR")
    ev.add_argument("--k", type=int, default=10)
    ev.add_argument("--split", default="leave-last-out", choices=["leave-last-out", "temporal", "random"])
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--config", metavar="FILE", help="JSON whose 'model' section sets the baseline's options, "
                                                     "e.g. {\"model\": {\"neighbours\": 200}}")
    add_data_options(ev)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(handler="evaluate_cmd:cmd_evaluate")


def _train_parser(sub) -> None:
    tr = sub.add_parser("train", help="train a model into a run directory (or run / --resume one)")
    tr.add_argument("--data", metavar="DATA")
    tr.add_argument("--model", metavar="MODEL", help="pop, itemknn, ease, mf, ncf, sasrec, lightgcn, two_tower, text_ctr")
    tr.add_argument("--base", help="pretrained base: none (default), minilm, hf:NAME_OR_PATH, run:RUN_ID")
    tr.add_argument("--strategy", help="fine-tuning strategy, optionally with options: scratch (default), full, frozen, "
                                       "partial:top_blocks=1, lora:rank=8,alpha=16, incremental:replay=0.1,penalty=ewc")
    tr.add_argument("--config", metavar="FILE", help="JSON with model/train/data/split/strategy sections")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", dest="batch_size", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--run-dir", metavar="DIR", help="where the run goes (default runs/<run id>); alone, a directory "
                                                     "holding a config.json (a RunSpec) runs exactly that spec")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted or stopped run from its last checkpoint")
    tr.add_argument("--nproc", type=int, default=1, metavar="N",
                    help="train with N data-parallel processes on this machine (torchrun + DDP; NCCL on GPUs, gloo on CPU)")
    tr.add_argument("--async-workers", dest="async_workers", type=int, metavar="N",
                    help="N worker processes update shared weights without locks (Hogwild, CPU); 0 = synchronous")
    add_data_options(tr)
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(handler="train_cmd:cmd_train")


def _run_parsers(sub) -> None:
    rec = sub.add_parser("recommend", help="top-K items for one user from a trained run")
    rec.add_argument("--run", metavar="RUN_DIR", required=True)
    rec.add_argument("--user", required=True)
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(handler="runs_cmd:cmd_recommend")

    cp = sub.add_parser("compress", help="prune and quantise a trained run; report size, NDCG and latency")
    cp.add_argument("--run", metavar="RUN_DIR", required=True)
    cp.add_argument("--prune", type=float, default=0.5, help="share of weights zeroed by magnitude (0 = none)")
    cp.add_argument("--quantize", default="int8", choices=["int8", "none"])
    cp.add_argument("--recover-epochs", type=int, default=3, metavar="N",
                    help="fine-tune the surviving weights N epochs after pruning, masks held (0 = prune only)")
    cp.add_argument("--out", metavar="DIR", help="where the compressed model goes (default RUN_DIR/compressed)")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(handler="runs_cmd:cmd_compress")

    runs = sub.add_parser("runs", help="list runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    rl = runs_sub.add_parser("list", help="every run under the runs folder, newest first")
    rl.add_argument("--root", help="runs folder (default ./runs or $RECTUNE_RUNS_DIR)")
    rl.add_argument("--json", action="store_true")
    rl.set_defaults(handler="runs_cmd:cmd_runs_list")


def _experiment_parsers(sub) -> None:
    exp = sub.add_parser("experiment", help="compare fine-tuning strategies: transfer to new users, or incremental updates")
    exp.add_argument("kind", nargs="?", choices=["transfer", "incremental", "prequential"],
                     help="which experiment (omit with --job-dir DIR to run the experiment.json saved there)")
    exp.add_argument("--data", metavar="DATA")
    exp.add_argument("--model", default="sasrec", help="a trainable family: mf, ncf, sasrec, two_tower, text_ctr")
    exp.add_argument("--shots", type=int, default=10, help="transfer: interactions each new user gives for fine-tuning")
    exp.add_argument("--windows", type=int, default=3, help="incremental: windows the last 40%% of time is cut into")
    exp.add_argument("--updates", type=int, default=8, help="prequential: updates during the replay of the last 40%%")
    exp.add_argument("--retrain-every", type=int, default=1, metavar="N",
                     help="prequential: the retrain arm retrains from scratch every N updates")
    exp.add_argument("--strategies", help="comma-separated subset of full,frozen,partial,lora,incremental")
    exp.add_argument("--epochs", type=int, help="maximum epochs of every training (early stopping still applies)")
    exp.add_argument("--config", metavar="FILE", help="JSON with model, train (the one budget of every arm) and "
                                                     "strategies (per-strategy options) sections")
    exp.add_argument("--similar-by", default="interactions", choices=["interactions", "text"],
                     help="how the similar_users reference matches users: interaction or item-text profiles")
    exp.add_argument("--device", default="auto")
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--out", metavar="DIR", help="where the result JSON is saved (default runs/experiments)")
    exp.add_argument("--job-dir", metavar="DIR", help="run as a job: status, per-arm progress and result.json in DIR "
                                                      "(alone: run the experiment.json DIR holds, as the studio does)")
    add_data_options(exp)
    exp.add_argument("--json", action="store_true")
    exp.set_defaults(handler="experiment_cmd:cmd_experiment")

    bs = sub.add_parser("bases", help="pretrained bases available here (offline)")
    bs.add_argument("--root", help="runs folder to look for finished runs (default ./runs)")
    bs.add_argument("--json", action="store_true")
    bs.set_defaults(handler="experiment_cmd:cmd_bases")

    st = sub.add_parser("strategies", help="fine-tuning strategies and their options")
    st.add_argument("--json", action="store_true")
    st.set_defaults(handler="experiment_cmd:cmd_strategies")


def _serve_parsers(sub) -> None:
    sv = sub.add_parser("serve", help="serve a trained run over HTTP and keep learning from posted events")
    sv.add_argument("--run", metavar="RUN_DIR", required=True)
    sv.add_argument("--port", type=int, default=8000, help="TCP port (0 = any free one; the address is printed)")
    sv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    sv.add_argument("--compressed", action="store_true", help="serve RUN_DIR/compressed (made by rectune compress)")
    sv.add_argument("--state-dir", metavar="DIR", help="events, versions and decisions (default RUN_DIR/serve)")
    sv.add_argument("--update-every", type=int, default=1000, metavar="N",
                    help="train a new version after N new events (0 = only on POST /update)")
    sv.add_argument("--update-seconds", type=float, default=0.0, metavar="T",
                    help="also update when new events have waited T seconds (0 = off)")
    sv.add_argument("--update-epochs", type=int, default=8, metavar="E", help="most epochs one update trains")
    sv.add_argument("--no-updates", action="store_true", help="serve the run as it is; events are only stored")
    sv.set_defaults(handler="serve_cmd:cmd_serve")

    lv = sub.add_parser("live", help="worker of a live replay job (the studio starts it): base, service, replay")
    lv.add_argument("--job-dir", metavar="DIR", required=True, help="a directory holding a live.json (a LiveSpec)")
    lv.set_defaults(handler="serve_cmd:cmd_live")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rectune", description="RecTune: recommenders, transfer learning and fine-tuning")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_data_parsers, _train_parser, _run_parsers, _experiment_parsers, _serve_parsers):
        add(sub)
    return parser
