"""Shared UI helpers: the active dataset and run, the sidebar, config widgets drawn from dataclass fields."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import streamlit as st

from recsys_core.config_fields import describe_fields
from recsys_core.data.dataset import Dataset
from recsys_core.data.source import DataSource, load_source
from recsys_core.errors import RecTuneError
from recsys_core.runs.finished import FinishedRun, load_finished
from recsys_core.runs.launcher import live_status
from recsys_core.runs.listing import list_runs
from recsys_core.storage.rundir import RunDir, runs_root
from recsys_core.uploads import recall_source, remember_source

DEMO = DataSource()


#: datasets kept in memory per server (the demo and recent uploads)
KEPT_DATASETS = 4


@st.cache_resource
def _datasets() -> tuple[OrderedDict, threading.Lock]:
    """The server's loaded datasets, shared by every session, oldest first, and the lock guarding them."""
    return OrderedDict(), threading.Lock()


def load_cached(source: DataSource) -> Dataset:
    """The dataset a source describes, loaded once per server (the demo and recent uploads stay in memory).

    While a load runs, each of its steps (reading, validating, cleaning, indexing) is shown; a dataset
    already loaded shows nothing. (A cached function cannot draw outside itself, hence the store.)
    """
    key = json.dumps(source.as_dict(), sort_keys=True)
    store, lock = _datasets()
    with lock:  # one load at a time per server: two sessions asking for one big file load it once
        if key in store:
            store.move_to_end(key)
            return store[key]
        placeholder = st.empty()
        try:
            with st.spinner("Loading the dataset…"):
                ds = load_source(source, progress=lambda step: placeholder.caption(f"Loading the dataset: {step}…"))
        finally:
            placeholder.empty()
        store[key] = ds
        while len(store) > KEPT_DATASETS:
            store.popitem(last=False)
        return ds


def activate_upload(source: DataSource) -> Dataset:
    """Make an uploaded dataset active for this session and remember it in the URL (?data=...)."""
    ds = load_cached(source)
    token = remember_source(source)
    st.session_state["dataset_source"], st.session_state["data_token"] = source, token
    st.query_params["data"] = token
    return ds


def active_source() -> DataSource:
    """How the active dataset is loaded: the session's upload, else the one named in the URL, else the demo."""
    source = st.session_state.get("dataset_source")
    if source is not None:
        return source
    token = st.query_params.get("data")
    if token:
        recalled = recall_source(token)
        if recalled is not None:
            st.session_state["dataset_source"], st.session_state["data_token"] = recalled, token
            return recalled
    return DEMO


def active_dataset() -> Dataset:
    """The dataset the pages work on (an upload that can no longer be loaded falls back to the demo)."""
    source = active_source()
    try:
        return load_cached(source)
    except RecTuneError:
        if source == DEMO:
            raise
        st.session_state.pop("dataset_source", None)
        return load_cached(DEMO)


def use_demo() -> None:
    st.session_state.pop("dataset_source", None)
    st.session_state.pop("data_token", None)
    st.query_params.pop("data", None)


def runs() -> list[dict]:
    """Runs under the runs folder, newest first; states derived from the run folders (reading only)."""
    return list_runs(runs_root())


def active_run_id() -> str | None:
    """The run the pages show: the one in the URL (?run=...), so a reload or a shared link keeps it."""
    from_url = st.query_params.get("run")
    if from_url:
        st.session_state["run_id"] = from_url  # a page switch clears the URL; the session keeps the run
    return from_url or st.session_state.get("run_id")


def set_active_run(run_id: str) -> None:
    st.session_state["run_id"] = run_id
    if st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id


def forget_run() -> None:
    st.session_state.pop("run_id", None)
    st.query_params.pop("run", None)


def run_dir(run_id: str) -> RunDir:
    return RunDir(runs_root() / run_id)


def pick_run(label: str, rows: list[dict], key: str, default: str | None = None) -> str | None:
    """A select box over runs, labelled with model, strategy and state; defaults to the active run."""
    if not rows:
        return None
    ids = [r["run_id"] for r in rows]
    # no state in the labels: a select box keeps showing an option's old text after it changes (Streamlit
    # 1.5x), so "running" would stay after the run ended; the state is shown beside it, read on every run
    labels = {r["run_id"]: f"{r['run_id']} · {r['family']} · {r.get('strategy') or 'scratch'}" for r in rows}
    want = default or active_run_id()
    if want and want not in ids:  # deleted (or never existed) while a page or a shared link pointed at it
        st.warning(f"Run {want} no longer exists (its folder was removed); showing {ids[0]} instead.")
        forget_run()
    index = ids.index(want) if want in ids else 0
    return st.selectbox(label, ids, index=index, format_func=labels.get, key=key)


