"""RecTune Studio: the navigation frame and the shared sidebar. Pages hold UI only; the work is in recsys_core."""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="RecTune Studio", page_icon="🎛️", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/data.py", title="Data", icon="📊"),
]

from pages.common import active_dataset, sidebar  # noqa: E402  (after set_page_config)

sidebar(active_dataset())
st.navigation(PAGES).run()
