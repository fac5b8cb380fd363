"""RecTune Studio: the navigation frame and the shared sidebar. Pages hold UI only; the work is in recsys_core."""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="RecTune Studio", page_icon=":material/tune:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/table_chart:"),
    st.Page("pages/setup.py", title="Setup", icon=":material/tune:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/recommendations.py", title="Recommendations", icon=":material/recommend:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("pages/live.py", title="Live", icon=":material/sensors:"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:"),
]

from pages.common import active_dataset, sidebar  # noqa: E402  (after set_page_config)

sidebar(active_dataset())
st.navigation(PAGES).run()
