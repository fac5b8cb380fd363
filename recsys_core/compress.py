"""Compression of a trained run for deployment: magnitude pruning and int8 quantisation, with their measured effect.

Pruning (torch.nn.utils.prune, global L1 over every weight matrix and embedding table, then made
permanent) zeroes the smallest weights; the compressed format stores each pruned tensor as a bit mask
of its non-zeros plus only those values, so the file really shrinks. Quantisation stores those values as
int8 with one scale per row, and at load time the model's linear layers run as dynamically quantised
int8 layers on the CPU (torch.ao.quantization.quantize_dynamic).
"""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recsys_core.errors import ConfigError
from recsys_core.eval.evaluator import evaluate, mask_known
from recsys_core.models import build_model
from recsys_core.runs.finished import load_finished
from recsys_core.storage.atomic import atomic_write_dir
from recsys_core.storage.rundir import RunDir
from recsys_core.train.device import pick_device, seed_everything
from recsys_core.train.finetune import build_trainer

FORMAT = "rectune-compressed-1"


def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every Linear weight and Embedding table (biases and norms stay dense: they are tiny)."""
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Embedding))]


def prune_model(model: nn.Module, amount: float, recover=None) -> None:
    """Zero the `amount` share of smallest-magnitude weights across the whole model, permanently.

    `recover(model)`, if given, trains the model while the pruning masks hold (the classic
    prune-then-fine-tune: the surviving weights make up for the removed ones) before they are made permanent.
    """
    import torch.nn.utils.prune as prune  # torch's pruning utilities load only when a model is compressed

    if not 0.0 <= amount < 1.0:
        raise ConfigError(f"--prune must be in [0, 1), not {amount}")
    targets = _prunable(model)
    if amount > 0 and targets:
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
        if recover is not None:
            recover(model)
        for module, name in targets:
            prune.remove(module, name)


def _pack(name: str, t: torch.Tensor, quantize: bool) -> dict[str, torch.Tensor]:
    """Sparse (bit mask + non-zero values) and optionally int8 (per-row scale) encoding of one tensor."""
    t = t.detach().float().cpu().contiguous()
    if t.dim() != 2:
        return {f"{name}::dense": t}
    mask = t != 0
    sparse = mask.float().mean() < 0.75  # below that density a mask + values is smaller than dense
    out: dict[str, torch.Tensor] = {}
    values = t[mask] if sparse else t.flatten()
    if sparse:
        out[f"{name}::mask"] = torch.from_numpy(np.packbits(mask.numpy().ravel()))
    if quantize:
        rows = torch.arange(t.shape[0]).unsqueeze(1).expand_as(t)[mask] if sparse else \
            torch.arange(t.shape[0]).repeat_interleave(t.shape[1])
        scale = (t.abs().amax(1) / 127.0).clamp(min=1e-12)
        out[f"{name}::q"] = torch.round(values / scale[rows]).clamp(-127, 127).to(torch.int8)
        out[f"{name}::scale"] = scale
    else:
        out[f"{name}::values"] = values
    return out


def _unpack(name: str, parts: dict[str, torch.Tensor], shape: list[int]) -> torch.Tensor:
    if f"{name}::dense" in parts:
        return parts[f"{name}::dense"]
    n = int(np.prod(shape))
    if f"{name}::mask" in parts:
        mask = torch.from_numpy(np.unpackbits(parts[f"{name}::mask"].numpy())[:n].astype(bool)).view(shape)
    else:
        mask = torch.ones(shape, dtype=torch.bool)
    if f"{name}::q" in parts:
        rows = torch.arange(shape[0]).unsqueeze(1).expand(shape)[mask]
        values = parts[f"{name}::q"].float() * parts[f"{name}::scale"][rows]
    else:
        values = parts[f"{name}::values"]
    out = torch.zeros(shape)
    out[mask] = values
    return out


def save_compressed(model: nn.Module, directory: Path, quantize: bool) -> None:
    meta = json.loads((directory / "model.json").read_text()) if (directory / "model.json").exists() else {}
    state = model.state_dict()
    packed: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        packed.update(_pack(name, t, quantize))
    save_file(packed, str(directory / "compressed.safetensors"))
    meta.update({"format": FORMAT, "quantize": "int8" if quantize else "none",
                 "shapes": {k: list(v.shape) for k, v in state.items()}})
    (directory / "model.json").write_text(json.dumps(meta, indent=2))


def load_compressed(directory: str | Path, item_texts: list[str] | None = None) -> nn.Module:
    """Rebuild a compressed model; with int8, its linear layers run dynamically quantised on the CPU."""
    directory = Path(directory)
    meta = json.loads((directory / "model.json").read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{directory}: not a compressed model (no {FORMAT} marker in model.json)")
    parts = load_file(str(directory / "compressed.safetensors"))
    state = {name: _unpack(name, parts, shape) for name, shape in meta["shapes"].items()}
    model = build_model(meta["family"], meta["n_users"], meta["n_items"], meta["config"])
    if model.needs_item_text:
        if item_texts is None:
            raise ConfigError(f"{directory}: this model reads item text; give the item texts to load it")
        model.set_item_texts(item_texts)
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.items()})
    model.eval()
    if meta.get("quantize") == "int8":
        with warnings.catch_warnings():  # torch.ao's eager quantisation is deprecated upstream (torchao) yet works
            warnings.simplefilter("ignore")
            model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    return model


def _dir_bytes(directory: Path, names: tuple[str, ...]) -> int:
    return sum((directory / n).stat().st_size for n in names if (directory / n).exists())


def _latency_ms(model, users: np.ndarray, history, repeats: int = 30) -> float:
    """Median wall time of a top-10 for one user (full scores + top-k), after a warm-up."""
    times = []
    with torch.no_grad():
        for r in range(repeats + 3):
            u = users[r % len(users): r % len(users) + 1]
            start = time.perf_counter()
            torch.topk(mask_known(model.full_scores(u, history), u, history), 10)
            if r >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def _recovery(finished, epochs: int, say):
    """A short fine-tune of the pruned model on the run's own training data, best epoch kept on validation."""

    def recover(model: nn.Module) -> None:
        spec = finished.spec
        train = dataclasses.replace(spec.train, epochs=epochs, patience=0, min_epochs=0, schedule="constant",
                                    warmup_frac=0.0)
        device = pick_device(spec.device)
        seed_everything(spec.seed)  # the same run compresses to the same model
        with torch.enable_grad():
            model.train()
            outcome = build_trainer(model, finished.split, train, device).fit()
        model.cpu().eval()
        say(f"recovery fine-tune: {epochs} epochs with the pruning masks held, best validation ndcg@10 "
            f"{outcome.best_metric:.4f} at epoch {outcome.best_epoch}")

    return recover


