"""Prequential replay of the demo's last 40% of time: no updates vs periodic retraining vs streaming updates.

    python bench/replay.py [--families mf,sasrec] [--updates 8] [--epochs 20] [--no-write]

Protocol constants, fixed before any run: base on the first 60% of interactions in time; the rest in
updates + 1 equal chunks; every event scored before any arm learns from it (context refreshed every 500
events); one budget for every training (max epochs, the family's patience); the retrain arm retrains
after every chunk. Reported: mean NDCG@10 over all replayed events per arm, the comparison with retraining
(paired bootstrap over events resampling users, Holm-adjusted, Bonferroni-simultaneous intervals), the
cost of each version, and the curve in 20 equal-count bins of events. Writes docs/BENCHMARKS.md
(section 'replay') and docs/results-replay.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def markdown(results: dict, command: str) -> str:
    lines = [f"Command: `{command}` on {machine()}. Base on the first 60% in time; each event of the last 40% is "
             "scored before any arm learns from it; every training shares one budget.", ""]
    for family, r in results.items():
        proto = r["protocol"]
        lines += [f"**{family}** ({proto['stream_events']:,} events, {proto['updates']} updates, budget "
                  f"{proto['budget']}, whole replay {r['seconds']:.0f} s):", "",
                  "| arm | mean NDCG@10 | versions | s per version | update s in total | vs retrain: diff "
                  "[simultaneous 95% CI] |", "|---|---|---|---|---|---|"]
        for name, arm in r["arms"].items():
            v = r["vs_retrain"].get(name)
            versus = "reference" if v is None else (f"{v['diff']:+.4f} [{v['ci_low_adj']:+.4f}, {v['ci_high_adj']:+.4f}] "
                                                    + ("significant" if v["significant"] else "no significant difference"))
            lines.append(f"| {name} | {arm['ndcg@10']:.4f} | {arm['versions']} | {arm['seconds_per_update']:.2f} | "
                         f"{arm['update_seconds']:.1f} | {versus} |")
        lines += ["", "Curve (mean NDCG@10 per bin of equal event counts, in time order):", "",
                  "| bin | dates (UTC) | events | no_update | retrain | streaming |", "|---|---|---|---|---|---|"]
        for b in r["curve"]:
            lines.append(f"| {b['bin']} | {_day(b['t_start'])} to {_day(b['t_end'])} | {b['events']:,} | "
                         f"{b['no_update']:.4f} | {b['retrain']:.4f} | {b['streaming']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    from recsys_core.data.source import DataSource, load_source
    from recsys_core.experiments.common import ExperimentOptions
    from recsys_core.experiments.prequential import run_prequential

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="mf,sasrec")
    p.add_argument("--updates", type=int, default=8)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    ds = load_source(DataSource("demo"))
    results = {}
    for family in args.families.split(","):
        options = ExperimentOptions(family=family, train={"epochs": args.epochs}, device="auto")
        results[family] = run_prequential(ds, options, updates=args.updates,
                                          progress=lambda m: print(m, file=sys.stderr, flush=True))
    command = " ".join(["python bench/replay.py", *sys.argv[1:]])
    if not args.no_write:
        (ROOT / "docs/results-replay.json").write_text(json.dumps({"machine": machine(), "command": command,
                                                                   "results": results}, indent=1))
        write_section("replay", markdown(results, command))
    print(json.dumps({f: {a: v["ndcg@10"] for a, v in r["arms"].items()} for f, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
