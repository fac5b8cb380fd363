"""Helpers for benchmarks: write a results section into docs/BENCHMARKS.md between markers."""
from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{platform.system()} {cpu}, {torch.get_num_threads()} torch threads{gpu}, torch {torch.__version__}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the block between <!-- NAME:start --> and <!-- NAME:end -->."""
    BENCHMARKS.parent.mkdir(parents=True, exist_ok=True)
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


def experiment_markdown(result: dict, command: str) -> str:
    """A results section for an experiment: its table, the best strategy's verdict and the wall time."""
    from recsys_core.experiments.report import experiment_rows

    proto = result["protocol"]
    rows = experiment_rows(result)
    extras = [e for e in ("forgetting", "vs_retrain", "vs_scratch") if any(e in r for r in rows)]
    labels = {"forgetting": "forgetting (probe NDCG@10 drop)", "vs_retrain": "vs retrain: NDCG@10 diff [95% CI]",
              "vs_scratch": "vs scratch: NDCG@10 diff [95% CI]"}
    lines = [f"Command: `{command}` on {proto.get('device', '?')} ({machine()}); "
             f"the whole experiment took **{result['seconds'] / 60:.1f} min** (base pretraining "
             f"{result['base']['seconds']:.0f} s).", "",
             "| | arm | NDCG@10 | Recall@10 | seconds | trainable params | " + " | ".join(labels[e] for e in extras) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(extras)]
    for r in rows:
        tail = " | ".join(f"{r[e]:+.4f}" if isinstance(r.get(e), float) else str(r.get(e, "")) for e in extras)
        name = f"**{r['name']}**" if r["name"] == result.get("best") else r["name"]
        lines.append(f"| {r['kind']} | {name} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['seconds']:.1f} | "
                     f"{r['trainable_params']:,} | {tail} |")
    if "best_vs_retrain" in result:
        b = result["best_vs_retrain"]
        lines += ["", f"Best strategy **{result['best']}**: {b['ndcg_ratio']:.3f}x the NDCG@10 of retraining from "
                      f"scratch on everything, in {b['time_ratio']:.3f}x its wall time; beats not updating: "
                      f"{b['beats_no_update']}."]
    if result.get("windows"):
        names = [n for n in [*result["strategies"], *result["references"]]]
        lines += ["", "Per-window NDCG@10 (window 1 is scored by the base before any update):", "",
                  "| window | test users | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for w in result["windows"]:
            cells = [f"{w[n]['ndcg@10']:.4f}" if n in w else (f"{w['base']['ndcg@10']:.4f}" if "base" in w else "")
                     for n in names]
            lines.append(f"| {w['window']} | {w.get('test_users', '')} | " + " | ".join(cells) + " |")
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"\nSkipped {name}: {reason}")
    return "\n".join(lines)


def experiment_bench(kind: str, count_flag: str, count_default: int, doc: str) -> int:
    """The body of bench/transfer.py and bench/incremental.py: run (or load) an experiment, write its section."""
    import argparse
    import json

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo")
    p.add_argument("--model", default="sasrec")
    p.add_argument(count_flag, dest="count", type=int, default=count_default)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--from", dest="source", help="a saved result JSON to render instead of running again")
    args = p.parse_args()
    if args.source:
        result = json.loads(Path(args.source).read_text())
    else:
        from recsys_core.cli import main as cli

        out = ROOT / "runs" / "experiments"
        code = cli(["experiment", kind, "--data", args.data, "--model", args.model, count_flag, str(args.count),
                    "--device", args.device, "--out", str(out)])
        if code:
            return code
        result = json.loads(max(out.glob(f"{kind}-*.json"), key=lambda q: q.stat().st_mtime).read_text())
    proto = result["protocol"]
    count = proto.get("windows") if kind == "incremental" else proto.get("shots")
    command = f"rectune experiment {kind} --data {result.get('data', args.data)} --model {proto['model']} {count_flag} {count}"
    if args.json:
        print(json.dumps(result))
    if not args.no_write:
        write_section(f"{kind}-{proto['model']}", experiment_markdown(result, command))
    return 0
