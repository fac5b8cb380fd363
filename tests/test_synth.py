"""bench/synth.py: exact sizes, heavy tails, taste structure, time order, determinism, round trips."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT

USERS, ITEMS, ROWS = 2000, 500, 20_000


def _load():
    spec = importlib.util.spec_from_file_location("bench_synth", ROOT / "bench" / "synth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synth = _load()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synth.generate(USERS, ITEMS, ROWS, seed=0)


def test_sizes_columns_and_ranges(frame):
    assert len(frame) == ROWS
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", "float64", "int64"]
    per_user = frame.groupby("user_id").size()
    assert len(per_user) == USERS and per_user.min() >= 3
    assert per_user.max() > 5 * per_user.median()  # heavy-tailed activity
    assert frame["item_id"].between(1, ITEMS).all() and frame["user_id"].between(1, USERS).all()
    ratings = frame["rating"].to_numpy()
    assert ratings.min() >= 0.5 and ratings.max() <= 5.0 and np.all(ratings * 2 == np.round(ratings * 2))
    assert frame.duplicated(["user_id", "item_id"]).mean() < 0.02


@pytest.mark.parametrize("users,rows", [(100, 300), (7, 1000), (999, 12_345)])
def test_row_count_is_exact_at_edges(users, rows):
    out = synth.generate(users, 50, rows, seed=3)
    assert len(out) == rows and out.groupby("user_id").size().min() >= 3


def test_too_few_rows_is_refused():
    with pytest.raises(ValueError):
        synth.generate(100, 50, 299)


def test_popularity_is_heavy_tailed(frame):
    counts = frame["item_id"].value_counts().to_numpy()  # sorted, most popular first
    assert counts[: ITEMS // 10].sum() / ROWS > 0.40


def test_users_concentrate_on_few_topics(frame):
    topics = synth.item_topics(ITEMS, seed=0)
    assert topics.index.is_unique and len(topics) == ITEMS

    def top_topic_share(topic: np.ndarray) -> float:
        counts = pd.DataFrame({"u": frame["user_id"].to_numpy(), "t": topic}).groupby(["u", "t"]).size()
        return float((counts.groupby(level=0).max() / counts.groupby(level=0).sum()).mean())

    real = topics.reindex(frame["item_id"]).to_numpy()
    shuffled = np.random.default_rng(1).permutation(real)  # same topic sizes, no taste
    assert top_topic_share(real) > top_topic_share(shuffled) + 0.15


def test_timestamps_increase_within_user_and_span_years(frame):
    same_user = frame["user_id"].eq(frame["user_id"].shift())
    assert (frame["timestamp"].diff()[same_user] > 0).all()
    span_days = (frame["timestamp"].max() - frame["timestamp"].min()) / 86_400
    assert 700 < span_days <= 3 * 365


def test_no_timestamp_file_keeps_time_order(frame, tmp_path, monkeypatch, capsys):
    out = tmp_path / "seq.tsv"
    monkeypatch.setattr(sys, "argv", ["synth.py", "--users", str(USERS), "--items", str(ITEMS),
                                      "--rows", str(ROWS), "--out", str(out), "--no-timestamp"])
    synth.main()
    assert "20,000 rows" in capsys.readouterr().err
    written = pd.read_csv(out, sep="\t")
    assert list(written.columns) == ["user_id", "item_id", "rating"]
    # Rows are grouped per user: a user's rows are contiguous.
    starts = written["user_id"].ne(written["user_id"].shift())
    assert starts.sum() == written["user_id"].nunique() == USERS
    # Same rows in the same order as generate(), whose timestamps increase within each user.
    pd.testing.assert_frame_equal(written, frame.drop(columns="timestamp"))


def test_same_seed_same_data_other_seed_differs(frame):
    pd.testing.assert_frame_equal(synth.generate(USERS, ITEMS, ROWS, seed=0), frame)
    assert not synth.generate(USERS, ITEMS, ROWS, seed=1).equals(frame)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
def test_round_trip(frame, tmp_path, fmt):
    path = tmp_path / f"log.{fmt}"
    synth.write(frame, path, fmt)
    back = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    pd.testing.assert_frame_equal(back, frame)
