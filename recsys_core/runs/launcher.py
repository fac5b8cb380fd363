"""Start `rectune train` as a subprocess, stop it, poll it, and notice when its worker died."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from recsys_core.paths import project_root
from recsys_core.runs.index import RunIndex
from recsys_core.storage.rundir import ACTIVE, RunDir, new_run_id, runs_root

LAUNCH_GRACE = 2.0  # seconds a just-launched worker has to write its own status
HEARTBEAT_STALE = 30.0  # a worker on another host that has not beaten for this long is gone


def pid_alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def launch(train_args: Sequence[str], run_dir: str | Path | None = None, family: str = "run",
           env: dict | None = None) -> RunDir:
    """Start a training worker for `rectune train ARGS --run-dir DIR`; returns its run directory at once.

    With a run directory already holding a saved RunSpec and no ARGS, the worker runs exactly that spec.
    """
    run = RunDir(run_dir or runs_root() / new_run_id(family))
    spawn(["train", *train_args, "--run-dir", str(run.path)], run, env)
    if run.exists():
        RunIndex(run.path.parent).upsert(run)  # listed (queued) at once, before its worker has started
    return run


def spawn(rectune_args: Sequence[str], job: RunDir, env: dict | None = None) -> int:
    """Start `rectune ARGS` as a worker in its own session, logging to the job's worker.log; returns its pid.

    The job directory gets a 'queued' status naming the pid at once, so readers can tell a worker that
    never started from one that is starting.
    """
    job.path.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "recsys_core", *rectune_args]
    log = open(job.log_path, "ab")
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project_root()), child_env.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=child_env, cwd=os.getcwd())
    log.close()
    if not job.status_path.exists():
        job.write_status("queued", pid=proc.pid, command=cmd)
    # Reap the child when it ends so it never lingers as a zombie that looks alive.
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc.pid


def worker_gone(run: RunDir, status: dict) -> bool:
    """Whether an active run's worker has ended (read only: the pid on this host, else the heartbeat's age)."""
    if status.get("state") not in ACTIVE:
        return False
    if time.time() - status.get("updated", 0) <= LAUNCH_GRACE:
        return False  # a just-launched worker has not written its own status yet
    if status.get("host", socket.gethostname()) == socket.gethostname() and status.get("pid"):
        return not pid_alive(status.get("pid"))
    age = run.heartbeat_age()
    return age is None or age > HEARTBEAT_STALE


def _interrupted(run: RunDir, status: dict) -> dict:
    again = (f"resume with: rectune train --resume {run.path}" if run.exists()
             else "start it again (its spec is kept in the job directory)")
    return {**status, "state": "interrupted",
            "error": f"the worker (pid {status.get('pid')}) ended without finishing (killed or crashed); {again}"}


def live_status(run: RunDir) -> dict:
    """The run's status as readers should show it: an active run whose worker is gone reads 'interrupted'.

    Nothing is written; `check_alive` is the explicit check that records it.
    """
    status = run.read_status()
    return _interrupted(run, status) if worker_gone(run, status) else status


def check_alive(run: RunDir) -> dict:
    """The run's status; an active run whose worker is gone is marked 'interrupted' on disk (an explicit check)."""
    status = run.read_status()
    if worker_gone(run, status):
        derived = _interrupted(run, status)
        status = run.write_status("interrupted", error=derived["error"])
        RunIndex(run.path.parent).upsert(run)
    return status


def poll(run: RunDir) -> dict:
    """Status (a dead worker shows as interrupted) and every metrics record logged so far; reads only."""
    return {"status": live_status(run), "metrics": run.read_metrics()}


def stop(run: RunDir, grace: float = 15.0) -> dict:
    """Ask the worker to stop at its next step; kill it if it has not stopped after `grace` seconds."""
    status = run.read_status()
    if status.get("state") not in ACTIVE:
        return status
    run.request_stop()
    pid = status.get("pid")
    deadline = time.time() + grace
    while time.time() < deadline:
        if run.read_status().get("state") not in ACTIVE or not pid_alive(pid):
            break
        time.sleep(0.2)
    if pid_alive(pid):
        try:
            os.killpg(os.getpgid(int(pid)), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for _ in range(50):
            if not pid_alive(pid):
                break
            time.sleep(0.1)
    status = run.read_status()
    if status.get("state") in ACTIVE:
        status = run.write_status("stopped", error=f"killed after not stopping within {grace:g}s")
        RunIndex(run.path.parent).upsert(run)
    return status
