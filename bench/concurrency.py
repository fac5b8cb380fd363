"""Page-interaction latency of the studio with several browser sessions while training jobs run.

    python bench/concurrency.py [--sessions 5] [--rounds 3] [--jobs 2] [--json] [--no-write]

Starts the studio on a free localhost port (demo data), launches `--jobs` real training workers, and has
`--sessions` headless Chromium sessions tour every page `--rounds` times at once. Latency is from the
click in the sidebar to the page fully rendered (Streamlit's run indicator gone). Needs Debian's chromium.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write_section  # noqa: E402
from recsys_core.runs.launcher import stop  # noqa: E402
from recsys_core.runs.execute import execute_run  # noqa: E402
from recsys_core.runs.spec import RunSpec  # noqa: E402
from tests.e2e.load import browse_concurrently, start_training_jobs  # noqa: E402
from tests.e2e.test_studio_e2e import start_studio  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shown = execute_run(RunSpec.create("demo", "mf", train={"epochs": 3}, device="cpu").save(root / "runs" / "shown"))
        jobs = start_training_jobs("demo", root, n=args.jobs)
        try:
            with start_studio(root) as url:
                result = browse_concurrently(f"{url}/?run=shown", sessions=args.sessions, rounds=args.rounds)
                running = sum(j.read_status().get("state") == "running" for j in jobs)
        finally:
            for job in jobs:
                stop(job, grace=10)
        locked = "database is locked" in (root / "streamlit.log").read_text()
    out = {"concurrency": {**result.summary(), "sessions": args.sessions, "rounds": args.rounds, "jobs": args.jobs,
                           "jobs_running_at_end": running, "database_locked": locked, "shown_run": shown.status,
                           "error_list": result.errors[:10]}}
    command = "python " + " ".join(["bench/concurrency.py", *sys.argv[1:]])
    if not args.no_write:
        s = out["concurrency"]
        write_section("concurrency", (
            f"Command: `{command}` on {machine()}.\n\n"
            f"{s['sessions']} headless Chromium sessions toured all six pages {s['rounds']} times each, at once, on the demo "
            f"data while {s['jobs']} training workers ran ({s['jobs_running_at_end']} still running at the end): "
            f"**{s['interactions']} page interactions, p50 {s['p50_s']} s, p95 {s['p95_s']} s, max {s['max_s']} s**; "
            f"{s['errors']} errors; 'database is locked' in the server log: {'yes' if locked else 'no'}. "
            f"p95 by page: {', '.join(f'{k} {v} s' for k, v in s['p95_s_by_page'].items())}. "
            f"Latency runs from the sidebar click to the page fully rendered; everything (server, browsers, "
            f"workers) shares the machine's cores.\n"))
    print(json.dumps(out, indent=None if args.json else 1))
    return 0 if not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
