"""Shared UI helpers: the active dataset (cached per process) and the sidebar."""
from __future__ import annotations

import streamlit as st

from recsys_core.data.dataset import Dataset, load_dataset


@st.cache_resource(show_spinner="Loading the demo dataset…")
def load_demo() -> Dataset:
    return load_dataset("demo")


def active_dataset() -> Dataset:
    """The dataset the pages work on: the demo until the user uploads another."""
    return st.session_state.get("dataset") or load_demo()


def sidebar(ds: Dataset) -> None:
    with st.sidebar:
        st.markdown("### RecTune Studio")
        st.caption("Active dataset")
        st.markdown(f"**{ds.name}** · {len(ds):,} interactions · {ds.n_users:,} users · {ds.n_items:,} items")
        st.caption("Active run")
        st.markdown(st.session_state.get("run_id", "_none yet_"))
