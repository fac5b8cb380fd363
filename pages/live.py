"""Live page: replay the active dataset's later part, in time order, into a served model that keeps learning.

The job runs in the background (`rectune live --job-dir DIR`): it trains a base on the first part, serves
it over HTTP, asks the service for each user's top 10 *before* posting what the user did (prequential),
and the service trains a new version every N events, swapping it in only if it is not worse on a
held-back slice. Everything shown is read from the job's directory; the job is in the URL (?live=...),
so a reload or a new tab re-attaches to it.
"""
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages.common import active_dataset, active_source, config_widgets, show_error
from recsys_core.runs.curves import progress
from recsys_core.runs.launcher import live_status
from recsys_core.serving.jobs import (arms_frame, list_live_jobs, list_prequential_results, live_snapshot,
                                      prequential_curve_frame, replay_frame, replay_summary, versions_frame)
from recsys_core.serving.replay import LiveSpec, new_live_job, resume_live_job, stop_live_job
from recsys_core.models import trainable_families
from recsys_core.storage.rundir import ACTIVE, RunDir

st.title("Live")
st.caption("A served model meets the rest of the data as a stream: each event's user is asked for a top 10 before "
           "the event is posted (evaluate, then learn), and the service trains a new version every N events, "
           "kept only if it is not worse than the served one on a held-back slice of the newest events.")
ds = active_dataset()


def _start_form() -> None:
    st.caption(f"Dataset: **{ds.name}** ({len(ds):,} interactions). Change it on the Data page.")
    families = trainable_families()
    family = st.selectbox("Model family of the served base", families,
                          index=families.index("mf") if "mf" in families else 0, key="live.family")
    options = config_widgets(LiveSpec, "live", skip=("data", "family", "seed"))
    stream = int(len(ds) * (1 - options["start_frac"]))
    pace = f"about {stream / options['speed'] / 60:.1f} min at {options['speed']:g} events/s" if options["speed"] else \
        "as fast as the service answers"
    st.caption(f"The base trains on the first {options['start_frac']:.0%} in time; {stream:,} events are replayed "
               f"({pace}); a new version is tried every {options['update_every']:,} events"
               + (" (never: update every 0 turns updates off)." if not options["update_every"] else "."))
    if st.button("Start replay", type="primary", key="live.start"):
        try:
            job = new_live_job(LiveSpec(data=active_source(), family=family, **options))
            # the new job becomes the shown one: the picker's own state would otherwise keep the old choice
            st.session_state["live_job"] = st.session_state["live.chosen"] = job.run_id
            st.query_params["live"] = job.run_id
            st.rerun()
        except Exception as exc:  # noqa: BLE001 - an invalid choice is shown beside the form, nothing starts
            show_error(exc)


def _tiles(summary: dict) -> None:
    top, bottom = st.columns(4), st.columns(4)
    top[0].metric("State", summary["state"])
    top[1].metric("Stage", summary["stage"] or "-")
    top[2].metric("Events replayed", f"{summary['replayed']:,}",
                  help=f"of {summary['total']:,} in the stream" if summary["total"] else None)
    top[3].metric("Served version", summary["version"], help="0 is the base; each accepted update adds one")
    bottom[0].metric("NDCG@10, recent", f"{summary['ndcg_recent']:.4f}" if summary["ndcg_recent"] is not None else "-",
                     help="events scored before the model learnt from them, over the last batches (weighted by size)")
    bottom[1].metric("Latency p50", f"{summary['p50_ms']:.1f} ms" if summary["p50_ms"] is not None else "-",
                     help="GET /recommend in the latest batch, as the replay's client saw it")
    bottom[2].metric("Latency p99", f"{summary['p99_ms']:.1f} ms" if summary["p99_ms"] is not None else "-")
    bottom[3].metric("Updates accepted / rejected", f"{summary['accepted']} / {summary['rejected']}",
                     help="a candidate replaces the served version only if it is not worse on held-back events")


def _base_progress(snapshot: dict) -> None:
    """While the base trains, its own run's progress (it is an ordinary run under JOB/base)."""
    base_status = snapshot["base_status"]
    if not base_status or base_status.get("state") not in ACTIVE:
        st.info("Preparing: reading the dataset and splitting it in time…")
        return
    prog = progress(base_status, snapshot["base_metrics"])
    st.progress(prog["fraction"], text=f"Training the base ({snapshot['spec'].family}): epoch {prog['epoch']}, "
                                       f"{prog['fraction']:.0%} of its maximum steps")


def _curves(snapshot: dict) -> None:
    frame, versions = replay_frame(snapshot["records"]), snapshot["versions"]
    if not len(frame):
        return
    left, right = st.columns(2)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["events replayed"], y=frame["ndcg@10"], mode="markers", name="per batch",
                             marker={"size": 4, "color": "#9bb7d4"}))
    fig.add_trace(go.Scatter(x=frame["events replayed"], y=frame["ndcg@10 (rolling)"], mode="lines",
                             name="rolling mean", line={"color": "#1f4e79", "width": 2}))
    swaps = frame.loc[frame["version"].diff().fillna(0) > 0, "events replayed"]
    for at, version in zip(swaps, frame.loc[swaps.index, "version"]):
        fig.add_vline(x=at, line_dash="dot", line_color="#e4572e", annotation_text=f"v{version}",
                      annotation_position="top left")
    fig.update_layout(title="Prequential NDCG@10 (scored before learning)", xaxis_title="events replayed",
                      yaxis_title="NDCG@10", height=360, legend={"orientation": "h", "y": -0.25})
    left.plotly_chart(fig, width="stretch", key=f"live-ndcg-{len(frame)}")
    lat = frame.melt(id_vars="events replayed", value_vars=["latency p50 (ms)", "latency p99 (ms)"],
                     var_name="percentile", value_name="ms")
    right.plotly_chart(px.line(lat, x="events replayed", y="ms", color="percentile", height=360,
                               title="GET /recommend latency per batch", labels={"ms": "latency (ms)"})
                       .update_layout(legend={"orientation": "h", "y": -0.25, "title": None}),
                       width="stretch", key=f"live-lat-{len(frame)}")
    if versions:
        st.markdown("**Update decisions** (a candidate is swapped in only if not worse on the held-back events)")
        st.dataframe(versions_frame(versions), hide_index=True, width="stretch")


