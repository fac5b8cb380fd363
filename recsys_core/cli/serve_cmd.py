"""`rectune serve --run RUN_DIR [--port P]`: the HTTP service (DESIGN.md, CLI contract)."""
from __future__ import annotations

import argparse

from recsys_core.cli.common import Progress
from recsys_core.serving.replay import execute_live
from recsys_core.serving.server import build_service, serve
from recsys_core.storage.rundir import RunDir
from recsys_core.serving.updater import UpdatePolicy


def cmd_serve(args: argparse.Namespace) -> int:
    say = Progress(not args.quiet)
    policy = None if args.no_updates else UpdatePolicy(every_events=args.update_every, every_seconds=args.update_seconds,
                                                       epochs=args.update_epochs)
    say(f"loading {args.run}")
    service = build_service(args.run, args.state_dir, compressed=args.compressed, policy=policy)
    if policy is not None:
        when = [f"every {policy.every_events:,} new events"] if policy.every_events else []
        when += [f"when events have waited {policy.every_seconds:g}s"] if policy.every_seconds else []
        say(f"updates: {' or '.join(when) or 'only on POST /update'} (state in {service.state_dir})")
    serve(service, args.host, args.port, say=lambda m: print(m, flush=True))
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    say = Progress(not args.quiet)
    state = execute_live(RunDir(args.job_dir), say)
    say(f"replay {state}")
    return 0
