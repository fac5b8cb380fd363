"""rectune compress: magnitude pruning made permanent, sparse int8 storage that really shrinks, and the
same model (within quantisation error) when loaded back."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recsys_core.cli import main
from recsys_core.compress import _pack, _unpack, load_compressed, prune_model
from recsys_core.errors import ConfigError
from recsys_core.models import build_model


def test_pack_round_trip_sparse_and_int8() -> None:
    torch.manual_seed(0)
    t = torch.randn(20, 16)
    t[t.abs() < 0.7] = 0.0  # about half zero
    exact = _unpack("w", _pack("w", t, quantize=False), [20, 16])
    assert torch.equal(exact, t)
    approx = _unpack("w", _pack("w", t, quantize=True), [20, 16])
    assert torch.equal(approx != 0, t != 0)  # the zeros stay exactly zero
    assert (approx - t).abs().max() <= t.abs().amax(1, keepdim=True).max() / 127 + 1e-6
    vec = torch.randn(7)
    assert torch.equal(_unpack("b", _pack("b", vec, True), [7]), vec)  # 1-D tensors stay dense and exact


def test_pruning_zeroes_the_smallest_weights_globally() -> None:
    torch.manual_seed(0)
    model = build_model("sasrec", 10, 50, {"hidden": 16, "heads": 2, "inner": 32, "max_len": 8})
    prune_model(model, 0.5)
    weights = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]
    zeros = sum(int((w == 0).sum()) for w in weights)
    total = sum(w.numel() for w in weights)
    assert zeros / total == pytest.approx(0.5, abs=0.01)
    assert not any(n.endswith("_orig") or n.endswith("_mask") for n, _ in model.named_parameters())  # permanent
    with pytest.raises(ConfigError):
        prune_model(model, 1.5)


def test_cli_compress_halves_the_size_and_reloads(tmp_path, tiny_folder, capsys) -> None:
    run = tmp_path / "run"
    assert main(["--quiet", "train", "--data", str(tiny_folder), "--model", "sasrec", "--epochs", "3",
                 "--device", "cpu", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["--quiet", "compress", "--run", str(run), "--prune", "0.5", "--quantize", "int8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"size_before", "size_after", "ndcg_before", "ndcg_after", "latency_before_ms", "latency_after_ms"} <= set(out)
    assert out["size_after"] <= 0.5 * out["size_before"]
    assert 0.0 <= out["ndcg_after"] <= 1.0 and out["latency_after_ms"] > 0
    small = load_compressed(run / "compressed")
    from recsys_core.runs.finished import load_finished
    from recsys_core.storage.rundir import RunDir

    split = load_finished(RunDir(run)).split
    scores = small.full_scores(np.arange(5), split.train_history)
    assert scores.shape == (5, split.n_items) and torch.isfinite(scores).all()
    assert main(["--quiet", "compress", "--run", str(tmp_path / "missing")]) == 2
