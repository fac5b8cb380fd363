"""Atomic file and directory writes: write beside the target, fsync, then rename over it."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_default) + "\n").encode())


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def atomic_write_dir(target: Path, fill: Callable[[Path], None], keep_previous: Path | None = None) -> None:
    """Build a directory with `fill(tmpdir)` and swap it in; the previous version survives any failure.

    Sequence: fill tmp -> rename target to target.old -> rename tmp to target -> remove target.old
    (or, with `keep_previous`, move it there: one good older copy in case the new one is later damaged).
    A reader finding no `target` but a `target.old` (a crash between the renames) uses the old one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = target.with_name(target.name + ".old")
    try:
        fill(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        if keep_previous is not None and old.exists():
            shutil.rmtree(keep_previous, ignore_errors=True)
            os.replace(old, keep_previous)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def existing_dir(target: Path) -> Path | None:
    """The directory written by atomic_write_dir, or its previous version after a crash mid-swap."""
    target = Path(target)
    if target.exists():
        return target
    old = target.with_name(target.name + ".old")
    return old if old.exists() else None


def write_manifest(directory: Path) -> None:
    """manifest.json: the SHA-256 of every file in `directory`, so damage is detected before loading."""
    digests = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(Path(directory).iterdir())
               if f.is_file() and f.name != "manifest.json"}
    (Path(directory) / "manifest.json").write_text(json.dumps(digests, indent=1))


def verify_manifest(directory: Path) -> str | None:
    """None when every file matches manifest.json (or there is none, as in older runs); else what is wrong."""
    path = Path(directory) / "manifest.json"
    if not path.exists():
        return None
    try:
        digests = json.loads(path.read_text())
    except json.JSONDecodeError:
        return "its manifest.json is damaged"
    for name, digest in digests.items():
        f = Path(directory) / name
        if not f.exists():
            return f"{name} is missing"
        if hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            return f"{name} does not match its checksum"
    return None
