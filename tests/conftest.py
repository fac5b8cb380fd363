"""Shared fixtures: tiny datasets written to disk, and the shared data folder (skipped when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECTUNE_SHARED_DATA", ROOT.parent / "shared" / "data"))
XWINES = SHARED_DATA / "x-wines-slim" / "XWines_Slim_150K_ratings.csv"


def make_interactions(n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0) -> pd.DataFrame:
    """Synthetic interactions with structure (users prefer a block of items) and distinct timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    t = 1_600_000_000
    for u in range(n_users):
        block = (u % 4) * (n_items // 4)
        items = rng.choice(np.arange(block, block + n_items // 4), size=min(per_user, n_items // 4), replace=False)
        for i in items:
            t += int(rng.integers(1, 1000))
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    return make_interactions()


@pytest.fixture
def tiny_csv(tmp_path: Path, tiny_frame: pd.DataFrame) -> Path:
    path = tmp_path / "tiny.csv"
    tiny_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def xwines() -> Path:
    if not XWINES.exists():
        pytest.skip("shared x-wines data not available (a user's clone has only data/)")
    return XWINES


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """A MovieLens-style folder: ratings.csv plus movies.csv with titles and genres."""
    folder = tmp_path / "tiny_ml"
    folder.mkdir()
    frame = make_interactions(n_users=40, n_items=40, per_user=9)
    frame.rename(columns={"user_id": "userId", "item_id": "movieId"}).to_csv(folder / "ratings.csv", index=False)
    genres = ["Comedy", "Drama", "Horror", "Animation"]
    items = pd.DataFrame({"movieId": [f"i{j}" for j in range(40)],
                          "title": [f"Movie {j} ({1990 + j})" for j in range(40)],
                          "genres": [genres[(j // 10) % 4] + "|" + genres[(j // 10 + 1) % 4] for j in range(40)]})
    items.to_csv(folder / "movies.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def demo_genre_catalogues():
    """The demo data as two catalogues with no item in common: comedies, and everything else (top 150 each)."""
    from recsys_core.data.dataset import load_dataset
    from recsys_core.experiments.catalogue import split_catalogue

    return split_catalogue(load_dataset("demo"), "comedy", top_items=150, min_user=8)
