"""The transfer experiment (DESIGN.md protocol) on a dataset, its table written into docs/BENCHMARKS.md.

    python bench/transfer.py [--data demo] [--model sasrec] [--shots N] [--json] [--no-write] [--from RESULT.json]

`--from` renders a result saved earlier by `rectune experiment transfer` instead of running it again.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import experiment_bench  # noqa: E402

if __name__ == "__main__":
    sys.exit(experiment_bench("transfer", "--shots", 10, __doc__))
