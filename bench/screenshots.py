"""Screenshots of the studio on the demo data for the README (docs/screenshots/), in headless chromium.

    python bench/screenshots.py [--model mf] [--epochs 15]

Trains one short run through the studio itself (Setup -> Train), then shoots Data, Train and
Recommendations. Uses a temporary runs folder, so your own runs are untouched.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_studio_e2e import CHROMIUM, CHROMIUM_ARGS, _nav, _settle, start_studio  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mf")
    p.add_argument("--epochs", default="15")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, start_studio(Path(tmp)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1100})
        page.set_default_timeout(300_000)
        page.goto(url)
        _settle(page)
        _nav(page, "Data")
        page.get_by_text("Item popularity").first.wait_for()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(OUT / "data.png"))
        _nav(page, "Setup")
        page.get_by_role("combobox", name="Model family").click()
        page.get_by_role("option", name=args.model, exact=True).click()
        _settle(page)
        page.get_by_text("Training options").click()
        box = page.get_by_label("epochs", exact=True)
        if box.count():
            box.fill(args.epochs)
            box.press("Enter")
            _settle(page)
        _nav(page, "Train")
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Finished (").wait_for()
        page.wait_for_timeout(2000)
        page.screenshot(path=str(OUT / "train.png"))
        _nav(page, "Recommendations")
        page.locator('[data-testid="stTable"] tbody tr').nth(9).wait_for()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(OUT / "recommendations.png"))
        browser.close()
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
