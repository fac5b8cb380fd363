"""Train page: start and stop training jobs (subprocesses), with live curves read from the run directory.

The run shown is in the URL (?run=...), and everything comes from disk, so a reload or a second
browser re-attaches to the same job.
"""
import json

import plotly.express as px
import streamlit as st

from pages.common import active_run_id, pick_run, run_dir, runs, set_active_run, show_error
from recsys_core.runs.curves import eval_frame, progress, step_frame
from recsys_core.runs.finished import read_eval
from recsys_core.runs.launcher import launch, live_status, poll, stop
from recsys_core.runs.spec import RunSpec
from recsys_core.storage.rundir import ACTIVE, new_run_id, runs_root

st.title("Train")
config = st.session_state.get("setup_config")
c1, c2 = st.columns([3, 1])
if config:
    c1.markdown(f"Ready: **{config['model']['family']}** · base `{config['base']}` · strategy "
                f"**{config['strategy']['name']}** · {config['train'].get('epochs', '-')} epochs max · split "
                f"{config['split']['name']}")
else:
    c1.info("Choose the model, base and strategy on the **Setup** page first.")
if c2.button("Start training", type="primary", disabled=not config, key="train.start"):
    try:
        spec = RunSpec.from_json(config)
        run_id = new_run_id(spec.family)
        run = spec.save(runs_root() / run_id)  # the spec is written once; the worker runs exactly this directory
        launch([], run.path, family=spec.family)
        set_active_run(run_id)
        st.session_state["train.run"] = run_id  # the new run is shown: the picker's own state would keep the old one
        st.rerun()
    except Exception as exc:  # noqa: BLE001
        show_error(exc)

rows = runs()
if not rows:
    st.caption("No runs yet.")
    st.stop()
active = [r["run_id"] for r in rows if r["state"] in ACTIVE]
chosen = pick_run("Run", rows, "train.run", default=active_run_id() or (active[0] if active else None))
if chosen != active_run_id():
    set_active_run(chosen)


def live_view(run_id: str) -> None:
    """The run's tiles and curves; they refresh every 1.5 s only while the run is active, and its end reruns
    the page so the selector and the sidebar say how it ended."""
    active = live_status(run_dir(run_id)).get("state") in ACTIVE

    @st.fragment(run_every=1.5 if active else None)
    def view() -> None:
        _run_view(run_id)
        if active and live_status(run_dir(run_id)).get("state") not in ACTIVE:
            st.rerun()
    view()


def _run_view(run_id: str) -> None:
    run = run_dir(run_id)
    state = poll(run)
    status, records = state["status"], state["metrics"]
    prog = progress(status, records)
    c = st.columns(6)
    c[0].metric("State", prog["state"])
    c[1].metric("Device", str(prog["device"]).split(" (")[0], help=str(prog["device"]))
    c[2].metric("Epoch", prog["epoch"])
    c[3].metric("Step", f"{prog['step']:,} / {prog['total_steps']:,}" if prog["total_steps"] else f"{prog['step']:,}")
    c[4].metric("Throughput", f"{prog['throughput']:,.0f}/s" if prog["throughput"] else "-",
                help="training examples (or predicted positions) per second")
    eta = prog.get("eta_seconds")
    c[5].metric("ETA (at most)", f"{eta / 60:.1f} min" if eta is not None else "-",
                help="at the current pace; early stopping can end the run sooner")
    if prog["state"] in ACTIVE:
        st.progress(prog["fraction"], text=f"{prog['fraction']:.0%} of the maximum number of steps")
    if prog["state"] == "failed":
        st.error(f"The run failed: {prog['error']}")
    elif prog["state"] == "interrupted":
        st.warning(prog["error"] or "The worker ended without finishing.")
    elif prog["state"] in ("finished", "stopped"):
        ev = read_eval(run)
        test = ev.get("test", {})
        if test:
            st.success(f"{prog['state'].capitalize()} ({prog['reason'] or ''}): test NDCG@10 {test['ndcg@10']:.4f}, "
                       f"HR@10 {test['hr@10']:.4f}; {ev.get('trainable_params', 0):,} of "
                       f"{ev.get('total_params', 0):,} parameters trained in {ev.get('train_seconds', 0):.1f}s")
    steps, evals = step_frame(records), eval_frame(records)
    left, right = st.columns(2)
    if len(steps):
        left.plotly_chart(px.line(steps, x="step", y="loss", title="Training loss"),
                          width="stretch", key=f"loss-{run_id}-{len(steps)}")
        left.caption(f"Training loss: {len(steps)} points, latest {steps['loss'].iloc[-1]:.4f} at step "
                     f"{int(steps['step'].iloc[-1]):,}")
    else:
        left.caption("Waiting for the first training step…")
    if len(evals) and "ndcg@10" in evals:
        right.plotly_chart(px.line(evals, x="epoch", y=["ndcg@10", "hr@10"], markers=True, title="Validation"),
                           width="stretch", key=f"valid-{run_id}-{len(evals)}")
    b1, b2, _ = st.columns([1, 1, 4])
    if prog["state"] in ACTIVE and b1.button("Stop", key=f"stop-{run_id}"):
        with st.spinner("Stopping at the next step…"):
            stop(run, grace=10)
        st.rerun()
    if prog["state"] in ("stopped", "interrupted") and (run.checkpoint_dir.exists()) and \
            b2.button("Resume", key=f"resume-{run_id}"):
        launch(["--resume", str(run.path)], run.path)
        st.rerun()


live_view(chosen)
with st.expander("Configuration and worker log"):
    run = run_dir(chosen)
    try:
        spec = RunSpec.load(run.path)
        st.caption("The worker ran this directory's config.json as it is:")
        st.code(f"rectune train --run-dir {run.path}", language="bash")
        st.caption("Elsewhere, the same run from flags, with the JSON below saved as setup.json:")
        st.code(spec.command("setup.json"), language="bash")
        st.json(spec.config_file(), expanded=False)
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
    if run.log_path.exists():
        st.code(run.log_path.read_text(errors="replace")[-4000:] or "(empty)")
    plan = run.path / "plan.json"
    if plan.exists():
        st.json(json.loads(plan.read_text()), expanded=False)
