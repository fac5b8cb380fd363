"""Landing page."""
import streamlit as st

from pages.common import active_dataset

ds = active_dataset()
st.title("RecTune Studio")
st.markdown(
    "Transfer learning and incremental fine-tuning for recommender systems. "
    "Explore an interaction dataset, train a recommender from a pretrained base with a fine-tuning "
    "strategy, and inspect what it recommends and how it differs from its base."
)
c1, c2, c3 = st.columns(3)
c1.metric("Interactions", f"{len(ds):,}")
c2.metric("Users", f"{ds.n_users:,}")
c3.metric("Items", f"{ds.n_items:,}")
st.info("Open **Data** in the sidebar to see what is in the active dataset.")