def compress_run(run_dir: str | Path, prune: float = 0.5, quantize: str = "int8", out: str | Path | None = None,
                 progress=None, recover_epochs: int = 3) -> dict:
    """Prune and quantise a run's model into `out` (default RUN/compressed) and measure size, NDCG and latency."""
    if quantize not in ("int8", "none"):
        raise ConfigError(f"--quantize must be int8 or none, not {quantize!r}")
    say = progress or (lambda m: None)
    run = RunDir(run_dir)
    finished = load_finished(run)
    model, ds, split = finished.model, finished.ds, finished.split
    if not model.trainable:
        raise ConfigError(f"{run.path}: compression needs a trained neural model, not a closed-form baseline")
    torch.set_grad_enabled(False)
    model.eval()
    history = split.history("test")
    users = split.test["u"].unique()[:50]
    say("measuring the original model")
    before = evaluate(model, split, "test").metrics["ndcg@10"]
    latency_before = _latency_ms(model, users, history)
    size_before = _dir_bytes(run.model_dir, ("weights.safetensors", "model.json"))
    say(f"pruning {prune:.0%} of the weights by magnitude" + (", quantising to int8" if quantize == "int8" else ""))
    recover = _recovery(finished, recover_epochs, say) if recover_epochs > 0 and prune > 0 and not model.needs_item_text \
        else None
    prune_model(model, prune, recover)
    target = Path(out) if out else run.path / "compressed"

    def fill(directory: Path) -> None:
        (directory / "model.json").write_text((run.model_dir / "model.json").read_text())
        save_compressed(model, directory, quantize == "int8")

    atomic_write_dir(target, fill)
    small = load_compressed(target, ds.item_texts() if ds.item_table is not None else None)
    say("measuring the compressed model")
    after = evaluate(small, split, "test").metrics["ndcg@10"]
    latency_after = _latency_ms(small, users, history)
    torch.set_grad_enabled(True)
    size_after = _dir_bytes(target, ("compressed.safetensors", "model.json"))
    return {"run_dir": str(run.path), "out": str(target), "prune": prune, "quantize": quantize,
            "recovery_epochs": recover_epochs if recover is not None else 0,
            "size_before": size_before, "size_after": size_after, "size_ratio": round(size_after / size_before, 4),
            "ndcg_before": before, "ndcg_after": after,
            "ndcg_relative_change": round((after - before) / before, 4) if before else None,
            "latency_before_ms": round(latency_before, 3), "latency_after_ms": round(latency_after, 3)}
