"""Recommendations page: one user's history and top-K (with hits and reasons), beside the base model's."""
import numpy as np
import pandas as pd
import streamlit as st

from pages.common import loaded_run, pick_run, run_dir, runs, set_active_run, show_error
from recsys_core.insights import all_topk, user_recommendations
from recsys_core.runs.finished import base_run_of

SHOWN_USERS = 200


@st.cache_resource(max_entries=4, show_spinner=False)
def _user_index(run_id: str, _ds, _test_users) -> pd.DataFrame:
    """Every user id once, with whether they have a test item: searched without a widget listing them all."""
    has_test = np.zeros(_ds.n_users, dtype=bool)
    has_test[_test_users] = True
    return pd.DataFrame({"id": pd.Series(_ds.users.ids, dtype="str"), "has_test": has_test})


def matching_users(run_id: str, ds, test_users: np.ndarray, query: str) -> tuple[list[str], int]:
    """At most SHOWN_USERS ids containing `query` (exact match first, then users with a test item)."""
    table = _user_index(run_id, ds, test_users)
    hits = table[table["id"].str.contains(query, regex=False)] if query else table
    order = np.lexsort(((hits["id"].str.len()).to_numpy(), ~hits["has_test"].to_numpy(),
                        (hits["id"] != query).to_numpy()))
    return hits["id"].to_numpy()[order[:SHOWN_USERS]].tolist(), len(hits)


st.title("Recommendations")
rows = [r for r in runs() if r["state"] in ("finished", "stopped")]
if not rows:
    st.info("No trained run yet: train one on the **Train** page.")
    st.stop()
chosen = pick_run("Run", rows, "recs.run")
set_active_run(chosen)
run = run_dir(chosen)
try:
    loaded = loaded_run(run)
except Exception as exc:  # noqa: BLE001 - e.g. the run directory was deleted meanwhile
    show_error(exc)
    st.stop()
ds = loaded.ds

c1, c2, c3 = st.columns([2, 2, 1])
query = c1.text_input("Search users by id", key="recs.query", placeholder="e.g. 1")
ids, matched = matching_users(chosen, ds, loaded.split.test["u"].to_numpy(), query.strip())
if not ids:
    st.warning(f"No user id contains {query!r}.")
    st.stop()
user = c2.selectbox("User", ids, key="recs.user", help="an exact id first, then users with a held-out test item; "
                    f"the first {SHOWN_USERS} of {matched:,} matches")
k = c3.slider("K", 5, 50, 10, key="recs.k")

try:
    out = user_recommendations(loaded, user, k=k)
except Exception as exc:  # noqa: BLE001
    show_error(exc)
    st.stop()
st.caption(f"Scored from everything known when predicting the user's test item ({len(out['history'])} interactions). "
           f"Held out: {', '.join(h['title'] for h in out['held_out']) or 'nothing (a training-only user)'}.")
recs = pd.DataFrame([{"rank": r["rank"], "title": r["title"], "item": r["item"], "score": round(r["score"], 4),
                      "hit": "✅" if r["hit"] else "",
                      "because you interacted with": "; ".join(f"{b['title']} ({b['similarity']:.2f})" for b in r["because"])}
                     for r in out["items"]])
base = base_run_of(run)
left, right = st.columns([3, 2]) if base is not None else (st.container(), None)
with left:
    st.subheader(f"Top {k} · {loaded.family} ({out['hits']} hit{'s' if out['hits'] != 1 else ''})")
    st.table(recs.set_index("rank"))
if base is not None:
    with right:
        st.subheader(f"Base model {base.run_id}")
        try:
            base_loaded = loaded_run(base)
            if user in base_loaded.ds.users:
                bout = user_recommendations(base_loaded, user, k=k, explain=0)
                mine = {r["item"] for r in out["items"]}
                st.dataframe(pd.DataFrame([{"rank": r["rank"], "title": r["title"], "hit": "✅" if r["hit"] else "",
                                            "also fine-tuned": "•" if r["item"] in mine else ""} for r in bout["items"]]),
                             hide_index=True, width="stretch")
                st.caption(f"{len(mine & {r['item'] for r in bout['items']})} of {k} items in common.")
            else:
                st.caption("The base never saw this user (a new user): its top-K is not defined.")
        except Exception as exc:  # noqa: BLE001
            show_error(exc)

st.subheader("History (latest first)")
st.dataframe(out["history"], hide_index=True, width="stretch", height=260)

st.subheader("Export")
if st.button("Compute every user's top-K", key="recs.export"):
    with st.spinner("Ranking every item for every user…"):
        st.session_state["export"] = (chosen, k, all_topk(loaded, k).to_csv(index=False).encode())
export = st.session_state.get("export")
if export and export[0] == chosen:
    st.download_button(f"Download top-{export[1]} for all {ds.n_users:,} users (CSV)", export[2],
                       file_name=f"{chosen}-top{export[1]}.csv", mime="text/csv", key="recs.download")
