"""End to end: the real studio in headless Chromium (Debian's chromium, driven by Playwright).

Upload a small CSV, map its columns, start a short CPU training run, watch the loss curve update, reload
mid-training and see the same run still updating, let it finish, and read ten recommendations for a user.
A screenshot of every page goes to tests/e2e/artifacts/.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_studio(tmp: Path):
    """Serve the studio on a free localhost port with its runs and uploads under `tmp`; yields its URL."""
    port = _free_port()
    env = {**os.environ, "RECTUNE_RUNS_DIR": str(tmp / "runs"), "RECTUNE_UPLOADS_DIR": str(tmp / "uploads"),
           "PYTHONPATH": str(ROOT)}
    log = open(tmp / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the studio did not start: " + (tmp / "streamlit.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        _stop_workers(tmp / "runs")


def _stop_workers(root: Path) -> None:
    """Workers run in their own sessions; a test that ends early must not leave them training."""
    from recsys_core.runs.launcher import stop
    from recsys_core.storage.rundir import RunDir

    for status in root.rglob("status.json"):
        stop(RunDir(status.parent), grace=5)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    with start_studio(tmp) as url:
        yield url, tmp


@pytest.fixture(scope="module")
def page(studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1600})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished its current run (no 'Running' indicator)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _nav(page, title: str) -> None:
    """Go to a page through the sidebar (a client-side switch keeps the session: a new URL would not)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    _settle(page)


def _fill(page, label: str, value: str) -> None:
    """Type into the one input labelled `label`. While Streamlit reruns, a widget the previous run drew
    can linger beside the new one with the same label (stale until the run ends): wait for one."""
    page.wait_for_function("label => document.querySelectorAll(`input[aria-label=\"${label}\"]`).length === 1",
                           arg=label, timeout=60_000)
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    _settle(page)


def _loss_points(page) -> int:
    text = page.get_by_text(re.compile(r"Training loss: \d+ points")).first.text_content()
    return int(re.search(r"(\d+) points", text).group(1))


def test_upload_train_watch_reload_and_recommend(studio, page, tmp_path) -> None:
    try:
        _flow(studio, page, tmp_path)
    except Exception:
        _shot(page, "failure")  # what the browser showed when the test failed
        raise


def _flow(studio, page, tmp_path) -> None:
    url, _ = studio
    from tests.test_experiments import interleaved

    csv = tmp_path / "shop.csv"
    interleaved(n_users=60, n_items=40, per_user=20).rename(
        columns={"user": "customer_id", "item": "product_id", "rating": "stars", "timestamp": "ts"}).to_csv(csv, index=False)

    page.goto(url)
    page.get_by_text("Transfer learning and incremental fine-tuning").wait_for()
    _settle(page)
    _shot(page, "home")

    # Data: upload, map the columns, load
    _nav(page, "Data")
    page.get_by_text("Upload a file").click()
    # a bad file first: its problem is shown in words, no traceback, and the demo stays active
    bad = tmp_path / "export.csv"
    bad.write_bytes(b"\x00\x01\x02binary\xff\xfe" * 64)
    page.locator('input[type="file"]').first.set_input_files(str(bad))
    page.locator('[data-testid="stAlertContentError"]').first.wait_for()
    assert "binary" in page.locator('[data-testid="stAlertContentError"]').first.text_content()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("100,836").count() > 0
    page.locator('input[type="file"]').first.set_input_files(str(csv))
    page.get_by_text("Map the columns").wait_for()
    _settle(page)
    page.get_by_role("button", name="Load this dataset").click()
    page.get_by_text("shop").first.wait_for()
    _settle(page)
    assert page.get_by_text("1,200").count() > 0  # 60 users x 20 interactions
    _shot(page, "data")

    # Setup: a small SASRec that logs every step and runs long enough to watch
    _nav(page, "Setup")
    page.get_by_text("What trains").wait_for()
    assert page.get_by_text("Dataset: shop").count() > 0
    page.get_by_text("Training options").click()
    for label, value in (("epochs", "40"), ("patience", "0"), ("log every", "1")):
        _fill(page, label, value)
    page.get_by_text("rectune train --data").first.wait_for()
    _shot(page, "setup")

    # Train: start, watch the loss curve grow, reload mid-run, see it still growing
    _nav(page, "Train")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Training loss: \d+ points")).first.wait_for(timeout=120_000)
    first = _loss_points(page)
    page.wait_for_function(f"() => /Training loss: (\\d+) points/.exec(document.body.innerText) && "
                           f"parseInt(/Training loss: (\\d+) points/.exec(document.body.innerText)[1]) > {first}")
    second = _loss_points(page)
    run_id = re.search(r"run=([\w-]+)", page.url).group(1)
    page.reload()
    page.get_by_text(re.compile(r"Training loss: \d+ points")).first.wait_for()
    assert run_id in page.url  # the reload re-attached to the same run
    page.wait_for_function("() => /Finished|Stopped/.test(document.body.innerText) || "
                           f"parseInt((/Training loss: (\\d+) points/.exec(document.body.innerText) || [0, 0])[1]) > {second}")
    _shot(page, "train")
    page.get_by_text(re.compile(r"Finished \(")).wait_for(timeout=240_000)
    assert second > first

    # Recommendations: ten items for a user
    _nav(page, "Recommendations")
    # a page switch clears Streamlit's query string; the studio puts the active run back on that page's first run
    page.wait_for_function(f"() => new URLSearchParams(location.search).get('run') === {run_id!r}", timeout=30_000)
    assert run_id in page.url
    page.get_by_text(re.compile(r"Top 10 · sasrec")).wait_for()
    _settle(page)
    rows = page.locator('[data-testid="stTable"] tbody tr')
    rows.nth(9).wait_for()
    assert rows.count() == 10
    _shot(page, "recommendations")

    for name, shows in (("compare", "Runs to compare"), ("learn", "Incremental update")):
        _nav(page, name.capitalize())
        page.get_by_text(shows).first.wait_for()
        _settle(page)
        page.wait_for_function(f"() => new URLSearchParams(location.search).get('run') === {run_id!r}",
                               timeout=30_000)  # every page keeps the active run in the URL
        assert page.locator('[data-testid="stException"]').count() == 0
        _shot(page, name)

    _experiment_flow(page)


def _experiment_flow(page) -> None:
    """Experiments: start a small one on the active data, reload mid-run, re-attach, read the answer."""
    _nav(page, "Experiments")
    page.get_by_text("Time moves on").click()
    _settle(page)
    page.get_by_role("combobox", name="Model family").click()
    page.get_by_role("option", name="mf", exact=True).click()
    _settle(page)
    for label, value in (("max epochs", "60"), ("patience", "0")):
        _fill(page, label, value)
    page.get_by_role("button", name="Start experiment").click()
    page.get_by_text(re.compile(r"Running · \d+ arms done")).first.wait_for(timeout=120_000)
    exp_id = re.search(r"exp=([\w-]+)", page.url).group(1)
    _shot(page, "experiments-running")
    page.reload()
    page.get_by_text(re.compile(r"Running · \d+ arms done|Answer")).first.wait_for(timeout=60_000)
    assert exp_id in page.url  # the reload re-attached to the same experiment
    page.get_by_text("Answer", exact=True).wait_for(timeout=300_000)
    _settle(page)
    page.get_by_text(re.compile(r"simultaneous 95% intervals")).first.wait_for()  # the forest plot's title
    assert page.get_by_text(re.compile(r"comparisons")).count() > 0  # the verdict names the correction
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, "experiments")
