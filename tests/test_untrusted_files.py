"""Loading a file never runs its code: checkpoints are safetensors or weights-only torch files, and a pickle
that carries code is refused with a message; a run base is read as safetensors only."""
from __future__ import annotations

import os
import pickle

import pytest

from recsys_core.errors import ConfigError, DataError
from recsys_core.storage.rundir import RunDir
from recsys_core.runs.execute import execute_run
from recsys_core.runs.spec import RunSpec
from tests.conftest import ROOT

MARKER = "rectune-pwned"


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def finished_run(tmp_path, tiny_folder) -> RunDir:
    spec = RunSpec.create(str(tiny_folder), "mf", model={"dim": 8}, train={"epochs": 2, "batch_size": 64}, device="cpu")
    return execute_run(spec.save(tmp_path / "run")).run


def test_a_code_carrying_pickle_checkpoint_is_refused(finished_run, tmp_path) -> None:
    from recsys_core.cli import main

    target = tmp_path / MARKER
    # in both kept checkpoints, without their checksum manifests: torch.load(weights_only=True) is the guard
    for ckpt in (finished_run.checkpoint_dir, finished_run.checkpoint_dir.with_name("previous")):
        (ckpt / "manifest.json").unlink()
        with open(ckpt / "trainer.pt", "wb") as fh:
            pickle.dump({"optimizer": Payload(str(target))}, fh, protocol=2)
    finished_run.write_status("stopped")
    code = main(["--quiet", "train", "--resume", str(finished_run.path)])
    assert code == 2  # a clear error ...
    assert not target.exists()  # ... and the payload never ran


def test_a_run_base_is_read_as_safetensors_only(finished_run, tmp_path) -> None:
    from recsys_core.bases import load_state, resolve_base

    weights = finished_run.model_dir / "weights.safetensors"
    with open(weights, "wb") as fh:
        pickle.dump(Payload(str(tmp_path / MARKER)), fh)
    base = resolve_base(f"run:{finished_run.path}")
    with pytest.raises(ConfigError, match="not a safetensors file"):
        load_state(base)
    assert not (tmp_path / MARKER).exists()


def test_text_encoders_never_trust_remote_code() -> None:
    import inspect

    from recsys_core import text

    source = inspect.getsource(text)
    assert "trust_remote_code=False" in source and "trust_remote_code=True" not in source
    assert os.environ.get("HF_HUB_OFFLINE") in (None, "1")


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\..\\boot.ini", "/etc/cron.d/x.csv", "a/../../b.csv",
                                  ".bashrc", "x\x00.csv", "\u202ecod.exe", "...", ""])
def test_upload_names_cannot_leave_the_uploads_folder(tmp_path, monkeypatch, name) -> None:
    from recsys_core.uploads import save_upload, uploads_root

    monkeypatch.setenv("RECTUNE_UPLOADS_DIR", str(tmp_path / "uploads"))
    path = save_upload(name, b"user,item\n1,2\n")
    assert uploads_root() in path.parents and path.parent.parent == uploads_root()
    assert not path.name.startswith(".") and "/" not in path.name and "\\" not in path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uploads"]


def test_uploads_are_capped_in_the_library_and_in_the_server_config(tmp_path, monkeypatch) -> None:
    import tomllib

    from recsys_core.uploads import MAX_UPLOAD_BYTES, save_upload

    monkeypatch.setenv("RECTUNE_UPLOADS_DIR", str(tmp_path / "uploads"))
    with pytest.raises(DataError, match="upload limit"):
        save_upload("big.csv", b"0" * 1001, max_bytes=1000)
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["maxUploadSize"] * 1024 * 1024 == MAX_UPLOAD_BYTES
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").rglob("big.csv"))


def test_the_studio_binds_to_localhost_by_default() -> None:
    import tomllib

    assert tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["address"] == "localhost"
    app_rule = (ROOT / "Makefile").read_text().split("\napp:")[1].split("\n\n")[0]
    assert "--server.address localhost" in app_rule and "0.0.0.0" not in app_rule
