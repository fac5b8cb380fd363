"""Where the project lives on disk (the embedded demo data and the package root), for every layer."""
from __future__ import annotations

from pathlib import Path


def project_root() -> Path:
    """The checkout (or installed tree) holding recsys_core/, data/ and app.py."""
    return Path(__file__).resolve().parents[1]
