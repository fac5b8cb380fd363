"""What every `rectune` command shares: progress on stderr, one JSON object on stdout, the data options."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from recsys_core.data.source import DataSource


class Progress:
    """Stage messages on stderr, stamped with elapsed seconds; silent with --quiet."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


def emit_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def source_from_args(args: argparse.Namespace, data: str, defaults: dict | None = None) -> DataSource:
    """The DataSource the data flags describe, over `defaults` (e.g. a --config file's data section)."""
    values = dict(defaults or {})
    values["path"] = data
    flags = {"columns": args.columns, "sep": args.sep, "order": args.order, "no_header": args.no_header or None, "items": args.items,
             "min_rating": args.min_rating, "drop_invalid": args.drop_invalid or None,
             "dedupe": "none" if args.keep_duplicates else None,
             "min_user_interactions": args.min_user_interactions or None,
             "min_item_interactions": args.min_item_interactions or None}
    values.update({k: v for k, v in flags.items() if v is not None})
    return DataSource.from_dict(values)


def data_flags_given(args: argparse.Namespace) -> list[str]:
    """The data flags set on the command line (for refusing them where they would be ignored)."""
    names = {"columns": "--columns", "sep": "--sep", "order": "--order", "no_header": "--no-header", "items": "--items",
             "min_rating": "--min-rating", "drop_invalid": "--drop-invalid", "keep_duplicates": "--keep-duplicates",
             "min_user_interactions": "--min-user-interactions", "min_item_interactions": "--min-item-interactions"}
    return [flag for attr, flag in names.items() if getattr(args, attr) not in (None, False, 0)]
