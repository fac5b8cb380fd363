"""Hundreds of malformed and hostile files through the library and through the studio's upload path.

Every file must end in a loaded dataset or a clear one-line RecTuneError (never another exception, never
a traceback in the message), within a bounded time, inside the uploads folder, and leave the previously
loaded dataset and the runs on disk untouched.
"""
from __future__ import annotations

import hashlib
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from recsys_core.data.dataset import load_dataset
from recsys_core.data.splits import make_split
from recsys_core.errors import RecTuneError
from recsys_core.data.source import DataSource, load_source
from recsys_core.uploads import column_preview, mapping_spec, save_upload, uploads_root
from tests.hostile import KINDS, hostile_file

SECONDS_PER_FILE = 30  # a hang is a failure, not a slow test
EXAMPLES = 520


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_clear(exc: RecTuneError) -> None:
    message = str(exc)
    assert message.strip(), "an empty error message"
    assert "Traceback" not in message and 'File "' not in message, message
    assert len(message) < 2000, f"an error message of {len(message)} characters"


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix not in (".db-wal", ".db-shm")}


def studio_load(name: str, data: bytes) -> str:
    """What the Data page does with an upload: store it, preview and map its columns, load it."""
    path = save_upload(name, data)
    assert uploads_root() in path.parents, f"{name!r} was stored outside the uploads folder: {path}"
    preview = column_preview(path)
    cols = preview["columns"]
    guess = preview["mapping"]
    # the page's select boxes default to the guess, else the first columns
    mapping = {"user": guess.get("user") or cols[0], "item": guess.get("item") or cols[min(1, len(cols) - 1)],
               "rating": guess.get("rating"), "timestamp": guess.get("timestamp")}
    ds = load_source(DataSource(str(path), columns=mapping_spec(mapping, cols, preview["header"]),
                                no_header=not preview["header"]))
    make_split(ds)
    return "loaded"


def library_load(path: Path) -> str:
    ds = load_dataset(path)
    make_split(ds)
    return "loaded"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """An uploads folder, a runs folder holding a finished run, and a dataset loaded before the storm."""
    import os

    from recsys_core.runs.execute import execute_run
    from recsys_core.runs.spec import RunSpec
    from tests.conftest import make_interactions

    root = tmp_path_factory.mktemp("hostile")
    old = {k: os.environ.get(k) for k in ("RECTUNE_UPLOADS_DIR", "RECTUNE_RUNS_DIR")}
    os.environ["RECTUNE_UPLOADS_DIR"] = str(root / "uploads")
    os.environ["RECTUNE_RUNS_DIR"] = str(root / "runs")
    csv = root / "before.csv"
    make_interactions().to_csv(csv, index=False)
    execute_run(RunSpec.create(str(csv), "pop").save(root / "runs" / "earlier"))
    previous = load_dataset(csv)
    state = {"runs": fingerprint(root / "runs"), "dataset": hashlib.sha256(previous.interactions.to_csv().encode()).hexdigest(),
             "outcomes": {}, "messages": {}, "root": root, "previous": previous,
             "previous_source": DataSource(str(csv))}
    yield state
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(example=hostile_file())
def test_hostile_files_get_a_clear_answer_and_lose_nothing(workspace, example) -> None:
    name, data, kind = example
    outcomes = workspace["outcomes"].setdefault(kind, {"loaded": 0, "refused": 0})
    for route in ("studio", "library"):
        start = time.perf_counter()
        try:
            with time_limit(SECONDS_PER_FILE):
                if route == "studio":
                    outcome = studio_load(name, data)
                else:
                    path = workspace["root"] / "library" / f"f{hashlib.sha256(data).hexdigest()[:12]}{Path(name).suffix[:8]}"
                    path.parent.mkdir(exist_ok=True)
                    path.write_bytes(data)
                    outcome = library_load(path)
        except RecTuneError as exc:
            assert_clear(exc)
            outcome = "refused"
            workspace["messages"].setdefault(kind, set()).add(str(exc)[:160])
        took = time.perf_counter() - start
        assert took < SECONDS_PER_FILE
        outcomes[outcome] += 1
        workspace["slowest"] = max(workspace.get("slowest", 0.0), took)


