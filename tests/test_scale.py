"""Real-size data on tiny inputs: file order as time, space-separated files, Parquet folders, the sparse
ItemKNN against a dense reference, EASE pruning, and memory refusals made before allocating."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from recsys_core.data import leave_last_out, load_dataset
from recsys_core.data.dataset import Dataset
from recsys_core.data.source import DataSource, load_source
from recsys_core.errors import ResourceError
from recsys_core.eval import evaluate
from recsys_core.models.ease import EASEConfig, EASERecommender
from recsys_core.models.itemknn import ItemKNNConfig, ItemKNNRecommender
from recsys_core.models.memory import DataSizes
from recsys_core.models.mf import MF, MFConfig
from recsys_core.models.sasrec import SASRec, SASRecConfig
from tests.conftest import make_interactions

ROOT = Path(__file__).resolve().parents[1]


def _time_ordered_file(tmp_path: Path, sep: str = " ") -> tuple[Path, dict[str, str]]:
    """Headerless 'user item' lines, each user's in time order but users interleaved; item ids say nothing."""
    rng = np.random.default_rng(3)
    rows, last = [], {}
    for step in range(6):
        for user in rng.permutation(40):
            item = int(rng.integers(0, 50))
            rows.append(f"u{user}{sep}i{item}_{step}")
            last[f"u{user}"] = f"i{item}_{step}"
    path = tmp_path / "sequences.txt"
    path.write_text("\n".join(rows) + "\n")
    return path, last


def test_order_file_makes_the_last_row_of_each_user_the_test_item(tmp_path: Path) -> None:
    path, last = _time_ordered_file(tmp_path)
    ds = load_source(DataSource(str(path), sep="space", order="file"))
    assert not ds.has_timestamp and ds.order == "file"
    split = leave_last_out(ds)
    assert split.name == "leave-last-out-by-file-order"
    assert "file order" in split.description
    test = {ds.users.raw(u): ds.items.raw(i) for u, i in zip(split.test["u"], split.test["i"])}
    assert test == last
    # without --order file the same data falls back to a random leave-one-out, which picks other rows
    random_split = leave_last_out(load_source(DataSource(str(path), sep="space")))
    assert random_split.name == "random-leave-one-out"


