"""Files users upload in the studio: stored under one folder with safe names, never outside it."""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from recsys_core.data.io import read_table
from recsys_core.data.schema import ROLES, role_of
from recsys_core.data.source import DataSource
from recsys_core.errors import DataError, RecTuneError
from recsys_core.storage.atomic import atomic_write_bytes, atomic_write_json, read_json

MAX_UPLOAD_BYTES = 1024 * 1024 * 1024  # the same cap as .streamlit/config.toml's server.maxUploadSize (MB)


def uploads_root() -> Path:
    return Path(os.environ.get("RECTUNE_UPLOADS_DIR", "uploads")).resolve()


def safe_name(name: str) -> str:
    """A file name with no directory part and only letters, digits, '.', '_' and '-'."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")[:100]
    return base or "upload"


def save_upload(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Store uploaded bytes as uploads/<time>-<hash>/<safe name>; the path always stays inside uploads/."""
    if len(data) > max_bytes:
        raise DataError(f"{safe_name(name)}: {len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB upload limit")
    if not data:
        raise DataError(f"{safe_name(name)}: the file is empty")
    root = uploads_root()
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{hashlib.sha256(data).hexdigest()[:8]}"
    path = (folder / safe_name(name)).resolve()
    if root not in path.parents:
        raise DataError(f"{name!r}: not a usable file name")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def column_preview(path: str | Path, sep: str | None = None, header: bool | None = None, rows: int = 8) -> dict:
    """The file's columns, its first rows and the inferred role of each column (for a mapping step)."""
    raw = read_table(Path(path), sep=sep, header=header)
    columns = [str(c) for c in raw.frame.columns]
    guess: dict[str, str | None] = {}
    for role in ROLES:
        named = [c for c in columns if role_of(c) == role and c not in guess.values()]
        guess[role] = named[0] if named else None
    if not raw.header:  # no names to go by: the conventional order user, item, rating, timestamp
        guess = {role: (columns[k] if k < len(columns) else None) for k, role in enumerate(ROLES)}
    return {"columns": columns, "head": raw.frame.head(rows), "rows": len(raw.frame), "mapping": guess,
            "sep": raw.sep, "header": raw.header}


def mapping_spec(mapping: dict[str, str | None], columns: list[str], header: bool) -> dict[str, str]:
    """The column mapping to load with: role -> column name (0-based position when there is no header row).

    A dict, not a 'role=column' string, so column names holding ',' or '=' map safely.
    """
    return {role: col if header else str(columns.index(col)) for role, col in mapping.items() if col}


SOURCE_FILE = "source.json"


def remember_source(source: DataSource) -> str:
    """Save how an uploaded dataset is loaded (path, mapping, cleaning) beside it; returns its folder's name.

    Saved once: the same source again writes nothing.
    """
    path = Path(source.path).resolve()
    root = uploads_root()
    if root not in path.parents:
        raise DataError("only uploaded files can be remembered")
    target = path.parent / SOURCE_FILE
    if read_json(target) != source.as_dict():
        atomic_write_json(target, source.as_dict())
    return path.parent.name


def recall_source(token: str) -> DataSource | None:
    """The source saved by remember_source under uploads/<token>/, or None (unknown or unsafe token)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", token or "") or token.startswith("."):
        return None
    try:
        source = DataSource.from_dict(json.loads((uploads_root() / token / SOURCE_FILE).read_text()))
    except (OSError, ValueError, RecTuneError):
        return None
    file = Path(source.path).resolve()
    return source if uploads_root() in file.parents and file.exists() else None
