"""Cross-catalogue transfer through item text on the demo data: comedies -> every other film (no shared item).

    python bench/catalogue.py [--word comedy] [--top-items 1000] [--shots 5] [--no-write]

A two-tower model whose items are only their text (MiniLM embeddings of title and genres) is pretrained
on one catalogue and applied to the other zero-shot, then fine-tuned on each user's first shots.
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
    p.add_argument("--word", default="comedy")
    p.add_argument("--top-items", type=int, default=1000)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    from recsys_core.data.dataset import load_dataset
    from recsys_core.experiments.catalogue import run_cross_catalogue, split_catalogue
    from recsys_core.experiments.common import ExperimentOptions

    source, target = split_catalogue(load_dataset("demo"), args.word, top_items=args.top_items, min_user=args.shots + 3)
    options = ExperimentOptions(family="two_tower", model={"item_repr": "text", "user_tower": "mean"},
                                strategies=("frozen", "full"))
    result = run_cross_catalogue(source, target, options, shots=args.shots,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    result["data"] = f"demo split on {args.word!r}"
    if args.json:
        print(json.dumps(result))
    if not args.no_write:
        command = f"python bench/catalogue.py --word {args.word} --top-items {args.top_items} --shots {args.shots}"
        write_section("cross-catalogue", experiment_markdown(result, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
