"""A live replay as a background job: a dataset's later part streamed, in time order, into a served model.

The studio's Live page (and `rectune live --job-dir DIR`) saves a `LiveSpec` in a job directory. The
worker trains a base on the first `start_frac` of the data in time (JOB/base, an ordinary run), starts
`rectune serve` on it (JOB/serve is the service's state: events, versions, decisions), and replays the
rest over HTTP at `speed` events per second. It is prequential: each event's user is asked for
recommendations *before* the event is posted, so the logged NDCG@10 measures the served model on what
the user did next. One progress record per batch goes to metrics.jsonl. A STOP file (or SIGTERM) ends
it after the batch in flight; started again, it resumes after the last event the service stored.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlparse

import numpy as np
import pandas as pd

from recsys_core.config_fields import check_fields
from recsys_core.data.source import DataSource, load_source
from recsys_core.data.splits import chronological
from recsys_core.errors import ConfigError, RecTuneError
from recsys_core.eval.pointwise import ndcg_at
from recsys_core.models import family_class
from recsys_core.paths import project_root
from recsys_core.runs.execute import execute_run
from recsys_core.runs.launcher import spawn, stop
from recsys_core.runs.spec import RunSpec
from recsys_core.runs.worker import StopSignal, heartbeat
from recsys_core.storage.atomic import atomic_write_json, read_json
from recsys_core.storage.rundir import RunDir, new_run_id, runs_root

SPEC_FILE = "live.json"


@dataclass(frozen=True)
class LiveSpec:
    """What to replay into which model, how fast, and when the service updates."""

    data: DataSource = field(default_factory=DataSource)
    family: str = field(default="mf", metadata={"help": "model family of the served base"})
    start_frac: float = field(default=0.6, metadata={"help": "share of interactions (in time) the base trains on",
                                                     "min": 0.1, "max": 0.95})
    speed: float = field(default=100.0, metadata={"help": "events per second replayed (0 = as fast as possible)",
                                                  "min": 0.0})
    batch: int = field(default=25, metadata={"help": "events per POST /events", "min": 1, "max": 1000})
    update_every: int = field(default=2000, metadata={"help": "the service trains a new version after this many "
                                                              "new events", "min": 0})
    update_epochs: int = field(default=5, metadata={"help": "most epochs one update trains", "min": 1})
    base_epochs: int = field(default=20, metadata={"help": "most epochs the base trains", "min": 1})
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "live option")
        family_class(self.family)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "data": self.data.as_dict()}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "LiveSpec":
        values = dict(values)
        values["data"] = DataSource.from_dict(values.get("data"))
        return cls(**values)


def live_root() -> Path:
    return runs_root() / "live"


def new_live_job(spec: LiveSpec, root: str | Path | None = None) -> RunDir:
    """Save the spec in a new job directory and start its worker; returns the job directory at once."""
    job = RunDir(Path(root or live_root()) / new_run_id(f"live-{spec.family}"))
    job.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(job.path / SPEC_FILE, spec.to_json())
    spawn(["live", "--job-dir", str(job.path)], job)
    return job


def resume_live_job(job: RunDir) -> None:
    """Start a stopped or interrupted replay again; it continues after the last event the service stored."""
    job.stop_path.unlink(missing_ok=True)
    job.write_status("queued", error=None)
    spawn(["live", "--job-dir", str(job.path)], job)


def stop_live_job(job: RunDir, grace: float = 10.0) -> dict:
    """Ask a replay to stop: after the batch in flight, or at the base's next step while the base trains."""
    job.request_stop()
    base = RunDir(job.path / "base")
    if base.status_path.exists() and base.read_status().get("state") in ("queued", "running"):
        base.request_stop()  # the base's trainer watches its own folder's STOP file
    return stop(job, grace=grace)


class StopRequested(Exception):
    """The job was asked to stop before its replay began."""


def load_live_spec(job: RunDir) -> LiveSpec:
    values = read_json(job.path / SPEC_FILE)
    if values is None:
        raise RecTuneError(f"{job.path}: not a live replay job ({SPEC_FILE} missing or unreadable)")
    return LiveSpec.from_json(values)


class Client:
    """A keep-alive HTTP/JSON client for the local service (one connection, reopened if it drops)."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.connect()
        # small requests and replies: without TCP_NODELAY, Nagle + delayed ACKs add ~40 ms to every call
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict]:
        data = json.dumps(body) if body is not None else None
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers={"content-type": "application/json"})
                response = self.conn.getresponse()
                return response.status, json.loads(response.read() or b"{}")
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = self._connect()
                if attempt == 2:
                    raise
        return 0, {}  # not reached: the second failure raises


def split_stream(ds, start_frac: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the base's interactions, the events to replay), raw ids, in time order."""
    ordered = chronological(ds.interactions)
    frame = pd.DataFrame({"user": ordered["user"].astype(str).to_numpy(), "item": ordered["item"].astype(str).to_numpy(),
                          "rating": ordered["rating"].astype(float).to_numpy(),
                          "timestamp": ordered["timestamp"].astype(float).to_numpy()})
    cut = int(len(frame) * start_frac)
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


