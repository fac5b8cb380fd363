"""Data page: load the demo or an upload (with a column-mapping step), then see what is in it."""
import plotly.express as px
import streamlit as st

from pathlib import Path

from pages.common import activate_upload, active_dataset, show_error, use_demo
from recsys_core.data.describe import activity_frame, describe, popularity_frame, rating_frame, timeline_frame
from recsys_core.data.source import DataSource
from recsys_core.uploads import column_preview, mapping_spec, save_upload

NONE = "(none)"


@st.cache_data(max_entries=4, show_spinner="Reading the file's columns…")
def cached_preview(path: str, size: int, mtime: float) -> dict:
    """The column preview of an upload, read once per file (not on every widget change)."""
    return column_preview(path)
st.title("Data")

with st.expander("Load data", expanded="dataset_source" not in st.session_state):
    source = st.radio("Source", ["Demo: MovieLens latest-small", "Upload a file"], horizontal=True, key="data.source")
    if source.startswith("Demo"):
        if st.button("Use the demo dataset", key="data.use_demo"):
            use_demo()
            st.rerun()
    else:
        # No type= filter: the loader recognises formats by content and explains what it cannot read, in words.
        upload = st.file_uploader("Interactions (CSV, TSV, Parquet, JSON lines, MovieLens .dat, RecBole .inter)",
                                  key="data.upload")
        items_upload = st.file_uploader("Item text (optional): item id plus title / genres / description",
                                        key="data.items")
        preview = None
        if upload is not None:
            try:
                path = st.session_state.get("upload_path")
                # file_id changes with every upload, so a new file with the same name and size is not mistaken for the old
                signature = (upload.name, upload.size, getattr(upload, "file_id", None))
                if st.session_state.get("upload_name") != signature:
                    path = str(save_upload(upload.name, upload.getvalue()))
                    st.session_state["upload_path"], st.session_state["upload_name"] = path, signature
                preview = cached_preview(path, Path(path).stat().st_size, Path(path).stat().st_mtime)
            except Exception as exc:  # noqa: BLE001 - every problem is shown in words; the active dataset stays
                show_error(exc)
        if preview is not None:
            st.caption(f"{preview['rows']:,} rows; first rows:")
            st.dataframe(preview["head"], hide_index=True)
            st.markdown("**Map the columns**")
            cols = preview["columns"]
            c = st.columns(4)
            mapping = {}
            for k, role in enumerate(["user", "item", "rating", "timestamp"]):
                options = cols if role in ("user", "item") else [NONE] + cols
                guess = preview["mapping"].get(role)
                index = options.index(guess) if guess in options else 0
                mapping[role] = c[k].selectbox(role, options, index=index, key=f"data.map.{role}")
            order = "time"
            if mapping["timestamp"] == NONE:
                order = st.radio("Without timestamps, what orders each user's interactions?", ["time", "file"],
                                 format_func={"time": "nothing: evaluate with a seeded random leave-one-out",
                                              "file": "the file: each user's rows are listed in time order "
                                                      "(SASRec/RecBole sequence files)"}.get,
                                 key="data.order", help="'file' makes each user's last row the test item, and "
                                 "sequence models read the rows in file order")
            c = st.columns(3)
            min_rating = c[0].number_input("keep ratings of at least", value=0.0, key="data.min_rating",
                                           help="0 keeps every interaction")
            min_user = c[1].number_input("drop users with fewer interactions than", value=0, step=1, key="data.min_user")
            drop_invalid = c[2].checkbox("drop invalid rows (reported) instead of stopping", key="data.drop_invalid")
            if st.button("Load this dataset", type="primary", key="data.load"):
                try:
                    columns = mapping_spec({r: (None if c == NONE else c) for r, c in mapping.items()}, cols,
                                           preview["header"])
                    items_path = str(save_upload(items_upload.name, items_upload.getvalue())) if items_upload else None
                    source = DataSource(path, columns=columns, sep=preview["sep"], no_header=not preview["header"],
                                        items=items_path, name=Path(upload.name).stem, drop_invalid=bool(drop_invalid),
                                        min_rating=float(min_rating) if min_rating else None,
                                        min_user_interactions=int(min_user), order=order)
                    ds = activate_upload(source)
                except Exception as exc:  # noqa: BLE001 - the previous dataset stays active
                    show_error(exc)
                else:
                    st.success(f"Loaded {len(ds):,} interactions from {upload.name}.")
                    st.rerun()

