"""Several browser sessions browsing the studio at once (async Playwright, one Chromium, one context each).

Used by tests/e2e/test_concurrency.py (a short run that checks correctness) and bench/concurrency.py
(a longer run whose latency percentiles go to docs/BENCHMARKS.md).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from tests.e2e.test_studio_e2e import CHROMIUM, CHROMIUM_ARGS

# page title in the sidebar -> text that shows the page has rendered
TOUR = [("Data", "Loading and cleaning report"), ("Train", "Start training"), ("Recommendations", "Top 10"),
        ("Compare", "Runs to compare"), ("Learn", "Incremental update"), ("Home", "Transfer learning")]
BAD_TEXT = ["database is locked", "Traceback", "OperationalError"]


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds from click to the page fully rendered
    pages: list[str] = field(default_factory=list)  # the page of each latency
    errors: list[str] = field(default_factory=list)
    interactions: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        lat = np.array(self.latencies) if self.latencies else np.array([np.nan])
        return {"interactions": self.interactions, "errors": len(self.errors), "seconds": round(self.seconds, 1),
                "p50_s": round(float(np.percentile(lat, 50)), 2), "p95_s": round(float(np.percentile(lat, 95)), 2),
                "max_s": round(float(np.max(lat)), 2), "p95_s_by_page": self.p95_by_page()}

    def p95_by_page(self) -> dict[str, float]:
        out = {}
        for page in dict.fromkeys(self.pages):
            lat = [v for v, p in zip(self.latencies, self.pages) if p == page]
            out[page] = round(float(np.percentile(lat, 95)), 2)
        return out


async def _settled(page) -> None:
    await page.wait_for_timeout(150)  # let the rerun start before asking whether it has ended
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)


async def _session(browser, url: str, rounds: int, result: LoadResult, index: int) -> None:
    context = await browser.new_context(viewport={"width": 1300, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    try:
        await page.goto(url)
        await page.get_by_text("Transfer learning").first.wait_for()
        await _settled(page)
        tour = TOUR[index % len(TOUR):] + TOUR[: index % len(TOUR)]  # sessions start on different pages
        for _ in range(rounds):
            for title, shows in tour:
                start = time.perf_counter()
                await page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
                await page.get_by_text(shows).first.wait_for()
                await _settled(page)
                result.latencies.append(time.perf_counter() - start)
                result.pages.append(title)
                result.interactions += 1
                body = await page.locator("body").inner_text()
                for bad in BAD_TEXT:
                    if bad in body:
                        result.errors.append(f"session {index}, {title}: '{bad}' on the page")
                if await page.locator('[data-testid="stException"]').count():
                    result.errors.append(f"session {index}, {title}: an exception box")
    except Exception as exc:  # noqa: BLE001 - a hung or broken session is a finding, not a crash of the harness
        result.errors.append(f"session {index}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await context.close()


async def _run(url: str, sessions: int, rounds: int) -> LoadResult:
    from playwright.async_api import async_playwright

    result = LoadResult()
    start = time.perf_counter()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        await asyncio.gather(*(_session(browser, url, rounds, result, k) for k in range(sessions)))
        await browser.close()
    result.seconds = time.perf_counter() - start
    return result


def browse_concurrently(url: str, sessions: int = 5, rounds: int = 1) -> LoadResult:
    """`sessions` browsers touring every page `rounds` times, at the same time; latencies and errors."""
    return asyncio.run(_run(url, sessions, rounds))


def start_training_jobs(data: str, root, n: int = 2, epochs: int = 400) -> list:
    """`n` real training workers (small SASRec, long enough to outlast the browsing) under `root`."""
    import json

    from recsys_core.runs.launcher import launch

    cfg = root / "load-cfg.json"
    cfg.write_text(json.dumps({"model": {"hidden": 16, "heads": 2, "inner": 32, "max_len": 20},
                               "train": {"batch_size": 8, "patience": 0, "log_every": 1}}))
    return [launch(["--data", data, "--model", "sasrec", "--epochs", str(epochs), "--device", "cpu", "--config", str(cfg)],
                   root / "runs" / f"load-job-{k}") for k in range(n)]