def test_cli_order_file_and_json_stays_clean(tmp_path: Path) -> None:
    path, _ = _time_ordered_file(tmp_path)
    out = subprocess.run([sys.executable, "-m", "recsys_core", "data", "report", str(path), "--sep", "space",
                          "--order", "file", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)  # stdout is exactly one JSON object
    assert info["order"] == "file" and info["interactions"] == 240
    assert "reading sequences.txt" in out.stderr and "validating" in out.stderr
    text = subprocess.run([sys.executable, "-m", "recsys_core", "data", "report", str(path), "--sep", "space",
                           "--order", "file"], capture_output=True, text=True, cwd=ROOT, timeout=300).stdout
    assert "by file order" in text


def test_headerless_space_separated_with_ratings(tmp_path: Path) -> None:
    path = tmp_path / "ratings.txt"
    path.write_text("1 10 4\n1 11 5\n2 10 3\n2 12 1\n3 11 2\n")
    ds = load_dataset(path, sep="space")
    assert ds.has_rating and len(ds) == 5
    assert sorted(ds.items.ids) == ["10", "11", "12"]
    assert ds.interactions["rating"].tolist() == [4.0, 5.0, 3.0, 1.0, 2.0]


def test_parquet_folder_with_hive_partitions(tmp_path: Path) -> None:
    frame = make_interactions(n_users=20, n_items=15, per_user=5)
    frame["month"] = np.where(frame.index % 2 == 0, "2021-01", "2021-02")
    pq.write_to_dataset(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "events",
                        partition_cols=["month"])
    ds = load_dataset(tmp_path / "events")
    assert len(ds) == len(frame.drop_duplicates(["user_id", "item_id"]))
    assert set(ds.users.ids) == set(frame["user_id"].astype(str))
    assert ds.has_timestamp and ds.has_rating


def _dense_similarity(x: np.ndarray) -> np.ndarray:
    """The dense formula written out in NumPy: cosine item-item similarity without self-similarity."""
    co = x.T @ x
    norms = np.sqrt(np.diag(co))
    sim = co / (norms[None, :] * norms[:, None] + 1e-12)
    np.fill_diagonal(sim, 0.0)
    return sim


@pytest.mark.parametrize("neighbours", [0, 5])
def test_sparse_itemknn_matches_the_dense_formula(neighbours: int, monkeypatch) -> None:
    monkeypatch.setattr("recsys_core.models.itemknn.BLOCK_BYTES", 4 * 40 * 7)  # blocks of 7 targets: many blocks
    ds = load_dataset_frame(make_interactions(n_users=60, n_items=40, per_user=9, seed=5))
    split = leave_last_out(ds)
    model = ItemKNNRecommender(split.n_users, split.n_items, ItemKNNConfig(neighbours=neighbours)).fit(split.train_history)
    x = split.train_history.csr.toarray().astype(np.float64)
    dense = _dense_similarity(x)
    ours = model.sim.toarray()
    kept = ours != 0
    np.testing.assert_allclose(ours[kept], dense[kept], rtol=1e-5)  # every kept weight is the cosine
    if neighbours == 0:
        np.testing.assert_allclose(ours, dense, rtol=1e-5, atol=1e-6)
    else:  # per target item: k sources kept, none of the dropped ones more similar (ties may go either way)
        for target in range(dense.shape[1]):
            column = dense[:, target]
            assert kept[:, target].sum() == min(neighbours, int((column != 0).sum()))
            dropped = column[~kept[:, target]]
            assert dropped.max(initial=0) <= column[kept[:, target]].min() + 1e-6
    scores = model.full_scores(np.arange(split.n_users), split.train_history).numpy()
    np.testing.assert_allclose(scores, x @ ours, rtol=1e-5, atol=1e-5)


def load_dataset_frame(frame: pd.DataFrame) -> Dataset:
    return Dataset.from_frame(frame.rename(columns={"user_id": "user", "item_id": "item"}))


def test_itemknn_all_neighbours_keeps_the_demo_figure() -> None:
    split = leave_last_out(load_dataset("demo"))
    model = ItemKNNRecommender(split.n_users, split.n_items, ItemKNNConfig(neighbours=0)).fit(split.train_history)
    # the dense implementation this replaced gave exactly this figure (rectune evaluate, before the change)
    assert evaluate(model, split, "test").metrics["ndcg@10"] == pytest.approx(0.02391383151816597, abs=1e-6)


def test_ease_max_items_fits_the_most_popular_and_says_so() -> None:
    ds = load_dataset_frame(make_interactions(n_users=80, n_items=60, per_user=10, seed=2))
    split = leave_last_out(ds)
    model = EASERecommender(split.n_users, split.n_items, EASEConfig(l2=10.0, max_items=20)).fit(split.train_history)
    scores = model.full_scores(np.arange(5), split.train_history)
    popular = set(np.argsort(-split.train_history.item_counts, kind="stable")[:20].tolist())
    finite = set(torch.nonzero(torch.isfinite(scores[0])).view(-1).tolist())
    assert finite <= popular and len(popular) == 20
    assert "20 most popular of 60 items" in model.notes()[0]


def test_memory_refusals_are_made_before_allocating(monkeypatch) -> None:
    monkeypatch.setenv("RECTUNE_MEMORY_LIMIT_BYTES", str(4e9))
    big = DataSizes(n_users=150_000, n_items=60_000, n_interactions=5_000_000, max_user_length=2000,
                    co_occurrence_bound=10**9)
    with pytest.raises(ResourceError, match=r"set max_items \(about [\d,]+ fit\)") as err:
        EASERecommender.check_memory(EASEConfig(max_seconds=0), big)
    assert err.value.field == "max_items" and "\n" not in str(err.value)
    fits = int(str(err.value).split("about ")[-1].split(" fit")[0].replace(",", ""))
    assert EASERecommender.memory_estimate(EASEConfig(max_items=fits), big).total <= 4e9 * 0.8 + 1e6
    with pytest.raises(ResourceError, match=r"fix l2 \(one fit\) and set max_items"):
        EASERecommender.check_memory(EASEConfig(max_seconds=300), big)  # 7 validation rankings alone exceed it
    monkeypatch.setenv("RECTUNE_MEMORY_LIMIT_BYTES", str(200e6))
    with pytest.raises(ResourceError, match="lower neighbours"):
        ItemKNNRecommender.check_memory(ItemKNNConfig(neighbours=0), big)
    with pytest.raises(ResourceError, match="lower hidden"):
        SASRec.check_memory(SASRecConfig(hidden=512), big)
    # a small model on small data fits in the same budget
    small = DataSizes(n_users=500, n_items=300, n_interactions=5000, max_user_length=40, co_occurrence_bound=10**5)
    assert MF.check_memory(MFConfig(), small).total < 200e6 * 0.8


def test_estimates_grow_with_the_data() -> None:
    small = DataSizes(1000, 500, 20_000, 100, 10**6)
    large = DataSizes(100_000, 50_000, 2_000_000, 1000, 10**9)
    for cls, cfg in [(ItemKNNRecommender, ItemKNNConfig(neighbours=100)), (EASERecommender, EASEConfig()),
                     (MF, MFConfig()), (SASRec, SASRecConfig())]:
        assert cls.memory_estimate(cfg, large).total > cls.memory_estimate(cfg, small).total
    ease = EASERecommender.memory_estimate(EASEConfig(), large)
    assert ease.seconds > EASERecommender.memory_estimate(EASEConfig(max_items=5000), large).seconds * 10


def test_wide_parquet_reads_only_the_mapped_columns(tmp_path: Path, monkeypatch) -> None:
    from recsys_core.data import io

    frame = make_interactions(n_users=10, n_items=12, per_user=4)
    frame["description"] = "a long text column nobody maps " * 4
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    read = []
    original = io._read_parquet
    monkeypatch.setattr(io, "_read_parquet", lambda p, columns=None: read.append(columns) or original(p, columns))
    ds = load_dataset(path)
    assert read == [["user_id", "item_id", "rating", "timestamp"]]
    assert len(ds) == len(frame) and ds.has_rating and ds.has_timestamp


def test_double_colon_files_take_the_fast_reader_and_colons_inside_fields_do_not(tmp_path: Path, monkeypatch) -> None:
    from recsys_core.data import fastcsv

    declined = []
    original = fastcsv._read_double_colon

    def spy(*args):
        try:
            return original(*args)
        except fastcsv.Declined as why:
            declined.append(why.reason)
            raise
    monkeypatch.setattr(fastcsv, "_read_double_colon", spy)
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::978300760\n1::11::3::978302109\n2::10::4::978301968\n2::12::1::978300275\n")
    ds = load_dataset(path)
    assert len(ds) == 4 and ds.has_timestamp and not declined
    titles = tmp_path / "titles.dat"
    titles.write_text("1::Star Wars: Episode IV::1977\n2::Heat::1995\n")
    from recsys_core.data.io import read_table
    raw = read_table(titles, sep="::", header=False)  # declined, then read row by row: the colon stays
    assert declined and raw.frame.iloc[0, 1] == "Star Wars: Episode IV"


def test_a_quoted_value_spanning_lines_gets_the_exact_message(tmp_path: Path) -> None:
    from recsys_core.errors import DataError

    path = tmp_path / "q.csv"
    path.write_text('user,item,rating\n1,"a\nb",4\n2,c,3\n')
    with pytest.raises(DataError, match="line 2 has 2 fields"):
        load_dataset(path)
