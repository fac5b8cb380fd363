"""RunSpec: one typed description of a run; config.json is one, written once and run as it is."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_core.bases import BaseKind, register_base_kind
from recsys_core.cli import main
from recsys_core.data.source import DataSource, load_source
from recsys_core.errors import ConfigError
from recsys_core.models import FAMILIES, family_class, register_model
from recsys_core.models.mf import MF, MFConfig
from recsys_core.runs.spec import RunSpec, SplitSpec
from recsys_core.storage.rundir import RunDir
from recsys_core.strategies import STRATEGIES, register_strategy
from recsys_core.strategies.simple import Full
from recsys_core.train.trainer import TrainerConfig
from tests.conftest import ROOT


def _spec(data: Path, **changes) -> RunSpec:
    spec = RunSpec(DataSource(str(data), min_user_interactions=2), "mf", MFConfig(dim=8),
                   TrainerConfig(epochs=2, batch_size=64, log_every=1), split=SplitSpec("leave-last-out", 0),
                   device="cpu")
    return spec.replace(**changes) if changes else spec


def test_to_json_and_from_json_round_trip_exactly(tiny_folder) -> None:
    for spec in (_spec(tiny_folder), RunSpec.create(str(tiny_folder), "sasrec", model={"hidden": 16, "heads": 2},
                                                    strategy="scratch", seed=3),
                 RunSpec.create("demo", "ease", model={"l2": 50.0})):
        text = json.dumps(spec.to_json(), sort_keys=True)
        again = RunSpec.from_json(json.loads(text))
        assert again == spec
        assert json.dumps(again.to_json(), sort_keys=True) == text


def test_spec_validates_when_built(tiny_folder) -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        _spec(tiny_folder, family="nope")
    with pytest.raises(ConfigError, match="must be a"):
        _spec(tiny_folder, family="sasrec")  # MF options for a SASRec
    with pytest.raises(ConfigError, match="closed form"):
        RunSpec.create(str(tiny_folder), "ease", strategy="full")
    with pytest.raises(ConfigError, match="unknown base"):
        _spec(tiny_folder, base="wat:1")
    with pytest.raises(ConfigError, match="split name must be one of"):
        SplitSpec("sideways")
    with pytest.raises(ConfigError, match="unknown device"):
        _spec(tiny_folder, device="tpu")
    with pytest.raises(ConfigError, match="dedupe"):
        DataSource("demo", dedupe="sometimes")


def test_create_fills_the_family_defaults_and_keeps_an_explicit_value(tiny_folder) -> None:
    spec = RunSpec.create(str(tiny_folder), "sasrec", train={"epochs": 3}, seed=7)
    assert spec.train.epochs == 3 and spec.train.min_epochs == family_class("sasrec").default_train["min_epochs"]
    assert spec.train.seed == 7 and spec.split.seed == 7
    assert spec.data.path == str(tiny_folder.resolve())


def test_one_loader_for_every_data_source(tiny_folder) -> None:
    source = DataSource(str(tiny_folder), min_user_interactions=9)
    ds = load_source(source)
    assert ds.interactions.groupby("u").size().min() >= 9
    assert DataSource.from_dict(source.as_dict()) == source
    assert DataSource(str(tiny_folder), columns="user=userId,item=movieId").columns == {"user": "userId", "item": "movieId"}


def test_a_saved_spec_is_not_overwritten_by_another(tiny_folder, tmp_path) -> None:
    run = _spec(tiny_folder).save(tmp_path / "run")
    before = run.config_path.read_bytes()
    _spec(tiny_folder).save(run.path)  # the same spec again: nothing written
    assert run.config_path.read_bytes() == before
    with pytest.raises(ConfigError, match="already holds another run spec"):
        _spec(tiny_folder, seed=1).save(run.path)
    assert run.config_path.read_bytes() == before


def test_train_run_dir_runs_the_saved_spec_and_never_rewrites_it(tiny_folder, tmp_path) -> None:
    run = _spec(tiny_folder).save(tmp_path / "runs" / "from-spec")
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json"]
    before = run.config_path.read_bytes()
    res = subprocess.run([sys.executable, "-m", "recsys_core", "train", "--run-dir", str(run.path), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["status"] == "finished" and out["run_dir"] == str(run.path)
    assert run.config_path.read_bytes() == before  # byte-identical after the run
    assert RunDir(run.path).read_status()["state"] == "finished"
    assert (run.model_dir / "model.json").exists()
    # the run trained what the spec says: 2 epochs of mf with dim 8
    assert json.loads((run.model_dir / "model.json").read_text())["config"]["dim"] == 8
    assert max(m["epoch"] for m in run.read_metrics() if m["type"] == "eval") == 2


def test_run_dir_alone_refuses_flags_that_would_change_the_spec(tiny_folder, tmp_path, capsys) -> None:
    run = _spec(tiny_folder).save(tmp_path / "runs" / "fixed")
    before = run.config_path.read_bytes()
    assert main(["train", "--run-dir", str(run.path), "--epochs", "9"]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(tmp_path / "empty")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert run.config_path.read_bytes() == before


def test_flags_build_a_spec_that_the_directory_then_holds(tiny_folder, tmp_path, capsys) -> None:
    run_dir = tmp_path / "runs" / "flags"
    assert main(["train", "--data", str(tiny_folder), "--model", "mf", "--epochs", "1", "--device", "cpu",
                 "--min-user-interactions", "2", "--run-dir", str(run_dir), "--json"]) == 0
    spec = RunSpec.load(run_dir)
    assert spec.train.epochs == 1 and spec.device == "cpu" and spec.data.min_user_interactions == 2
    assert main(["train", "--data", str(tiny_folder), "--model", "mf", "--run-dir", str(run_dir)]) == 2
    assert "already holds" in capsys.readouterr().err


@pytest.mark.parametrize("register, item", [
    (register_model, MF),
    (register_strategy, Full()),
    (register_base_kind, BaseKind("run", lambda s, r: None, lambda r: [], takes_argument=True)),
])
def test_registries_refuse_a_name_already_taken(register, item) -> None:
    before = (dict(FAMILIES), dict(STRATEGIES))
    with pytest.raises(ConfigError, match="already registered"):
        register(item)
    assert (dict(FAMILIES), dict(STRATEGIES)) == before
