"""Checkpoints of a training run: atomic, checksummed, loaded with safetensors and weights-only torch.load.

checkpoints/last holds the model and best weights (safetensors), the optimizer and RNG state
(weights-only torch) and the loop state; the checkpoint before it moves to checkpoints/previous, so a
damaged last checkpoint is detected by its manifest and the previous one used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from recsys_core.errors import RecTuneError
from recsys_core.storage.atomic import atomic_write_dir, existing_dir, verify_manifest, write_manifest
from recsys_core.storage.rundir import RunDir
from recsys_core.train.trainer import Trainer

Progress = Callable[[str], None]


def save_checkpoint(run: RunDir, trainer: Trainer) -> None:
    """Write checkpoints/last (the one before becomes checkpoints/previous)."""

    def fill(tmp: Path) -> None:
        save_file(_plain(trainer.model.state_dict()), str(tmp / "model.safetensors"))
        if trainer.best_state is not None:
            save_file(_plain(trainer.best_state), str(tmp / "best.safetensors"))
        torch.save(trainer.tensor_state(), tmp / "trainer.pt")
        (tmp / "loop.json").write_text(json.dumps(trainer.loop_state()))
        write_manifest(tmp)

    atomic_write_dir(run.checkpoint_dir, fill, keep_previous=run.checkpoint_dir.with_name("previous"))


def _plain(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def checkpoint_epoch(run: RunDir) -> int | None:
    """The epoch of the intact last checkpoint, or None when there is none."""
    kept = existing_dir(run.checkpoint_dir)
    if kept is None or not (kept / "loop.json").exists():
        return None
    return json.loads((kept / "loop.json").read_text())["epoch"]


def load_checkpoint(run: RunDir, trainer: Trainer, keep_best: bool = True, say: Progress | None = None) -> bool:
    """Restore the trainer from checkpoints/last, or from checkpoints/previous if the last is damaged.

    False if there is no checkpoint at all; a RecTuneError (nothing deleted) if every one is damaged.
    """
    candidates = [d for d in (existing_dir(run.checkpoint_dir), run.checkpoint_dir.with_name("previous"))
                  if d is not None and d.exists() and (d / "loop.json").exists()]
    if not candidates:
        return False
    problems = []
    for directory in candidates:
        try:
            model_state, best, tensors, loop = _read_checkpoint(directory)
        except RecTuneError as exc:
            problems.append(str(exc))
            continue
        if problems and say:
            say(f"{problems[0]}; using the previous checkpoint (epoch {loop['epoch']}) instead")
        trainer.restore(loop, tensors, {k: v.to(trainer.device) for k, v in model_state.items()},
                        {k: v.to(trainer.device) for k, v in best.items()} if best and keep_best else None)
        return True
    raise RecTuneError("no usable checkpoint: " + "; ".join(problems) + " (nothing was deleted)")


def _read_checkpoint(directory: Path):
    damage = verify_manifest(directory)
    if damage:
        raise RecTuneError(f"{directory}: the checkpoint is damaged ({damage})")
    try:
        model_state = load_file(str(directory / "model.safetensors"))
        best = load_file(str(directory / "best.safetensors")) if (directory / "best.safetensors").exists() else None
        tensors = torch.load(directory / "trainer.pt", weights_only=True, map_location="cpu")
        loop = json.loads((directory / "loop.json").read_text())
    except Exception as exc:
        raise RecTuneError(f"{directory}: the checkpoint is corrupt and cannot be resumed "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    return model_state, best, tensors, loop
