"""A finished (or stopped) run loaded back: its spec, trained model, dataset and split, and its figures.

Recommendations, insights, compression, the CLI and the studio's pages all load runs through here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import Split
from recsys_core.errors import RecTuneError
from recsys_core.models import family_class, load_recommender
from recsys_core.models.base import Recommender
from recsys_core.runs.spec import RunSpec
from recsys_core.storage.atomic import read_json
from recsys_core.storage.rundir import RunDir


@dataclass
class FinishedRun:
    """A run's trained model with the data and split rebuilt from its spec."""

    run: RunDir
    spec: RunSpec
    model: Recommender
    ds: Dataset
    split: Split
    eval: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def run_id(self) -> str:
        return self.run.run_id


def load_finished(run: RunDir | str | Path) -> FinishedRun:
    """Load a run that has a trained model; a clear error naming its state when it has none yet."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    if not (run.model_dir / "model.json").exists():
        state = run.read_status().get("state", "unknown") if run.exists() else "no such run"
        raise RecTuneError(f"{run.path}: no trained model yet (run state: {state})")
    spec = RunSpec.load(run.path)
    ds = spec.load_data()
    split = spec.make_split(ds)
    texts = ds.item_texts() if family_class(spec.family).needs_item_text else None
    model = load_recommender(run.model_dir, item_texts=texts)
    return FinishedRun(run, spec, model, ds, split, read_eval(run))


def read_eval(run: RunDir) -> dict:
    """eval.json of a run ({} before it finished)."""
    return read_json(run.eval_path, default={}) or {}


def base_run_of(run: RunDir) -> RunDir | None:
    """The run this one was fine-tuned from (its `run:` base), if it still exists."""
    base = str(run.read_config().get("base", "none"))
    if not base.startswith("run:"):
        return None
    path = Path(base[4:])
    return RunDir(path) if (path / "model" / "model.json").exists() else None
