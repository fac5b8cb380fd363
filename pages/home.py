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
st.markdown(
    "1. **Data** — the demo is loaded; upload your own interactions (and item text) and map the columns.\n"
    "2. **Setup** — pick the task, a model family, a pretrained base and a fine-tuning strategy; see what trains.\n"
    "3. **Train** — start a job, watch its loss and validation curves live, stop it when you like.\n"
    "4. **Recommendations** — a user's history, top-K with hits and reasons, beside the base model's.\n"
    "5. **Compare** — runs side by side, by segment, with paired intervals; the experiments' tables.\n"
    "6. **Experiments** — is it worth it? Start a transfer or incremental experiment, watch every arm train, "
    "and read the answer with corrected intervals.\n"
    "7. **Learn** — what each strategy freezes and trains, drawn on a real model, with your own results."
)