def test_every_kind_was_tried_and_nothing_was_lost(workspace) -> None:
    """Runs after the storm (pytest keeps file order): all kinds seen, runs and the earlier dataset untouched."""
    outcomes = workspace["outcomes"]
    if not outcomes:
        pytest.skip("run together with test_hostile_files_get_a_clear_answer_and_lose_nothing")
    assert set(outcomes) == set(KINDS), f"kinds never generated: {set(KINDS) - set(outcomes)}"
    assert sum(o["loaded"] + o["refused"] for o in outcomes.values()) >= 2 * 500
    assert sum(o["refused"] for o in outcomes.values()) > 0
    assert fingerprint(workspace["root"] / "runs") == workspace["runs"]
    ds = workspace["previous"]
    assert hashlib.sha256(ds.interactions.to_csv().encode()).hexdigest() == workspace["dataset"]
    # uploads stayed inside uploads/: nothing else appeared beside the folders we made
    assert sorted(p.name for p in workspace["root"].iterdir()) == ["before.csv", "library", "runs", "uploads"]
    print({k: v for k, v in sorted(outcomes.items())}, f"slowest file: {workspace['slowest']:.2f} s")
    for kind, messages in sorted(workspace["messages"].items()):
        print(kind, "|", " || ".join(sorted(messages)[:4]))


STUDIO_EXAMPLES = 500


@pytest.fixture(scope="module")
def studio(workspace):
    """The Data page in AppTest with a small dataset already active (the one that must survive)."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["dataset_source"] = workspace["previous_source"]
    at.run()
    at.switch_page("pages/data.py").run()
    at.radio(key="data.source").set_value("Upload a file").run()
    assert not at.exception, at.exception
    return {"app": at, "outcomes": {}}


@settings(max_examples=STUDIO_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(example=hostile_file())
def test_hostile_uploads_in_the_studio_show_words_and_keep_the_dataset(workspace, studio, example) -> None:
    name, data, kind = example
    name = name.replace("\x00", "")  # a browser cannot send a file name with a NUL byte (the library test covers it)
    at, previous = studio["app"], workspace["previous_source"]
    at.session_state["dataset_source"] = previous
    start = time.perf_counter()
    with time_limit(SECONDS_PER_FILE):
        at.file_uploader(key="data.upload").upload(name, data).run()
        assert not at.exception, at.exception
        loads = [b for b in at.button if b.key == "data.load"]
        if loads:
            loads[0].click().run()
            assert not at.exception, at.exception
    loaded = at.session_state["dataset_source"] is not previous  # a good load replaces it (and reruns the page)
    if not loaded:
        assert at.error, f"{kind}: no error shown for a file that did not load"
        assert all("Traceback" not in e.value and len(e.value) < 2000 for e in at.error)
        assert at.session_state["dataset_source"] is previous, "a failed upload replaced the active dataset"
    outcome = studio["outcomes"].setdefault(kind, {"loaded": 0, "refused": 0})
    outcome["loaded" if loaded else "refused"] += 1
    studio["slowest"] = max(studio.get("slowest", 0.0), time.perf_counter() - start)


def test_the_studio_saw_every_kind(workspace, studio) -> None:
    outcomes = studio["outcomes"]
    if not outcomes:
        pytest.skip("run together with the studio storm")
    assert set(outcomes) == set(KINDS)
    assert sum(o["loaded"] + o["refused"] for o in outcomes.values()) >= 500
    assert fingerprint(workspace["root"] / "runs") == workspace["runs"]
    print({k: v for k, v in sorted(outcomes.items())}, f"slowest upload: {studio['slowest']:.2f} s")
