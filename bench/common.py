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
    """A results section for an experiment: the verdict, the one budget, the table with corrected intervals."""
    from recsys_core.experiments.report import experiment_rows, reference_name, verdict

    proto, budget, ref = result["protocol"], result.get("budget", {}), reference_name(result)
    lines = [f"Command: `{command}` on {proto.get('device', '?')} ({machine()}); the whole experiment took "
             f"**{result['seconds'] / 60:.1f} min** (base pretraining {result['base']['seconds']:.0f} s). "
             f"One budget for every arm: {budget}. Winner chosen on {result.get('selected_on')}.", "",
             f"**Verdict:** {verdict(result)}", "",
             f"| | arm | valid NDCG@10 | test NDCG@10 | Recall@10 | seconds | trainable params | epochs (best) | "
             f"vs {ref}: diff [simultaneous 95% CI] | p (Holm) |" + (" forgetting |" if "forgetting" in result else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if "forgetting" in result else "")]
    for r in experiment_rows(result):
        name = f"**{r['name']}**" if r["name"] == result.get("best") else r["name"]
        versus = (f"{r['diff']:+.4f} [{r['ci_low_adj']:+.4f}, {r['ci_high_adj']:+.4f}]" + (" *" if r["significant"] else "")
                  if "diff" in r else "reference" if r["name"] == ref else "")
        p = f"{r['p']:.3f} ({r['p_holm']:.3f})" if "diff" in r else ""
        valid = f"{r['valid ndcg@10']:.4f}" if r["valid ndcg@10"] is not None else "-"
        forget = f" {r['forgetting']:+.4f} |" if "forgetting" in result and "forgetting" in r else (
            " |" if "forgetting" in result else "")
        lines.append(f"| {r['kind']} | {name} | {valid} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | "
                     f"{r['seconds']:.1f} | {r['trainable_params']:,} | {r['epochs_run']} ({r['best_epoch']}) | "
                     f"{versus} | {p} |{forget}")
    lines += ["", "\\* significant after Holm's correction; intervals are Bonferroni-simultaneous over the "
                  f"{len(result.get('vs_scratch') or result.get('vs_retrain') or {})} comparisons; **bold**: best on validation."]
    if result.get("windows"):
        names = [n for n in [*result["strategies"], *result["references"]]]
        lines += ["", "Per-window test NDCG@10 (window 1 is scored by the base before any update):", "",
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
        dataset = "demo" if result.get("dataset") == "demo" else "xwines" if "XWines" in str(result.get("data")) else \
            Path(str(result.get("data"))).stem
        write_section(f"{kind}-{proto['model']}-{dataset}", experiment_markdown(result, command))
    return 0
