"""`rectune data report DATA`: counts, distributions, time span, validation and cleaning summary."""
from __future__ import annotations

import argparse

from recsys_core.cli.common import Progress, emit_json, source_from_args
from recsys_core.data.describe import describe
from recsys_core.data.source import load_source


def cmd_data_report(args: argparse.Namespace) -> int:
    progress = Progress(not args.quiet)
    progress(f"loading {args.data}")
    ds = load_source(source_from_args(args, args.data), progress=progress)
    progress("describing")
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
    elif info.get("order") == "file":
        lines.append("  no timestamps: each user's rows are in time order in the file (--order file); "
                     "evaluation leaves the last rows out by file order")
    else:
        lines.append("  no timestamps: evaluation uses a seeded random leave-one-out (give --order file if each "
                     "user's rows are listed in time order)")
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
