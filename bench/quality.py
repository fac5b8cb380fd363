"""Every model family with its default config on a dataset under the default protocol, with train time.

    python bench/quality.py [--data demo] [--families pop,ease,sasrec] [--section NAME] [--json] [--no-write]

Writes a table into docs/BENCHMARKS.md (section 'quality-DATA', or NAME) unless --no-write.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write_section  # noqa: E402
from recsys_core.runs.execute import execute_run  # noqa: E402
from recsys_core.runs.spec import RunSpec  # noqa: E402

FAMILIES = ["pop", "itemknn", "ease", "ease+fold_in", "mf", "ncf", "two_tower", "sasrec", "lightgcn", "text_ctr"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--section", help="the docs/BENCHMARKS.md block to write (default quality-DATA)")
    args = p.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            t0 = time.perf_counter()
            name, _, option = family.partition("+")  # e.g. ease+fold_in: EASE given the prediction-time history
            spec = RunSpec.create(args.data, name, model={option: True} if option else None, device=args.device)
            res = execute_run(spec.save(Path(tmp) / family),
                              progress=lambda m, f=family: print(f"[{f}] {m}", file=sys.stderr, flush=True))
            ev = res.run.read_eval() or {}
            rows[family] = {"status": res.status, "ndcg@10": res.test.get("ndcg@10"), "hr@10": res.test.get("hr@10"),
                            "mrr@10": res.test.get("mrr@10"), "valid_ndcg@10": res.valid.get("ndcg@10"),
                            "train_seconds": round(res.train_seconds, 1), "wall_seconds": round(time.perf_counter() - t0, 1),
                            "params": res.total_params, "device": res.device, "epochs": ev.get("epochs"),
                            "classification": ev.get("classification")}
            print(f"[{family}] {json.dumps(rows[family])}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"data": args.data, "machine": machine(), "families": rows}))
    if not args.no_write:
        command = " ".join(["python bench/quality.py", *sys.argv[1:]])
        lines = [f"Command: `{command}` on {machine()}.",
                 "Default configs, default protocol (leave-last-out, full ranking, K=10). Test figures.", "",
                 "| model | NDCG@10 | HR@10 | MRR@10 | valid NDCG@10 | epochs | train s | wall s | params | device |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for fam, r in rows.items():
            f = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            lines.append(f"| {fam} | {f(r['ndcg@10'])} | {f(r['hr@10'])} | {f(r['mrr@10'])} | {f(r['valid_ndcg@10'])} | "
                         f"{r['epochs'] or '-'} | {r['train_seconds']} | {r['wall_seconds']} | {r['params']:,} | {r['device']} |")
        cls = rows.get("text_ctr", {}).get("classification")
        if cls:
            lines += ["", "text_ctr classification (validation positives vs as many random negatives): " +
                      ", ".join(f"{k} {v:.3f}" for k, v in cls.items() if isinstance(v, float))]
        write_section(args.section or f"quality-{Path(args.data).name}", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