@st.cache_resource(show_spinner="Loading the run's model…", max_entries=6)
def _load_run(path: str, stamp: float) -> FinishedRun:
    return load_finished(path)


def loaded_run(run: RunDir) -> FinishedRun:
    """The run's model, dataset and split (cached until the run's model changes)."""
    stamp = (run.model_dir / "model.json").stat().st_mtime if (run.model_dir / "model.json").exists() else 0.0
    return _load_run(str(run.path), stamp)


def show_error(exc: Exception) -> None:
    """A user-facing error in plain words: never a traceback."""
    if isinstance(exc, RecTuneError):
        st.error(str(exc))
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")


def config_widgets(cls: type, key: str, defaults: dict | None = None, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """One widget per dataclass field (type, default, help, choices, bounds from its metadata)."""
    values: dict[str, Any] = {}
    defaults = defaults or {}
    fields = [f for f in describe_fields(cls) if f["name"] not in skip]
    cols = st.columns(3) if fields else []
    for n, f in enumerate(fields):
        name, default = f["name"], defaults.get(f["name"], f["default"])
        label, help_text, wkey = name.replace("_", " "), f["help"] or None, f"{key}.{name}"
        with cols[n % 3]:
            if f["choices"]:
                choices = list(f["choices"])
                values[name] = st.selectbox(label, choices, index=choices.index(default) if default in choices else 0,
                                            help=help_text, key=wkey)
            elif isinstance(default, bool):
                values[name] = st.checkbox(label, value=default, help=help_text, key=wkey)
            elif isinstance(default, int):
                values[name] = int(st.number_input(label, value=int(default), step=1, help=help_text, key=wkey,
                                                   min_value=int(f["min"]) if f["min"] is not None else None,
                                                   max_value=int(f["max"]) if f["max"] is not None else None))
            elif isinstance(default, float):
                values[name] = float(st.number_input(label, value=float(default), help=help_text, key=wkey,
                                                     format="%g", min_value=float(f["min"]) if f["min"] is not None else None,
                                                     max_value=float(f["max"]) if f["max"] is not None else None))
            elif isinstance(default, (tuple, list)):
                text = st.text_input(label, value=", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                                                             for v in default), help=help_text, key=wkey)
                values[name] = parse_number_list(text, float if any(isinstance(v, float) for v in default) else int)
            else:
                values[name] = st.text_input(label, value="" if default is None else str(default), help=help_text,
                                             key=wkey)
    return values


def parse_number_list(text: str, kind: type) -> list:
    """'10, 50, 1e3' -> numbers of `kind`; what is not a number is left out (the config check reports the rest)."""
    out = []
    for part in text.replace(" ", "").split(","):
        try:
            out.append(kind(float(part)) if kind is int and "." not in part else kind(part))
        except ValueError:
            continue
    return out


def keep_in_url() -> None:
    """Page switches clear the URL's query; put the active dataset, run and replay back so a reload keeps them."""
    token = st.session_state.get("data_token")
    if token and st.query_params.get("data") != token:
        st.query_params["data"] = token
    for state_key, param in (("run_id", "run"), ("live_job", "live")):
        value = st.session_state.get(state_key)
        if value and st.query_params.get(param) != value:
            st.query_params[param] = value


def sidebar(ds: Dataset) -> None:
    active_source()  # a dataset named only in the URL (a reload, a shared link) becomes the session's
    active_run_id()  # likewise the run
    keep_in_url()
    with st.sidebar:
        st.markdown("### RecTune Studio")
        st.caption("Active dataset")
        st.markdown(f"**{ds.name}** · {len(ds):,} interactions · {ds.n_users:,} users · {ds.n_items:,} items")
        st.caption("Active run")
        run_id = active_run_id()
        if run_id and not run_dir(run_id).exists():  # removed while the studio showed it (or a stale link)
            st.warning(f"Run {run_id} no longer exists (its folder was removed).")
            forget_run()
            run_id = None
        if run_id:
            status = live_status(run_dir(run_id))
            st.markdown(f"`{run_id}` · {status.get('state', 'unknown')}")
        else:
            st.markdown("_none yet_")


def pretty_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