@st.cache_data(max_entries=8, show_spinner="Describing the dataset…")
def overview(fingerprint: tuple, _ds) -> dict:
    """Counts and chart frames of a dataset, computed once per dataset (not on every rerun of every session)."""
    return {"info": describe(_ds), "timeline": timeline_frame(_ds), "ratings": rating_frame(_ds),
            "popularity": popularity_frame(_ds), "activity": activity_frame(_ds)}


ds = active_dataset()
frame = ds.interactions
view = overview((ds.name, ds.order, len(ds), ds.n_users, ds.n_items, int(frame["u"].sum()), int(frame["i"].sum()),
                 float(frame["timestamp"].fillna(0).sum()), float(frame["rating"].sum())), ds)
info = view["info"]
st.subheader(f"{ds.name}")
c1, c2, c3, c4, c5 = st.columns(5)
c1.metric("Interactions", f"{info['interactions']:,}")
c2.metric("Users", f"{info['users']:,}")
c3.metric("Items", f"{info['items']:,}")
c4.metric("Sparsity", f"{info['sparsity']:.2%}")
c5.metric("Item Gini", f"{info['item_popularity']['gini']:.2f}", help="0 = every item equally popular, 1 = one item has all")
if "time_span" in info:
    st.caption(f"From {info['time_span']['first'][:10]} to {info['time_span']['last'][:10]} "
               f"({info['time_span']['days']:,} days). Item text: {'yes' if info['item_text'] else 'no'}.")

left, right = st.columns(2)
timeline = view["timeline"]
if len(timeline):
    left.plotly_chart(px.bar(timeline, x="period", y="interactions", hover_data=["active_users"],
                             title="Interactions over time"), width="stretch")
elif ds.order == "file":
    left.info("No timestamps: each user's rows are in time order in the file, so the split leaves the last rows "
              "out by file order.")
else:
    left.info("No timestamps: the split falls back to a seeded random leave-one-out.")
ratings = view["ratings"]
if len(ratings):
    right.plotly_chart(px.bar(ratings, x="rating", y="interactions", title="Rating distribution"), width="stretch")
else:
    right.info("No ratings: every interaction counts as implicit feedback.")
left, right = st.columns(2)
left.plotly_chart(px.line(view["popularity"], x="rank", y="interactions", log_y=True, log_x=True,
                          title="Item popularity (long tail, log scales)"), width="stretch")
activity = view["activity"]
activity_fig = px.line(activity[activity["users"] > 0], x="interactions_from", y="users", log_x=True, log_y=True,
                       markers=True, line_shape="hv", hover_data=["interactions_to"],
                       title="User activity (users per bin of interactions, log scales)",
                       labels={"interactions_from": "interactions per user (bin start)", "users": "users",
                               "interactions_to": "bin end"})
right.plotly_chart(activity_fig, width="stretch")

report = info.get("report")
if report:
    st.subheader("Loading and cleaning report")
    st.caption(f"Source: {report['source']} · {report['raw_rows']:,} rows read · mapping "
               + ", ".join(f"{k}={v}" for k, v in report["mapping"].items() if v and k in ("user", "item", "rating", "timestamp")))
    st.dataframe(report["cleaning"], width="stretch", hide_index=True)
    for note in report["notes"]:
        st.caption(note)
    if report["warnings"]:
        for w in report["warnings"]:
            st.warning(w["message"])
    else:
        st.success("No warnings.")