def train_base(job: RunDir, spec: LiveSpec, prefix: pd.DataFrame, say: Callable[[str], None]) -> RunDir:
    """JOB/base: the family trained on the first part of the data (kept, so a resumed replay reuses it)."""
    base = RunDir(job.path / "base")
    state = base.read_status().get("state")
    if state == "finished" and (base.model_dir / "model.json").exists():
        return base
    resume = state in ("stopped", "interrupted") and base.checkpoint_dir.exists()  # a stopped job's base goes on
    if not resume:
        base.path.mkdir(parents=True, exist_ok=True)
        prefix.to_csv(base.path / "base-data.csv", index=False)
        source = spec.data.over_csv(base.path / "base-data.csv",
                                    f"{spec.data.name or Path(spec.data.path).name} (first {spec.start_frac:.0%})")
        trainable = family_class(spec.family).trainable
        RunSpec.create(source, spec.family, train={"epochs": spec.base_epochs} if trainable else None,
                       seed=spec.seed).save(base.path)
    base.stop_path.unlink(missing_ok=True)
    say(f"{'resuming' if resume else 'training'} the base ({spec.family}) on {len(prefix):,} interactions")
    result = execute_run(base, resume=resume, progress=say)
    if result.status == "stopped" and job.stop_requested():
        raise StopRequested()
    if result.status != "finished":
        raise RecTuneError(f"the base did not finish ({result.status}); see {base.log_path}")
    return base


def start_server(job: RunDir, base: RunDir, spec: LiveSpec, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """`rectune serve` on a free loopback port for the base (resuming JOB/serve's versions); (process, url)."""
    state = job.path / "serve"
    (state / "server.json").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(project_root()), os.environ.get("PYTHONPATH")]))}
    log = open(job.path / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "recsys_core", "serve", "--run", str(base.path), "--port", "0",
                             "--state-dir", str(state), "--update-every", str(spec.update_every),
                             "--update-epochs", str(spec.update_epochs)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    log.close()
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = read_json(state / "server.json")
        if info:
            return proc, info["url"]
        if proc.poll() is not None:
            raise RecTuneError(f"the service ended at start (exit code {proc.returncode}); see {job.path / 'server.log'}")
        time.sleep(0.2)
    proc.kill()
    raise RecTuneError(f"the service did not start within {timeout:.0f}s; see {job.path / 'server.log'}")


def replay_batch(client: Client, events: pd.DataFrame) -> dict:
    """Ask for each event's user's top 10, then post the batch: the batch's prequential figures."""
    ranks, latencies, unknown = [], [], 0
    for user, item in zip(events["user"].tolist(), events["item"].tolist()):
        start = time.perf_counter()
        status, body = client.call("GET", f"/recommend?user={quote(user)}&k=10")
        latencies.append((time.perf_counter() - start) * 1000)
        if status == 200:
            shown = [i["item"] for i in body["items"]]
            ranks.append(shown.index(item) if item in shown else -1)
        else:
            unknown += 1
            ranks.append(-1)
    status, body = client.call("POST", "/events", {"events": events.to_dict("records")})
    if status != 200:
        raise RecTuneError(f"the service refused a batch of the replay ({status}): {body.get('error')}")
    ndcg = ndcg_at(np.array(ranks))
    return {"events": int(len(events)), "ndcg@10": float(ndcg.mean()), "hits": int((ndcg > 0).sum()),
            "unknown_users": unknown, "latency_p50_ms": float(np.percentile(latencies, 50)),
            "latency_p99_ms": float(np.percentile(latencies, 99)), "version": int(body.get("version", 0)),
            "events_total": int(body.get("events_total", 0))}


def _replay(job: RunDir, spec: LiveSpec, client: Client, stream: pd.DataFrame, stop: StopSignal) -> str:
    """Replay from the first event the service has not stored; 'finished' or 'stopped'."""
    offset = int(client.call("GET", "/health")[1].get("events", 0))
    started, first = time.time(), offset
    while offset < len(stream):
        if stop():
            return "stopped"
        batch = stream.iloc[offset: offset + spec.batch]
        record = replay_batch(client, batch)
        offset += len(batch)
        job.append_metrics({"time": time.time(), "offset": offset, "total": int(len(stream)),
                            "t_event": float(batch["timestamp"].iloc[-1]), **record})
        if spec.speed > 0:  # keep to the chosen pace
            time.sleep(max(0.0, started + (offset - first) / spec.speed - time.time()))
    return "finished"


def execute_live(job: RunDir, say: Callable[[str], None] = lambda m: None) -> str:
    """The live job's worker: base, service, replay; the job's status tells the page what is happening."""
    spec = load_live_spec(job)
    job.stop_path.unlink(missing_ok=True)
    job.write_status("running", pid=os.getpid(), error=None, started=time.time(), stage="preparing")
    stop, proc = StopSignal(job), None
    try:
        with heartbeat(job):
            ds = load_source(spec.data)
            prefix, stream = split_stream(ds, spec.start_frac)
            if not len(stream):
                raise ConfigError("nothing to replay: the data after the base's share is empty", field="start_frac")
            try:
                base = train_base(job, spec, prefix, say)
            except StopRequested:
                job.write_status("stopped", stage="stopped", reason="stopped while the base trained")
                return "stopped"
            job.write_status(stage="starting the service")
            proc, url = start_server(job, base, spec)
            job.write_status(stage="replaying", url=url, total=int(len(stream)))
            say(f"replaying {len(stream):,} events into {url} at {spec.speed:g} events/s")
            state = _replay(job, spec, Client(url), stream, stop)
    except RecTuneError as exc:
        job.write_status("failed", error=str(exc))
        raise
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    job.write_status(state, stage=state, reason="every event replayed" if state == "finished" else "stop requested")
    return state
