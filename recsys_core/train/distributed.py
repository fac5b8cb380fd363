"""Data-parallel training on PyTorch's own engine: torchrun launches the ranks, DDP averages gradients.

Each rank trains on its shard of every epoch's batches (the same shuffled order on every rank, batch j
going to rank j mod world), rank 0 validates and writes metrics, checkpoints and the model. NCCL on
GPUs, gloo on CPUs. Single-process training never touches this module's process group.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as td
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recsys_core.errors import ConfigError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_request: str = "auto") -> tuple[Dist, torch.device | None]:
    """Join the process group torchrun set up; (SINGLE, None) when not launched by torchrun."""
    if not launched_by_torchrun():
        return SINGLE, None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    gpu = torch.cuda.is_available() and device_request in ("auto", "cuda")
    backend = "nccl" if gpu else "gloo"
    if gpu:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not td.is_initialized():
        td.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return Dist(rank, world, local, backend), device


def shutdown() -> None:
    """Leave the process group together: a rank that tears down gloo while rank 0 still evaluates can abort
    ("terminate called without an active exception", seen on a loaded 2-core machine)."""
    if td.is_available() and td.is_initialized():
        td.barrier()
        td.destroy_process_group()


def broadcast(value: Any, dist: Dist) -> Any:
    """Rank 0's `value` on every rank."""
    if not dist.enabled:
        return value
    box = [value if dist.is_main else None]
    td.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, dist: Dist) -> list:
    """Every rank's `value`, in rank order, on every rank."""
    if not dist.enabled:
        return [value]
    out: list = [None] * dist.world
    td.all_gather_object(out, value)
    return out


def any_rank(flag: bool, dist: Dist) -> bool:
    """True on every rank when it is True on any (stop requests must be obeyed by all ranks at the same step)."""
    if not dist.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device(dist))
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(value: float, dist: Dist) -> float:
    """The mean of a scalar over ranks; NaN anywhere gives NaN everywhere, so all ranks fail together."""
    if not dist.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64 if dist.backend == "gloo" else torch.float32, device=_comm_device(dist))
    td.all_reduce(t, op=td.ReduceOp.SUM)
    return float(t.item()) / dist.world


def _comm_device(dist: Dist) -> torch.device:
    return torch.device("cuda", dist.local_rank) if dist.backend == "nccl" else torch.device("cpu")


def shard(batches: Iterable[dict], n_batches: int, dist: Dist) -> Iterator[dict]:
    """This rank's batches: j = rank, rank + world, ...; every rank gets ceil(n / world) (a few repeat)."""
    if not dist.enabled:
        yield from batches
        return
    per_rank = max(1, -(-n_batches // dist.world))
    wanted = sorted({(s * dist.world + dist.rank) % max(1, n_batches) for s in range(per_rank)})
    repeats = per_rank - len(wanted)  # when n_batches < world, reuse a batch so step counts match
    kept: dict | None = None
    for j, batch in enumerate(batches):
        if j in wanted:
            kept = batch
            yield batch
    for _ in range(repeats):
        if kept is not None:
            yield kept


def steps_per_rank(n_batches: int, dist: Dist) -> int:
    return max(1, -(-n_batches // dist.world)) if dist.enabled else max(1, n_batches)


class LossModule(nn.Module):
    """Wraps a recommender so DDP sees the whole loss (model loss + strategy penalty + L1) as forward()."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[dict], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: dict) -> torch.Tensor:
        return self.loss_fn(batch)


def wrap(model: nn.Module, loss_fn: Callable[[dict], torch.Tensor], device: torch.device) -> nn.Module:
    ids = [device.index] if device.type == "cuda" else None
    # Some families leave parameters out of some batches (e.g. a head only used for some examples).
    return DistributedDataParallel(LossModule(model, loss_fn), device_ids=ids, find_unused_parameters=True)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers, to check that ranks agree."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """`rectune train --nproc N ...` as a torchrun command on this machine (single node)."""
    if nproc < 1:
        raise ConfigError("--nproc must be at least 1")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "recsys_core.cli", *argv]


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """argv without its --nproc option (the launched ranks must not launch again)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out
