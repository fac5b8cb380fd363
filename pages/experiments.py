"""Experiments page: "is it worth it?" in one click: start an experiment as a background job, watch each arm
train, and read the answer with corrected intervals and a plain verdict. The job is in the URL (?exp=...)."""
import json

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages.common import active_dataset, active_source, show_error
from recsys_core.experiments.common import STRATEGY_ORDER
from recsys_core.experiments.job import ExperimentSpec, job_result, jobs_root, load_spec, new_job
from recsys_core.experiments.report import experiment_rows, forest_frame, list_experiments, verdict, window_frame
from recsys_core.models import family_class, trainable_families
from recsys_core.runs.launcher import live_status
from recsys_core.storage.rundir import ACTIVE, RunDir

QUESTIONS = {
    "New users arrive: does fine-tuning a base on their first interactions beat training from scratch?": "transfer",
    "Time moves on: which update keeps up over the next time windows, against retraining?": "incremental",
    "New data arrived: retrain on everything, retrain on new data + similar old users, or fine-tune?": "new-data",
}

st.title("Experiments")
st.caption("Every arm trains under one budget; the best arm is chosen on validation; each arm is compared with "
           "the reference on test by a joint paired bootstrap over users, corrected for the number of comparisons.")
ds = active_dataset()


def _form() -> None:
    question = st.radio("Question", list(QUESTIONS), key="exp.question")
    kind = QUESTIONS[question]
    c1, c2, c3 = st.columns(3)
    family = c1.selectbox("Model family", trainable_families(), index=trainable_families().index("sasrec"),
                          key="exp.family")
    default_arms = ["incremental", "full"] if kind == "new-data" else list(STRATEGY_ORDER)
    arms = c2.multiselect("Fine-tuning arms", list(STRATEGY_ORDER), default=default_arms, key=f"exp.arms.{kind}")
    if kind == "transfer":
        size = c3.number_input("Shots per new user", 1, 100, 10, key="exp.shots")
    else:
        size = c3.number_input("Windows", 2, 10, 2 if kind == "new-data" else 3, key=f"exp.windows.{kind}")
    defaults = family_class(family).default_train
    st.markdown("**Budget** (the same for every arm, references included)")
    b = st.columns(4)
    budget = {"epochs": int(b[0].number_input("max epochs", 1, 1000, int(defaults.get("epochs", 50)), key=f"exp.ep.{family}")),
              "patience": int(b[1].number_input("patience", 0, 100, int(defaults.get("patience", 5)), key=f"exp.pa.{family}")),
              "min_epochs": int(b[2].number_input("min epochs", 0, 1000, int(defaults.get("min_epochs", 0)),
                                                  key=f"exp.mi.{family}"))}
    seed = int(b[3].number_input("seed", value=0, step=1, key="exp.seed"))
    if st.button("Start experiment", type="primary", key="exp.start", disabled=not arms):
        try:
            spec = ExperimentSpec("transfer" if kind == "transfer" else "incremental", active_source(), family,
                                  strategies=tuple(arms), shots=int(size), windows=int(size), train=budget, seed=seed)
            job = new_job(spec)
            st.query_params["exp"] = job.run_id
            st.rerun()
        except Exception as exc:  # noqa: BLE001 - an invalid choice is shown, nothing starts
            show_error(exc)


def _jobs() -> list[RunDir]:
    root = jobs_root()
    found = [RunDir(p.parent) for p in root.glob("*/experiment.json")] if root.exists() else []
    return sorted(found, key=lambda j: j.read_status().get("created", 0), reverse=True)


@st.fragment(run_every=2)
def _live(job: RunDir) -> None:
    status = live_status(job)
    state = status.get("state", "unknown")
    events = job.read_metrics()
    arms: dict[str, dict] = {}
    for e in events:
        row = arms.setdefault(e["arm"], {"arm": e["arm"], "epochs": 0, "valid NDCG@10": None, "done": "training"})
        if e["type"] == "arm_epoch":
            row.update({"epochs": e["epoch"], "valid NDCG@10": round(e["valid_ndcg@10"], 4)})
        elif e["type"] == "arm_done":
            row.update({"done": f"done in {e['seconds']:.0f}s", "valid NDCG@10": round(e["valid_ndcg@10"], 4)})
    st.markdown(f"**{state.capitalize()}** · {len([a for a in arms.values() if a['done'] != 'training'])} arms done")
    if arms:
        st.dataframe(pd.DataFrame(arms.values()), hide_index=True, width="stretch")
    if state in ACTIVE:
        if st.button("Stop", key=f"exp.stop.{job.run_id}"):
            job.request_stop()
            st.toast("Stopping after the arm in training…")
    else:
        st.rerun()  # leave the fragment: the page shows the result (or why there is none)


