"""Streamlit AppTest: every page loads on the demo data without an exception."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

PAGES = ["pages/home.py", "pages/data.py"]


@pytest.fixture
def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


def test_home_page_shows_demo_counts(app: AppTest) -> None:
    app.run()
    assert not app.exception
    assert [m.value for m in app.metric] == ["100,836", "610", "9,724"]
    assert "demo" in "".join(md.value for md in app.sidebar.markdown)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads(app: AppTest, page: str) -> None:
    app.run()
    app.switch_page(page).run()
    assert not app.exception, app.exception


def test_data_page_reports_cleaning(app: AppTest) -> None:
    app.run()
    app.switch_page("pages/data.py").run()
    assert app.title[0].value == "Data · demo"
    assert any(s.value == "Cleaning" for s in app.subheader)
