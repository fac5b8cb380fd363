"""Every kind of bad input gets one clear line naming the problem, through the library and the CLI."""
from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_core.cli import main
from recsys_core.data import CleaningOptions, load_dataset
from recsys_core.errors import RecTuneError

GOOD = "user,item,rating,timestamp\na,x,5,1\na,y,3,2\nb,x,4,3\nb,z,2,4\n"


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ratings.csv", GOOD * 1000)
    return buf.getvalue()


# (case id, file name, content, load kwargs, expected words in the message)
CASES = [
    ("empty", "e.csv", b"", {}, "empty"),
    ("blank_lines", "b.csv", b"\n\n   \n", {}, "no data"),
    ("header_only", "h.csv", b"user,item,rating\n", {}, "no data rows"),
    ("nul_bytes", "n.csv", b"user,item\na,\x00x\nb,y\n", {}, "binary"),
    ("zip_as_csv", "z.csv", _zip_bytes(), {}, "zip archive"),
    ("gzip_as_csv", "g.csv", gzip.compress(GOOD.encode()), {}, "gzip archive"),
    ("png_as_csv", "p.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, {}, "PNG image"),
    ("pdf_as_csv", "d.csv", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", {}, "PDF"),
    ("parquet_as_csv", "q.csv", b"PAR1" + b"\x15\x04" * 40, {}, "Parquet"),
    ("control_bytes", "c.csv", bytes(range(1, 9)) * 200, {}, "binary"),
    ("bad_encoding", "enc.csv", b"user,item\n\x81\x8d\x8f,\x90\x9d\n" * 3, {}, "encoding"),
    ("ragged_extra", "r1.csv", b"user,item,rating\na,x,5\nb,y,4,extra\n", {}, "line 3 has 4 fields"),
    ("ragged_missing", "r2.csv", b"user,item,rating\na,x,5\nb,y\n", {}, "line 3 has 2 fields"),
    ("single_column", "s.csv", b"user\na\nb\nc\n", {}, "separator"),
    ("no_user_column", "nu.csv", b"foo,bar\n1,2\n3,4\n", {}, "no user column"),
    ("no_item_column", "ni.csv", b"user,foo\na,1\nb,2\n", {}, "no item column"),
    ("non_numeric_rating", "nr.csv", b"user,item,rating\na,x,5\nb,y,great\nc,z,4\n", {}, "not numeric"),
    ("infinite_rating", "ir.csv", b"user,item,rating\na,x,5\nb,y,inf\nc,z,-Infinity\n", {}, "infinite"),
    ("missing_rating", "mr.csv", b"user,item,rating\na,x,5\nb,y,\nc,z,4\n", {}, "missing (NaN) ratings"),
    ("missing_user", "mu.csv", b"user,item\na,x\n,y\nc,z\n", {}, "missing user"),
    ("nan_item", "mi.csv", b"user,item\na,x\nb,NaN\nc,z\n", {}, "missing item"),
    ("bad_timestamp", "bt.csv", b"user,item,timestamp\na,x,2021-01-01\nb,y,yesterday\nc,z,2021-01-03\n", {}, "not dates"),
    ("missing_timestamp", "mt.csv", b"user,item,timestamp\na,x,1\nb,y,\nc,z,3\n", {}, "missing timestamps"),
    ("single_user", "su.csv", b"user,item\na,x\na,y\na,z\n", {}, "single user"),
    ("single_item", "si.csv", b"user,item\na,x\nb,x\nc,x\n", {}, "single item"),
    ("control_chars_in_id", "cc.csv", "user,item\na\x07b,x\nc,y\nd,z\n".encode(), {}, "control characters"),
    ("huge_id", "hi.csv", ("user,item\n" + "u" * 600 + ",x\nb,y\nc,z\n").encode(), {}, "longer than"),
    ("duplicate_header", "dh.csv", b"user,item,item\na,x,y\nb,y,z\n", {}, "more than once"),
    ("empty_header_name", "eh.csv", b"user,,item\na,1,x\nb,2,y\n", {}, "empty column name"),
    ("bad_json_line", "j.jsonl", b'{"user": "a", "item": "x"}\n{"user": "b", item: y}\n', {}, "not valid JSON"),
    ("json_not_object", "jo.jsonl", b'{"user": "a", "item": "x"}\n[1, 2]\n', {}, "not a JSON object"),
    ("corrupt_parquet", "c.parquet", b"PAR1garbagegarbage", {}, "not a readable Parquet"),
    ("column_not_found", "cf.csv", GOOD.encode(), {"columns": "user=customer"}, "does not exist"),
    ("columns_syntax", "cs.csv", GOOD.encode(), {"columns": "user:customer"}, "expected ROLE=COLUMN"),
    ("columns_unknown_role", "cr.csv", GOOD.encode(), {"columns": "person=user"}, "unknown role"),
    ("nothing_left", "nl.csv", GOOD.encode(), {"cleaning": CleaningOptions(min_rating=10)}, "no interactions are left"),
    ("position_out_of_range", "po.tsv", b"a\tx\nb\ty\n", {"columns": "user=0,item=5", "header": False}, "does not exist"),
]


@pytest.mark.parametrize("case,name,content,kwargs,expected", CASES, ids=[c[0] for c in CASES])
def test_library_gives_a_clear_error(tmp_path: Path, case, name, content, kwargs, expected) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RecTuneError) as info:
        load_dataset(path, **kwargs)
    message = str(info.value)
    assert expected.lower() in message.lower(), message
    assert "\n" not in message
    if "columns" not in kwargs:
        assert name in message  # the file is named


def test_at_least_thirty_kinds() -> None:
    assert len({c[0] for c in CASES}) >= 30


@pytest.mark.parametrize("case,name,content,kwargs,expected",
                         [c for c in CASES if not c[3]], ids=[c[0] for c in CASES if not c[3]])
def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys, case, name, content, kwargs, expected) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code = main(["data", "report", str(path), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = [ln for ln in err.splitlines() if not ln.startswith("[")]  # progress lines start with [time]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


def test_missing_paths(tmp_path: Path, capsys) -> None:
    assert main(["data", "report", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty_dir").mkdir()
    assert main(["data", "report", str(tmp_path / "empty_dir")]) == 2
    assert "no ratings.csv" in capsys.readouterr().err


HOSTILE_CELLS = st.one_of(
    st.sampled_from(["", "NaN", "nan", "null", "inf", "-inf", "1e400", "-0", "0x1F", "1,5", '"', '""', "'", "\\",
                     "9" * 40, "１２", "😀", "\u202e", "\t", ";", "|", "::", " ", "a b", "2021-13-45", "None"]),
    st.text(min_size=0, max_size=12),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@st.composite
def hostile_files(draw) -> bytes:
    sep = draw(st.sampled_from([",", "\t", ";", "|", " ", "::", ",;"]))
    header = draw(st.sampled_from([None, ["user", "item", "rating", "timestamp"], ["user", "item"],
                                   ["user", "user", "item"], ["a", "b", "c"], ["userId", "movieId", "rating"],
                                   ["user", "item", "rating", "1000000000 rows follow"]]))
    n_rows = draw(st.integers(min_value=0, max_value=8))
    width = draw(st.integers(min_value=1, max_value=5))
    rows = []
    if header is not None:
        rows.append(sep.join(header))
    for _ in range(n_rows):
        w = width if draw(st.booleans()) else draw(st.integers(min_value=0, max_value=6))
        rows.append(sep.join(draw(HOSTILE_CELLS) for _ in range(w)))
    text = "\n".join(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=hostile_files(), suffix=st.sampled_from([".csv", ".tsv", ".txt", ".jsonl", ".inter"]))
def test_hostile_files_never_raise_anything_but_a_clear_error(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"hostile{suffix}"
    path.write_bytes(content)
    try:
        ds = load_dataset(path)
    except RecTuneError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message
    else:  # it loaded: then it must be a usable dataset
        assert ds.n_users >= 2 and ds.n_items >= 2 and len(ds) >= 2