def _controls(job: RunDir, summary: dict) -> None:
    if summary["state"] in ACTIVE and st.button("Stop", key=f"live.stop.{job.run_id}"):
        with st.spinner("Stopping after the batch in flight…"):
            stop_live_job(job)
        st.rerun()
    if summary["state"] in ("stopped", "interrupted") and st.button(
            "Resume", key=f"live.resume.{job.run_id}", help="goes on after the last event the service stored"):
        resume_live_job(job)
        st.rerun()


def _job_view(job: RunDir) -> None:
    try:
        snapshot = live_snapshot(job)
    except Exception as exc:  # noqa: BLE001 - a damaged job folder is reported, the page stays up
        show_error(exc)
        return
    summary = replay_summary(snapshot)
    spec = snapshot["spec"]
    st.caption(f"`{job.run_id}` · {spec.family} on {spec.data.name or spec.data.path or 'the demo'} · base on the "
               f"first {spec.start_frac:.0%} · {spec.speed:g} events/s · update every {spec.update_every:,} events"
               + (f" · service at {summary['url']}" if summary["url"] and summary["state"] in ACTIVE else ""))
    _tiles(summary)
    if summary["state"] in ACTIVE and summary["stage"] != "replaying":
        _base_progress(snapshot)
    elif summary["total"]:
        st.progress(min(1.0, summary["replayed"] / summary["total"]),
                    text=f"{summary['replayed']:,} of {summary['total']:,} events replayed "
                         f"({summary['replayed'] / summary['total']:.0%})")
    if summary["state"] == "failed":
        st.error(f"The replay failed: {summary['error']}")
    elif summary["state"] == "interrupted":
        st.warning(summary["error"] or "The worker ended without finishing.")
    elif summary["state"] in ("stopped", "finished"):
        st.success(f"{summary['state'].capitalize()}: {summary['replayed']:,} events replayed, "
                   f"{summary['accepted']} versions accepted, {summary['rejected']} rejected.")
    _curves(snapshot)
    _controls(job, summary)


def _live_fragment(job: RunDir, active: bool) -> None:
    """Refreshes every 1.5 s while the job runs; once it ends, one full rerun draws the final state."""
    @st.fragment(run_every=1.5 if active else None)
    def view() -> None:
        _job_view(job)
        if active and live_status(job).get("state") not in ACTIVE:
            st.rerun()
    view()


def _saved_replays() -> None:
    """Results of `rectune experiment prequential`: no updates vs periodic retrain vs streaming updates."""
    saved = list_prequential_results()
    st.subheader("Prequential comparison: no updates, periodic retrain, streaming updates")
    if not saved:
        st.caption("None saved yet. The three arms replay the same stream offline, on the same events:")
        data = active_source().path
        st.code(f"rectune experiment prequential --data {'data/ml-latest-small' if data == 'demo' else data} "
                f"--model {st.session_state.get('live.family', 'mf')}", language="bash")
        return
    names = [path.stem for path, _ in saved]
    chosen = st.selectbox("Saved replay", names, key="live.saved")
    result = saved[names.index(chosen)][1]
    proto = result.get("protocol", {})
    st.caption(f"{proto.get('model')} on {result.get('dataset') or result.get('data', '?')} · base on the first {proto.get('start_frac', 0):.0%} · "
               f"{proto.get('stream_events', 0):,} events scored before learning · {proto.get('updates')} updates")
    curve = prequential_curve_frame(result)
    if len(curve):
        st.plotly_chart(px.line(curve, x="period start", y="ndcg@10", color="arm", markers=True, height=360,
                                title="Mean NDCG@10 per period of the replay",
                                labels={"period start": "period start (event time, UTC)", "ndcg@10": "NDCG@10"}),
                        width="stretch")
    st.dataframe(arms_frame(result), hide_index=True, width="stretch")


with st.expander("Start a replay on the active dataset", expanded="live" not in st.query_params):
    _start_form()

jobs = list_live_jobs()
if jobs:
    ids = [j["job_id"] for j in jobs]
    wanted = st.query_params.get("live") or st.session_state.get("live_job")
    if wanted and wanted not in ids:
        st.warning(f"Replay {wanted} no longer exists (its folder was removed); showing the newest instead.")
    # no state in the labels: a select box keeps showing an option's old text after it changes (the tiles say it)
    labels = {j["job_id"]: f"{j['job_id']} · {j['family']} · {j['dataset']}" for j in jobs}
    chosen = st.selectbox("Replay", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=labels.get,
                          key="live.chosen")
    st.session_state["live_job"] = chosen
    if st.query_params.get("live") != chosen:
        st.query_params["live"] = chosen
    job = RunDir(jobs[ids.index(chosen)]["path"])
    _live_fragment(job, live_status(job).get("state") in ACTIVE)
else:
    st.caption("No replays yet.")
st.divider()
_saved_replays()
