"""The transfer experiment (DESIGN.md protocol) on a dataset, its table written into docs/BENCHMARKS.md.

    python bench/transfer.py [--data demo] [--model sasrec] [--shots N] [--json] [--no-write] [--from RESULT.json]

`--from` renders a result saved earlier by `rectune experiment transfer` instead of running it again.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import experiment_markdown, write_section  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo")
    p.add_argument("--model", default="sasrec")
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--from", dest="source", help="a saved result JSON to render")
    args = p.parse_args()
    if args.source:
        result = json.loads(Path(args.source).read_text())
    else:
        from recsys_core.cli import main as cli

        out = Path("runs") / "experiments"
        code = cli(["experiment", "transfer", "--data", args.data, "--model", args.model, "--shots", str(args.shots),
                    "--device", args.device, "--out", str(out)])
        if code:
            return code
        result = json.loads(max(out.glob("transfer-*.json"), key=lambda q: q.stat().st_mtime).read_text())
    command = f"rectune experiment transfer --data {result.get('data', args.data)} --model {result['protocol']['model']}"
    if args.json:
        print(json.dumps(result))
    if not args.no_write:
        write_section(f"transfer-{result['protocol']['model']}", experiment_markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