def _forest(result: dict) -> None:
    forest = forest_frame(result)
    if forest.empty:
        return
    ref = result.get("reference", "the reference")
    fig = go.Figure()
    for label, color in (("significant", "#e4572e"), ("not significant", "#6c8ebf")):
        part = forest[forest["significant"] == label]
        fig.add_trace(go.Scatter(x=part["diff"], y=part["arm"], mode="markers", name=label, marker={"color": color, "size": 10},
                                 error_x={"type": "data", "symmetric": False, "array": part["high"] - part["diff"],
                                          "arrayminus": part["diff"] - part["low"]}))
    fig.add_vline(x=0, line_dash="dash", line_color="gray")
    k = len(forest)
    fig.update_layout(title=f"Test NDCG@10 minus {ref}, with simultaneous 95% intervals ({k} comparisons)",
                      xaxis_title=f"difference in NDCG@10 from {ref}", yaxis_title="arm", height=120 + 45 * k)
    st.plotly_chart(fig, width="stretch")


def _result(result: dict, name: str) -> None:
    st.subheader("Answer")
    st.info(verdict(result))
    proto, budget = result.get("protocol", {}), result.get("budget", {})
    budget_text = (f"max {budget['epochs']} epochs, patience {budget['patience']}, at least {budget['min_epochs']} "
                   f"epochs, validation every {budget['eval_every']}") if budget else "not recorded (an older result)"
    st.caption(f"{proto.get('name')} experiment · {proto.get('model')} on {result.get('dataset', '?')} · "
               f"{result.get('seconds', 0):.0f}s on {proto.get('device', '?')} · one budget for every arm: "
               f"{budget_text} · winner chosen on {result.get('selected_on', 'test (an older result)')}")
    for name, reason in result.get("skipped", {}).items():
        st.caption(f"Skipped {name}: {reason}")
    _forest(result)
    rows = pd.DataFrame(experiment_rows(result))
    st.dataframe(rows, hide_index=True, width="stretch")
    windows = window_frame(result)
    left, right = st.columns(2)
    if not windows.empty:
        left.plotly_chart(px.line(windows, x="window", y="ndcg@10", color="arm", markers=True,
                                  title="Test NDCG@10 per window", labels={"ndcg@10": "test NDCG@10"}), width="stretch")
    if "forgetting" in result:
        forget = pd.DataFrame({"arm": list(result["forgetting"]), "forgetting": list(result["forgetting"].values())})
        right.plotly_chart(px.bar(forget, x="arm", y="forgetting", title="Forgetting: probe NDCG@10 lost (lower is better)"),
                           width="stretch")
    cost = rows.dropna(subset=["ndcg@10"])
    st.plotly_chart(px.scatter(cost, x="seconds", y="ndcg@10", color="kind", text="name", size_max=20,
                               title="Cost and quality", labels={"seconds": "seconds (training)",
                                                                "ndcg@10": "test NDCG@10"}), width="stretch")
    c1, c2 = st.columns(2)
    c1.download_button("Download the table (CSV)", rows.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                       key=f"exp.csv.{name}")
    c2.download_button("Download the result (JSON)", json.dumps(result, indent=2, default=str).encode(), f"{name}.json",
                       "application/json", key=f"exp.json.{name}")


with st.expander("Start an experiment on the active dataset", expanded="exp" not in st.query_params):
    st.caption(f"Dataset: **{ds.name}** ({len(ds):,} interactions). Change it on the Data page.")
    _form()

jobs = _jobs()
saved = {path.stem: result for path, result in list_experiments()}
choices = [j.run_id for j in jobs] + [name for name in saved if name not in {j.run_id for j in jobs}]
if not choices:
    st.caption("No experiments yet.")
    st.stop()
wanted = st.query_params.get("exp")
if wanted and wanted not in choices:
    st.warning(f"Experiment {wanted} no longer exists; showing the newest instead.")
job_ids = {j.run_id for j in jobs}
chosen = st.selectbox("Experiment", choices, index=choices.index(wanted) if wanted in choices else 0,
                      format_func=lambda c: c if c in job_ids else f"{c} (saved result)", key="exp.chosen")
if st.query_params.get("exp") != chosen:
    st.query_params["exp"] = chosen
job = next((j for j in jobs if j.run_id == chosen), None)
if job is None:
    _result(saved[chosen], chosen)
else:
    status = live_status(job)
    try:
        spec = load_spec(job)
        st.caption(f"**{status.get('state', 'unknown')}** · {spec.kind} · {spec.family} · arms "
                   f"{', '.join(spec.strategies)} · on {spec.data.name or spec.data.path}")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
    if status.get("state") in ACTIVE:
        _live(job)
    elif status.get("state") == "finished" and job_result(job):
        _result(job_result(job), chosen)
    else:
        st.warning(f"{status.get('state', 'unknown').capitalize()}: {status.get('error') or status.get('reason') or ''}")
