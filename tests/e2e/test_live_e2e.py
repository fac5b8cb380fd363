"""End to end: the Live page in headless Chromium. Start a replay of the demo data into a served model, watch
events flow, reload mid-replay and find the same replay still running and still growing, stop it, see every
label say stopped. A screenshot goes to tests/e2e/artifacts/live.png."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_studio_e2e import CHROMIUM, CHROMIUM_ARGS, _fill, _nav, _settle, _shot, start_studio

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                                  "(.ci/run installs it: apt-get install chromium)")]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("live-e2e")
    with start_studio(tmp) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        pg.set_default_timeout(60_000)
        pg.goto(url)
        yield pg
        browser.close()


def _replayed(page) -> int:
    """The 'Events replayed' tile's count (0 before the first batch)."""
    tile = page.locator('[data-testid="stMetric"]', has_text="Events replayed")
    text = tile.locator('[data-testid="stMetricValue"]').text_content()
    return int(text.replace(",", "").strip())


def _wait_replayed_above(page, count: int, timeout: int = 240_000) -> None:
    page.wait_for_function(
        """n => { const t = [...document.querySelectorAll('[data-testid="stMetric"]')]
                  .find(m => m.innerText.includes('Events replayed'));
                  if (!t) return false;
                  const v = t.querySelector('[data-testid="stMetricValue"]').innerText;
                  return parseInt(v.replace(/,/g, '')) > n; }""", arg=count, timeout=timeout)


def test_start_watch_reload_and_stop_a_live_replay(page) -> None:
    try:
        _flow(page)
    except Exception:
        _shot(page, "live-failure")
        raise


def _flow(page) -> None:
    page.get_by_text("Transfer learning and incremental fine-tuning").wait_for()
    _settle(page)
    _nav(page, "Live")
    page.get_by_text("Start a replay on the active dataset").wait_for()
    for label, value in (("base epochs", "2"), ("speed", "40"), ("update every", "300"), ("update epochs", "1")):
        _fill(page, label, value)
    page.get_by_role("button", name="Start replay").click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('live')", timeout=60_000)
    job_id = re.search(r"live=([\w-]+)", page.url).group(1)
    # the base trains on the demo's first 60%, the service starts, then events flow
    _wait_replayed_above(page, 0, timeout=300_000)
    first = _replayed(page)
    _wait_replayed_above(page, first)

    page.reload()  # a new page load: the URL alone brings the same replay back, still running
    page.get_by_text("Events replayed").first.wait_for()
    assert re.search(r"live=([\w-]+)", page.url).group(1) == job_id
    assert page.get_by_text(job_id).count() > 0
    after_reload = _replayed(page)
    assert after_reload >= first
    _wait_replayed_above(page, after_reload)
    page.get_by_text("Prequential NDCG@10 (scored before learning)").first.wait_for()
    _shot(page, "live")

    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"Stopped: [\d,]+ events replayed")).wait_for(timeout=60_000)
    _settle(page)
    tile = page.locator('[data-testid="stMetric"]', has_text="State")
    assert tile.locator('[data-testid="stMetricValue"]').text_content().strip() == "stopped"
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, "live-stopped")

    # Resume goes on after the last event the service stored (no event replayed twice), then stop again
    stopped_at = _replayed(page)
    page.get_by_role("button", name="Resume").click()
    _wait_replayed_above(page, stopped_at, timeout=300_000)
    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"Stopped: [\d,]+ events replayed")).wait_for(timeout=60_000)
