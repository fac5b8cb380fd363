"""The `rectune` command (also `python -m recsys_core`). Contract: ../shared/DESIGN.md, "CLI contract".

With --json, stdout carries exactly one JSON object; progress goes to stderr. User errors print one
line on stderr and exit with code 2.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

from recsys_core.cli.parser import build_parser
from recsys_core.errors import RecTuneError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    module, _, function = args.handler.partition(":")
    try:
        # A command's machinery (torch, the models) is imported only when that command runs, so --help is instant.
        handler = getattr(importlib.import_module(f"recsys_core.cli.{module}"), function)
        return handler(args)
    except RecTuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for the user; RECTUNE_DEBUG=1 shows it
        if os.environ.get("RECTUNE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(set RECTUNE_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
