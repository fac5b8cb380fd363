"""Shared UI helpers: the active dataset and run, the sidebar, config widgets drawn from dataclass fields."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from recsys_core.config_fields import describe_fields
from recsys_core.data.dataset import Dataset, load_dataset
from recsys_core.errors import RecTuneError
from recsys_core.runs.index import RunIndex
from recsys_core.runs.rundir import RunDir, runs_root
from recsys_core.uploads import load_source, recall_source, remember_source


@st.cache_resource(show_spinner="Loading the demo dataset…")
def load_demo() -> Dataset:
    return load_dataset("demo")


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=4)
def _load_source(source_json: str) -> Dataset:
    return load_source(json.loads(source_json))


def activate_upload(source: dict) -> Dataset:
    """Make an uploaded dataset active for this session and remember it in the URL (?data=...)."""
    ds = _load_source(json.dumps(source, sort_keys=True))
    token = remember_source(source)
    st.session_state["dataset"], st.session_state["dataset_source"] = ds, source
    st.query_params["data"] = token
    return ds


def active_dataset() -> Dataset:
    """The dataset the pages work on: the session's, else the one named in the URL, else the demo."""
    if "dataset" in st.session_state:
        return st.session_state["dataset"]
    token = st.query_params.get("data")
    if token:
        source = recall_source(token)
        if source is not None:
            try:
                ds = _load_source(json.dumps(source, sort_keys=True))
                st.session_state["dataset"], st.session_state["dataset_source"] = ds, source
                return ds
            except RecTuneError:
                pass  # the upload is gone or changed: fall back to the demo
    return load_demo()


def active_source() -> dict:
    """How to load the active dataset again (the training worker does): path and options."""
    return st.session_state.get("dataset_source") or {"path": "demo"}


def runs() -> list[dict]:
    """Runs under the runs folder, newest first (the index is refreshed from the directories)."""
    root = runs_root()
    if not root.exists():
        return []
    return RunIndex(root).sync()


def active_run_id() -> str | None:
    """The run the pages show: the one in the URL (?run=...), so a reload or a shared link keeps it."""
    return st.query_params.get("run") or st.session_state.get("run_id")


def set_active_run(run_id: str) -> None:
    st.session_state["run_id"] = run_id
    st.query_params["run"] = run_id


def run_dir(run_id: str) -> RunDir:
    return RunDir(runs_root() / run_id)


def pick_run(label: str, rows: list[dict], key: str, default: str | None = None) -> str | None:
    """A select box over runs, labelled with model, strategy and state; defaults to the active run."""
    if not rows:
        return None
    ids = [r["run_id"] for r in rows]
    labels = {r["run_id"]: f"{r['run_id']} · {r['family']} · {r.get('strategy') or 'scratch'} · {r['state']}" for r in rows}
    want = default or active_run_id()
    if want and want not in ids:  # deleted (or never existed) while a page or a shared link pointed at it
        st.warning(f"Run {want} no longer exists (its folder was removed); showing {ids[0]} instead.")
        st.session_state.pop("run_id", None)
        st.query_params.pop("run", None)
    index = ids.index(want) if want in ids else 0
    return st.selectbox(label, ids, index=index, format_func=labels.get, key=key)


@st.cache_resource(show_spinner="Loading the run's model…", max_entries=6)
def _load_run(path: str, stamp: float):
    from recsys_core.insights import load_run

    return load_run(path)


def loaded_run(run: RunDir):
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
                text = st.text_input(label, value=", ".join(map(str, default)), help=help_text, key=wkey)
                values[name] = [int(x) for x in text.replace(" ", "").split(",") if x.lstrip("-").isdigit()]
            else:
                values[name] = st.text_input(label, value="" if default is None else str(default), help=help_text,
                                             key=wkey)
    return values


def keep_in_url() -> None:
    """Page switches clear the URL's query; put the active dataset and run back so a reload keeps them."""
    source = st.session_state.get("dataset_source")
    if source and "data" not in st.query_params:
        try:
            st.query_params["data"] = remember_source(source)
        except RecTuneError:
            pass
    if st.session_state.get("run_id") and "run" not in st.query_params:
        st.query_params["run"] = st.session_state["run_id"]


def sidebar(ds: Dataset) -> None:
    keep_in_url()
    with st.sidebar:
        st.markdown("### RecTune Studio")
        st.caption("Active dataset")
        st.markdown(f"**{ds.name}** · {len(ds):,} interactions · {ds.n_users:,} users · {ds.n_items:,} items")
        st.caption("Active run")
        run_id = active_run_id()
        if run_id and not run_dir(run_id).exists():  # removed while the studio showed it (or a stale link)
            st.warning(f"Run {run_id} no longer exists (its folder was removed).")
            st.session_state.pop("run_id", None)
            st.query_params.pop("run", None)
            run_id = None
        if run_id:
            status = run_dir(run_id).read_status()
            st.markdown(f"`{run_id}` · {status.get('state', 'unknown')}")
        else:
            st.markdown("_none yet_")


def pretty_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


def project_path(path: str | Path) -> str:
    """A path shown relative to the working folder when it is inside it (shorter commands)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)
