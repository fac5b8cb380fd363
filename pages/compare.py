"""Compare page: runs side by side (metrics, cost, curves, segments, paired intervals, embedding maps)
and the transfer and incremental experiments."""
import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import loaded_run, run_dir, runs, show_error
from recsys_core.experiments.report import experiment_rows, list_experiments
from recsys_core.insights import compare_two, embedding_map, segments
from recsys_core.runs.finished import base_run_of
from recsys_core.runs.curves import eval_frame, step_frame

st.title("Compare")
rows = runs()
tab_runs, tab_experiments = st.tabs(["Runs", "Experiments"])

with tab_runs:
    if not rows:
        st.info("No runs yet.")
    else:
        table = pd.DataFrame(rows)
        table["trainable share"] = (table["trainable_params"] / table["total_params"]).where(table["total_params"] > 0)
        st.dataframe(table[["run_id", "family", "base", "strategy", "state", "valid_ndcg", "test_ndcg", "test_recall",
                            "train_seconds", "trainable_params", "total_params", "trainable share", "device"]],
                     hide_index=True, width="stretch",
                     column_config={"trainable share": st.column_config.ProgressColumn(min_value=0, max_value=1,
                                                                                       format="percent")})
        ids = [r["run_id"] for r in rows]
        done = [r["run_id"] for r in rows if r["state"] in ("finished", "stopped")]
        kept = st.session_state.get("compare.runs")
        if kept is not None:
            gone = [r for r in kept if r not in ids]
            if gone:  # their folders were removed while this page showed them
                st.warning(f"{'Run' if len(gone) == 1 else 'Runs'} {', '.join(gone)} no longer "
                           f"{'exists' if len(gone) == 1 else 'exist'} (folder removed); dropped from the comparison.")
                st.session_state["compare.runs"] = [r for r in kept if r in ids]
        picked = st.multiselect("Runs to compare", ids, default=None if kept is not None else done[:3], key="compare.runs")
        if picked:
            steps = pd.concat([step_frame(run_dir(r).read_metrics()).assign(run=r) for r in picked], ignore_index=True)
            evals = pd.concat([eval_frame(run_dir(r).read_metrics()).assign(run=r) for r in picked], ignore_index=True)
            left, right = st.columns(2)
            if len(steps):
                left.plotly_chart(px.line(steps, x="step", y="loss", color="run", title="Training loss"), width="stretch")
            if len(evals) and "ndcg@10" in evals:
                right.plotly_chart(px.line(evals, x="epoch", y="ndcg@10", color="run", markers=True,
                                           title="Validation NDCG@10"), width="stretch")
            seg_parts = []
            for r in picked:
                if r not in done:
                    continue
                try:
                    loaded = loaded_run(run_dir(r))
                    base = base_run_of(run_dir(r))
                    base_ids = loaded_run(base).ds.items.ids if base is not None else None
                    seg_parts.append(segments(run_dir(r), loaded.split, base_ids, loaded.ds.items.ids).assign(run=r))
                except Exception as exc:  # noqa: BLE001
                    show_error(exc)
            if seg_parts:
                seg = pd.concat(seg_parts, ignore_index=True)
                st.plotly_chart(px.bar(seg, x="segment", y="ndcg@10", color="run", barmode="group", facet_col="kind",
                                       hover_data=["users"], title="Test NDCG@10 by segment"), width="stretch")
        if len(done) >= 2:
            st.subheader("Is the difference real? (paired bootstrap over test users)")
            c1, c2 = st.columns(2)
            a = c1.selectbox("Run A", done, index=0, key="compare.a")
            b = c2.selectbox("Run B", done, index=1, key="compare.b")
            if a != b:
                try:
                    res = compare_two(run_dir(a), run_dir(b))
                    verdict = "A is better" if res["ci_low"] > 0 else "B is better" if res["ci_high"] < 0 else \
                        "no clear difference"
                    st.metric("NDCG@10, A minus B", f"{res['diff']:+.4f}",
                              help=f"95% interval over {res['n_users']} paired users")
                    st.caption(f"95% interval [{res['ci_low']:+.4f}, {res['ci_high']:+.4f}], p = {res['p_value']:.3f}: "
                               f"**{verdict}**.")
                except Exception as exc:  # noqa: BLE001
                    show_error(exc)
        if done:
            st.subheader("Item embeddings before and after fine-tuning (PCA)")
            r = st.selectbox("Run", done, key="compare.map")
            colour = st.radio("Colour by", ["genre", "popularity"], horizontal=True, key="compare.colour")
            try:
                loaded = loaded_run(run_dir(r))
                base = base_run_of(run_dir(r))
                before = loaded_run(base).model if base is not None else None
                points = embedding_map(loaded.model, before, loaded.ds)
                fig = px.scatter(points, x="x", y="y", color=colour, facet_col="which", hover_name="title",
                                 color_continuous_scale="Viridis", opacity=0.7, height=520,
                                 log_x=False, title="Most popular items; shared axes" if before is not None else
                                 "Most popular items (the run has no base to compare with)")
                st.plotly_chart(fig, width="stretch")
            except Exception as exc:  # noqa: BLE001
                show_error(exc)

with tab_experiments:
    saved = list_experiments()
    if not saved:
        st.info("No experiment results yet. Run `rectune experiment transfer --data demo` or "
                "`rectune experiment incremental --data demo` (results are saved under runs/experiments).")
    else:
        names = [p.name for p, _ in saved]
        name = st.selectbox("Result", names, key="compare.experiment")
        result = saved[names.index(name)][1]
        proto = result["protocol"]
        st.caption(f"{proto['name']} · {proto.get('model')} · {result.get('seconds', 0) / 60:.1f} min on "
                   f"{proto.get('device', '?')} · best strategy **{result.get('best')}**")
        table = pd.DataFrame(experiment_rows(result))
        st.dataframe(table, hide_index=True, width="stretch")
        st.plotly_chart(px.bar(table, x="name", y="ndcg@10", color="kind", title="Test NDCG@10"), width="stretch")
        if result.get("windows"):
            points = []
            for w in result["windows"]:
                for arm, figures in w.items():
                    if isinstance(figures, dict) and "ndcg@10" in figures:
                        points.append({"window": w["window"], "arm": arm, "ndcg@10": figures["ndcg@10"]})
            st.plotly_chart(px.line(pd.DataFrame(points), x="window", y="ndcg@10", color="arm", markers=True,
                                    title="NDCG@10 on each next window"), width="stretch")
        if "best_vs_retrain" in result:
            b = result["best_vs_retrain"]
            st.markdown(f"**{result['best']}** reaches {b['ndcg_ratio']:.2f}x the NDCG@10 of retraining from scratch "
                        f"in {b['time_ratio']:.2f}x its time.")
