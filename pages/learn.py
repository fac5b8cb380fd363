"""Learn page: what transfer learning and each strategy do, drawn on a real model and tied to your own runs."""
import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import active_dataset, runs
from recsys_core.bases import NONE, Base
from recsys_core.data.splits import History
from recsys_core.models import build_model
from recsys_core.runs.modes import loss_curves, mode_rows
from recsys_core.strategies import STRATEGIES
from recsys_core.train.finetune import preview

st.title("Learn: transfer learning for recommenders")
st.markdown(
    "A recommender learns **what items are like** (item embeddings, a text encoder) and **how tastes unfold** "
    "(a sequence encoder). Both are expensive to learn and mostly carry over: to new users, to a new period, "
    "even to a new catalogue when items are described by text. **Transfer learning** starts from such a "
    "*pretrained base* and adapts it to your data; the *strategy* decides which weights move. Fewer moving "
    "weights mean less memory and time and less forgetting, but less room to adapt."
)

ds = active_dataset()
FAMILY = "sasrec"


@st.cache_data(show_spinner="Drawing each strategy on a real SASRec…")
def diagrams(n_users: int, n_items: int) -> dict:
    model = build_model(FAMILY, n_users, n_items, {})
    base = Base.from_model(model, [str(u) for u in range(n_users)], [str(i) for i in range(n_items)])
    ds_now = active_dataset()
    history = History(ds_now.interactions, ds_now.n_users, ds_now.n_items)
    out = {}
    for name, strategy in STRATEGIES.items():
        try:
            out[name] = preview(FAMILY, {}, base if strategy.needs_base else NONE,
                                strategy, strategy.parse({}), history, [str(u) for u in range(n_users)],
                                [str(i) for i in range(n_items)])
        except Exception as exc:  # noqa: BLE001 - shown as text
            out[name] = {"error": str(exc)}
    return out


plans = diagrams(ds.n_users, ds.n_items)
all_runs = runs()
my_runs = pd.DataFrame(all_runs)
for name, strategy in STRATEGIES.items():
    st.subheader(f"{strategy.title} (`{name}`)")
    left, right = st.columns([2, 3])
    left.markdown(strategy.summary)
    plan = plans.get(name, {})
    if "groups" in plan:
        groups = pd.DataFrame(plan["groups"])
        groups["frozen"] = groups["params"] - groups["trainable"]
        chart = groups.melt(id_vars=["group"], value_vars=["trainable", "frozen"], var_name="part", value_name="weights")
        fig = px.bar(chart, y="group", x="weights", color="part", orientation="h", height=240,
                     color_discrete_map={"trainable": "#e4572e", "frozen": "#9bb1c8"})
        fig.update_yaxes(categoryorder="array", categoryarray=list(groups["group"])[::-1], title=None)
        fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), legend_title=None)
        right.plotly_chart(fig, width="stretch", key=f"learn-{name}")
        left.caption(f"On a SASRec for {ds.name}: {plan['trainable_params']:,} of {plan['total_params']:,} weights "
                     f"train ({plan['trainable_share']:.1%}); optimizer state {plan['optimizer_bytes'] / 2**20:.1f} MiB.")
    mine = my_runs[my_runs["strategy"] == name] if len(my_runs) else my_runs
    mine = mine[mine["state"].isin(["finished", "stopped"])] if len(mine) else mine
    if len(mine):
        best = mine.sort_values("test_ndcg", ascending=False).iloc[0]
        left.success(f"Your runs with {name}: {len(mine)}; best test NDCG@10 {best['test_ndcg']:.4f} "
                     f"({best['family']}, {best['trainable_params']:,} trainable weights, {best['train_seconds']:.0f}s).")
    else:
        left.info(f"You have not trained with `{name}` yet: pick it on the Setup page to see your own numbers here.")

if len(my_runs) and (my_runs["state"] == "finished").any():
    st.subheader("Your runs: cost against quality")
    done = my_runs[my_runs["state"].isin(["finished", "stopped"]) & (my_runs["trainable_params"] > 0)]
    if len(done):
        st.plotly_chart(px.scatter(done, x="trainable_params", y="test_ndcg", color="strategy", symbol="family",
                                   log_x=True, hover_name="run_id", size="train_seconds",
                                   labels={"trainable_params": "trainable weights", "test_ndcg": "test NDCG@10"}),
                        width="stretch")


st.subheader("Synchronous vs asynchronous training")
st.markdown(
    "**Synchronous** training takes one step at a time: every update reads the weights the previous update "
    "wrote. **Data-parallel** (DDP) ranks each compute a gradient on their part of a batch and average them "
    "before one shared step: still synchronous, just wider. **Asynchronous** (Hogwild) workers each read the "
    "shared weights, compute a gradient and write it back *without waiting or locking*. No one waits, so "
    "throughput grows with workers; the price is **staleness**: while a worker computed its gradient, other "
    "workers may already have changed the weights it read. *Mean staleness 1.3* means that on average 1.3 "
    "foreign updates landed between a worker's read and its write. Embedding models touch few rows per step, "
    "so such collisions rarely hit the same rows (mf writes only the rows a batch used: *sparse* updates); "
    "the result is noisier, and not reproducible bit for bit, even with the same seed."
)
modes = mode_rows(all_runs)
if len(modes) == 0 or not modes["mode"].str.startswith("async").any():
    st.info("No asynchronous run yet. On the Setup page open *Training options* and set **async workers** to 2 "
            "(or `rectune train --data demo --model mf --async-workers 2`), train once with 0 and once with 2, "
            "and they appear here side by side.")
if len(modes):
    shown = modes[modes["family"].isin(modes.loc[modes["mode"].str.startswith("async"), "family"])] \
        if modes["mode"].str.startswith("async").any() else modes.head(6)
    datasets = shown["dataset"].nunique()
    if datasets > 1:
        st.warning(f"These runs come from {datasets} datasets; compare throughput within one dataset.")
    st.dataframe(shown.drop(columns=["deterministic", "run_dir"]), hide_index=True, width="stretch",
                 column_config={"samples/s": st.column_config.NumberColumn(format="%.0f"),
                                "mean staleness": st.column_config.NumberColumn(format="%.2f"),
                                "train s": st.column_config.NumberColumn(format="%.1f"),
                                "test NDCG@10": st.column_config.NumberColumn(format="%.4f")})
    left, right = st.columns(2)
    left.plotly_chart(px.bar(shown, x="run_id", y="samples/s", color="mode", facet_col="dataset" if datasets > 1 else None,
                             labels={"samples/s": "median training samples per second", "run_id": "run"},
                             title="Throughput"), width="stretch", key="learn-modes-throughput")
    curves = loss_curves({f"{r.mode} · {r.run_id}": r.run_dir for r in shown.head(6).itertuples()})
    right.plotly_chart(px.line(curves, x="seconds", y="loss", color="run", title="Training loss as logged",
                               labels={"seconds": "wall seconds since the start", "loss": "training loss"}),
                       width="stretch", key="learn-modes-loss")
    st.caption("Throughput: the median of the logged samples per second (all workers or ranks together), measured "
               "while each run trained: other jobs on the machine at the time lower it. Async loss points come "
               "from whichever worker logged, so the curve is noisier by construction.")
