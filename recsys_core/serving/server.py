"""`rectune serve`: load a run, restore the state folder's latest version and events, and run uvicorn.

The state folder (default RUN/serve) holds events.jsonl, versions/ (one run directory per update),
versions.jsonl (every decision), current.json (the version served last, so a restart resumes it) and
server.json (the address and pid of the running service, for clients such as the Live page's replay).
"""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Callable

import uvicorn

from recsys_core.errors import ConfigError
from recsys_core.serving.app import create_app
from recsys_core.serving.served import ServedModel, load_served
from recsys_core.serving.service import Service
from recsys_core.serving.updater import Updater, UpdatePolicy
from recsys_core.storage.atomic import atomic_write_json, read_json
from recsys_core.storage.rundir import RunDir


def resume_version(run: RunDir, state_dir: Path, compressed: bool) -> tuple[ServedModel, int]:
    """The version to serve: the state folder's last accepted one if it grew from this run, else the run itself."""
    saved = read_json(state_dir / "current.json")
    if saved and saved.get("version", 0) > 0 and Path(saved["run"]).exists():
        return load_served(saved["run"], version=int(saved["version"])), int(saved.get("trained_events", 0))
    return load_served(run.path, version=0, compressed=compressed), 0


def build_service(run_dir: str | Path, state_dir: str | Path | None = None, compressed: bool = False,
                  policy: UpdatePolicy | None = None) -> Service:
    """The service for a run (with an updater unless `policy` is None), its state restored from `state_dir`."""
    run = RunDir(run_dir)
    if not run.exists():
        raise ConfigError(f"{run.path}: no such run directory")
    state = Path(state_dir) if state_dir else run.path / "serve"
    served, trained_events = resume_version(run, state, compressed)
    service = Service(state, served)
    if policy is not None:
        Updater(service, run.path, policy, trained_events=trained_events)
    return service


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one); refuses, in words, a port already taken."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this: a reply's header and body segments go out at once (no 40 ms Nagle wait)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port (0 = any free one)",
                          field="port") from None
    sock.listen(128)
    return sock


def serve(service: Service, host: str = "127.0.0.1", port: int = 8000,
          say: Callable[[str], None] = print) -> None:
    """Run the HTTP service until interrupted (SIGINT/SIGTERM end it cleanly)."""
    sock = bind(host, port)
    port = sock.getsockname()[1]
    url = f"http://{host}:{port}"
    atomic_write_json(service.state_dir / "server.json", {"url": url, "port": port, "host": host, "pid": os.getpid(),
                                                          "started": time.time()})
    served = service.current
    say(f"serving {served.run_dir} (version {served.version}, {served.family}) on {url} "
        f"(GET /recommend?user=U&k=10, POST /events, GET /health, GET /metrics; docs at {url}/docs)")
    config = uvicorn.Config(create_app(service), log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    # uvicorn re-raises the signal it shut down on; make SIGTERM an exit that still runs the clean-up below
    signal.signal(signal.SIGTERM, _exit_on_term)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        service.close()
        (service.state_dir / "server.json").unlink(missing_ok=True)


def _exit_on_term(signum, frame) -> None:
    raise SystemExit(0)
