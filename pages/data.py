"""Data page: what is in the active dataset, and what loading found and cleaned."""
import plotly.express as px
import streamlit as st

from pages.common import active_dataset
from recsys_core.data.describe import activity_frame, describe, popularity_frame

ds = active_dataset()
info = describe(ds)
st.title(f"Data · {ds.name}")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Interactions", f"{info['interactions']:,}")
c2.metric("Users", f"{info['users']:,}")
c3.metric("Items", f"{info['items']:,}")
c4.metric("Sparsity", f"{info['sparsity']:.2%}")
if "time_span" in info:
    st.caption(f"From {info['time_span']['first'][:10]} to {info['time_span']['last'][:10]} "
               f"({info['time_span']['days']:,} days)")

left, right = st.columns(2)
pop = popularity_frame(ds)
left.plotly_chart(px.line(pop, x="rank", y="interactions", log_y=True, title="Item popularity (long tail)"),
                  width="stretch")
act = activity_frame(ds)
right.plotly_chart(px.histogram(act, x="interactions", log_y=True, nbins=60, title="User activity"),
                   width="stretch")

report = info.get("report")
if report:
    st.subheader("Cleaning")
    st.dataframe(report["cleaning"], width="stretch")
    st.subheader("Warnings")
    if report["warnings"]:
        for w in report["warnings"]:
            st.warning(w["message"])
    else:
        st.success("No warnings.")
