"""Loading every supported format, inferring column roles, joining item text."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys_core.data import CleaningOptions, load_dataset
from recsys_core.data.schema import infer_mapping, role_of

ROLE_CASES = [
    ("userId", "user"), ("user_id", "user"), ("UserID", "user"), ("uid", "user"), ("customer", "user"),
    ("customer_id", "user"), ("user_id:token", "user"),
    ("movieId", "item"), ("item", "item"), ("item_id", "item"), ("product", "item"), ("ProductID", "item"),
    ("WineID", "item"), ("asin", "item"), ("track_id", "item"),
    ("rating", "rating"), ("Rating", "rating"), ("score", "rating"), ("stars", "rating"), ("play_count", "rating"),
    ("timestamp", "timestamp"), ("time", "timestamp"), ("Date", "timestamp"), ("created_at", "timestamp"),
    ("event_time", "timestamp"),
    ("RatingID", None), ("Vintage", None), ("title", None), ("genres", None), ("order_id", None),
]


@pytest.mark.parametrize("name,role", ROLE_CASES)
def test_role_inference_from_names(name: str, role: str | None) -> None:
    assert role_of(name) == role


def test_xwines_header_maps_ids_not_rating_id_or_vintage() -> None:
    m = infer_mapping(["RatingID", "UserID", "WineID", "Vintage", "Rating", "Date"])
    assert m.as_dict() == {"user": "UserID", "item": "WineID", "rating": "Rating", "timestamp": "Date"}


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "semicolon":
        frame.to_csv(path, sep=";", index=False)
    elif fmt == "pipe":
        frame.to_csv(path, sep="|", index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "json-array":
        path.write_text(json.dumps(frame.to_dict("records")))
    elif fmt == "inter":
        out = frame.rename(columns={"user_id": "user_id:token", "item_id": "item_id:token",
                                    "rating": "rating:float", "timestamp": "timestamp:float"})
        out.to_csv(path, sep="\t", index=False)
    return path


FORMATS = {"csv": "x.csv", "tsv": "x.tsv", "semicolon": "x.csv", "pipe": "x.txt", "parquet": "x.parquet",
           "jsonl": "x.jsonl", "json-array": "x.json", "inter": "x.inter"}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_loads_the_same_interactions(tmp_path: Path, tiny_frame: pd.DataFrame, fmt: str) -> None:
    ds = load_dataset(_write(tiny_frame, tmp_path / FORMATS[fmt], fmt))
    assert len(ds) == len(tiny_frame)
    assert ds.n_users == tiny_frame["user_id"].nunique()
    assert ds.n_items == tiny_frame["item_id"].nunique()
    assert ds.has_rating and ds.has_timestamp
    assert ds.report.mapping == {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
    assert ds.interactions["rating"].tolist() == tiny_frame["rating"].tolist()
    assert ds.interactions["timestamp"].tolist() == tiny_frame["timestamp"].astype(float).tolist()


def test_headerless_tsv_with_positions(tmp_path: Path, tiny_frame: pd.DataFrame) -> None:
    path = tmp_path / "nohead.tsv"
    tiny_frame[["timestamp", "item_id", "user_id", "rating"]].to_csv(path, sep="\t", index=False, header=False)
    ds = load_dataset(path, columns="user=2,item=1,rating=3,timestamp=0", sep="tab", header=False)
    assert ds.users.ids[0] == "u0" and ds.items.ids[0] == tiny_frame["item_id"].iloc[0]
    assert ds.has_timestamp and len(ds) == len(tiny_frame)


def test_headerless_detected_without_flag(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n2\t30\t1\t881250952\n")
    ds = load_dataset(path)
    assert ds.report.mapping == {"user": "0", "item": "1", "rating": "2", "timestamp": "3"}
    assert any("no header" in n for n in ds.report.notes)


def test_movielens_dat_with_double_colon(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n2::3::2::978299000\n")
    (folder / "movies.dat").write_text("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation\n3::Grumpier Old Men (1995)::Comedy|Romance\n")
    ds = load_dataset(folder)
    assert len(ds) == 4 and ds.n_items == 3
    assert ds.item_titles()[ds.items.index("1193")].startswith("One Flew")


def test_demo_folder_joins_movie_titles() -> None:
    ds = load_dataset("demo")
    assert (ds.n_users, ds.n_items, len(ds)) == (610, 9724, 100836)
    toy = ds.items.index("1")
    assert ds.item_titles()[toy] == "Toy Story (1995)"
    assert "Animation" in ds.item_texts()[toy]


def test_date_strings_and_millisecond_timestamps(tmp_path: Path) -> None:
    p = tmp_path / "dates.csv"
    p.write_text("customer,product,date\na,x,2021-01-02 10:00:00\na,y,2021-01-03\nb,x,2020-12-31T08:00:00\nb,y,2021-02-01\n")
    ds = load_dataset(p)
    assert ds.has_timestamp and not ds.has_rating
    first = ds.interactions.loc[ds.interactions["user"] == "a", "timestamp"].iloc[0]
    assert first == pd.Timestamp("2021-01-02 10:00:00").timestamp()
    q = tmp_path / "ms.csv"
    q.write_text("user,item,ts\na,x,1600000000000\na,y,1600000001000\nb,x,1600000002000\nb,y,1600000003000\n")
    assert load_dataset(q).interactions["timestamp"].iloc[0] == 1_600_000_000


def test_latin1_file_is_read(tmp_path: Path) -> None:
    p = tmp_path / "latin.csv"
    p.write_bytes("user,item\nJosé,café\nJosé,thé\nAnaïs,café\nAnaïs,crème\n".encode("latin-1"))
    ds = load_dataset(p)
    assert "José" in ds.users and "crème" in ds.items


def test_float_written_ids_match_integer_ids(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_text("user,item\n1.0,5\n1,6\n2,5.0\n2,6\n")
    ds = load_dataset(p)
    assert ds.n_users == 2 and ds.n_items == 2 and "5" in ds.items


def test_duplicates_are_reported_and_deduplicated_by_default(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("user,item,rating,timestamp\na,x,1,1\na,x,5,2\na,y,3,3\nb,x,2,4\nb,y,2,5\n")
    ds = load_dataset(p)
    assert len(ds) == 4
    step = next(s for s in ds.report.cleaning if s.step == "dedupe")
    assert step.removed == 1
    kept = ds.interactions[(ds.interactions["user"] == "a") & (ds.interactions["item"] == "x")]
    assert kept["rating"].tolist() == [5.0]  # the latest one
    assert any(w.code == "duplicate_pairs" for w in ds.report.warnings)
    assert len(load_dataset(p, cleaning=CleaningOptions(dedupe="none"))) == 5


def test_cleaning_steps_are_reported_with_counts(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("user,item,rating\na,x,5\na,y,1\nb,x,4\nb,z,\nc,x,5\nc,y,5\nc,z,5\nd,x,4\nd,y,4\n")
    ds = load_dataset(p, cleaning=CleaningOptions(drop_invalid=True, min_rating=3, min_user_interactions=2))
    steps = {s.step: (s.rows_before, s.rows_after) for s in ds.report.cleaning}
    assert steps["drop_invalid"] == (9, 8)
    assert steps["min_rating"] == (8, 7)
    assert steps["min_user_interactions"] == (7, 5)  # a and b are left with one interaction each
    assert sorted(ds.users.ids) == ["c", "d"]


def test_warnings_for_single_interaction_users_and_outliers(tmp_path: Path) -> None:
    p = tmp_path / "w.csv"
    rows = ["user,item,rating"] + [f"u{j},i{j % 7},{1 + j % 5}" for j in range(400)] + ["lonely,i1,4", "u1,i9,9999"]
    p.write_text("\n".join(rows) + "\n")
    codes = {w.code for w in load_dataset(p).report.warnings}
    assert {"single_interaction_users", "rating_outliers"} <= codes


def test_item_file_with_its_own_id_column(tmp_path: Path) -> None:
    inter = tmp_path / "r.csv"
    inter.write_text("user,sku\na,s1\na,s2\nb,s1\nb,s3\n")
    items = tmp_path / "items.csv"
    items.write_text("sku,name,description,url\ns1,Red shoe,A shiny red shoe,https://x/1\ns2,Blue hat,Warm wool hat,https://x/2\n")
    ds = load_dataset(inter, items_path=items)
    texts = ds.item_texts()
    assert texts[ds.items.index("s1")].startswith("Red shoe")
    assert "shiny" in texts[ds.items.index("s1")] and "https" not in texts[ds.items.index("s1")]
    assert texts[ds.items.index("s3")] == "item s3"  # no text known: say so, do not invent
