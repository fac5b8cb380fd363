"""Loading a file never runs its code: checkpoints are safetensors or weights-only torch files, and a pickle
that carries code is refused with a message; a run base is read as safetensors only."""
from __future__ import annotations

import os
import pickle

import pytest

from recsys_core.errors import RecTuneError
from recsys_core.runs.rundir import RunDir
from recsys_core.train.run import execute_run, make_run_config, start_run

MARKER = "rectune-pwned"


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def finished_run(tmp_path, tiny_folder) -> RunDir:
    cfg = make_run_config(str(tiny_folder), "mf", model={"dim": 8}, train={"epochs": 2, "batch_size": 64}, device="cpu")
    return execute_run(start_run(cfg, tmp_path / "run")).run


def test_a_code_carrying_pickle_checkpoint_is_refused(finished_run, tmp_path) -> None:
    from recsys_core.cli import main

    target = tmp_path / MARKER
    ckpt = finished_run.checkpoint_dir
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
    with pytest.raises(Exception):
        load_state(base)
    assert not (tmp_path / MARKER).exists()


def test_text_encoders_never_trust_remote_code() -> None:
    import inspect

    from recsys_core import text

    source = inspect.getsource(text)
    assert "trust_remote_code=False" in source and "trust_remote_code=True" not in source
    assert os.environ.get("HF_HUB_OFFLINE") in (None, "1")
