"""Hypothesis strategies for malformed and hostile interaction files (shared by the library and studio tests).

Each example is (file name, bytes, kind). Kinds: wrong types, NaN and infinite values, mixed separators,
huge ids, unicode and control characters in ids and titles, a billion-row claim in a header, empty
columns, duplicated headers, zip/gzip bombs disguised as CSV, deep JSON, one enormous line, random bytes,
truncated files, hostile file names.
"""
from __future__ import annotations

import gzip
import io
import json
import zipfile
from functools import lru_cache

from hypothesis import strategies as st

HEADER = ["user", "item", "rating", "timestamp"]
# six users with four interactions each: enough for a leave-last-out split, so a file that survives its
# damage really loads, and one that does not is refused by validation rather than by its size
GOOD = [(f"u{u}", f"i{(u + k) % 7}", str(1 + (u * k) % 5), str(1_600_000_000 + 100 * (4 * u + k)))
        for u in range(6) for k in range(4)]
NAMES = st.sampled_from(["data.csv", "ratings.tsv", "x.txt", "ml.dat", "d.inter", "d.jsonl", "d.json", "../../../etc/passwd.csv",
                         "..\\..\\windows\\evil.csv", "/abs/path.csv", "\u202etxt.exe.csv", "名前.csv", ".hidden.csv",
                         "a" * 300 + ".csv", "con.csv", "nul\x00byte.csv", "sp ace;$(rm -rf).csv"])
# characters that break naive parsers and terminals: controls, bidi overrides, BOMs, quotes, separators
NASTY = "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\u0085\u2028\u2029\u202e\u200b\ufeff\"',;\t|\r\n\\%{}[]<>&"
CELL_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(list(NASTY)), max_size=30)
BAD_NUMBERS = st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309", "", "NULL", "None", "abc",
                               "4,5", "5 stars", "True", "[1]", "0x1F", "1_000", "--3", "1e-400", "９"])
HUGE_IDS = st.one_of(st.integers(-(2 ** 200), 2 ** 200).map(str), st.sampled_from(["9" * 400, "1e400", "-0", "0" * 50]))
SEPARATORS = st.sampled_from([",", ";", "\t", "|", "::", " ", ", "])


def _csv(rows: list[list[str]], sep: str = ",", header: list[str] | None = HEADER) -> bytes:
    lines = ([sep.join(header)] if header else []) + [sep.join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def _good_rows() -> list[list[str]]:
    return [list(r) for r in GOOD]


@lru_cache(maxsize=None)
def _bombs() -> dict[str, bytes]:
    """Archives that expand to hundreds of MB (built once): gzip, zip, and a zip inside a zip."""
    zeros = b"0" * (256 * 1024 * 1024)
    gz = gzip.compress(zeros, compresslevel=9)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ratings.csv", zeros)
    inner = buf.getvalue()
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
        for k in range(4):
            z.writestr(f"part{k}.zip", inner)
    return {"gzip": gz, "zip": inner, "nested zip": outer.getvalue()}


@st.composite
def wrong_types(draw):
    rows = _good_rows()
    for r in draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=6)):
        rows[r][draw(st.sampled_from([2, 3]))] = draw(BAD_NUMBERS)
    return rows


@st.composite
def nan_inf(draw):
    rows = _good_rows()
    for r in draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=6)):
        rows[r][draw(st.sampled_from([0, 1, 2, 3]))] = draw(st.sampled_from(["nan", "inf", "-inf", "NaN", ""]))
    return rows


@st.composite
def hostile_file(draw) -> tuple[str, bytes, str]:
    kind = draw(st.sampled_from(KINDS))
    name = draw(NAMES)
    sep = draw(SEPARATORS)
    if kind == "wrong types":
        data = _csv(draw(wrong_types()), sep)
    elif kind == "NaN and infinite values":
        data = _csv(draw(nan_inf()), sep)
    elif kind == "mixed separators":
        rows = _good_rows()
        data = ("\n".join([",".join(HEADER)] + [draw(SEPARATORS).join(r) for r in rows]) + "\n").encode()
    elif kind == "huge ids":
        # the same six users and seven items, renamed to huge ids (so a file can still load); sometimes a huge timestamp
        users = {f"u{k}": draw(HUGE_IDS) for k in range(6)}
        items = {f"i{k}": draw(HUGE_IDS) for k in range(7)}
        huge_time = draw(st.booleans())
        rows = [[users[r[0]], items[r[1]], r[2], draw(HUGE_IDS) if huge_time and r[0] == "u3" else r[3]] for r in _good_rows()]
        data = _csv(rows, sep)
    elif kind == "unicode and control characters":
        users = {f"u{k}": draw(CELL_TEXT) for k in range(6)}  # consistent renaming, so some files can load
        items = {f"i{k}": draw(CELL_TEXT) for k in range(7)}
        rows = [[users[r[0]], items[r[1]], r[2], r[3]] for r in _good_rows()]
        encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-8-sig"]))
        text = "\n".join([sep.join(HEADER)] + [sep.join(r) for r in rows]) + "\n"
        data = text.encode(encoding, errors="replace")
    elif kind == "billion-row claim":
        claim = draw(st.sampled_from([
            "# rows: 1000000000\n", "# n_interactions=1000000000 n_users=1000000000\n",
            "1000000000 1000000000 1000000000\n", ",".join(f"c{k}" for k in range(20000)) + "\n"]))
        data = claim.encode() + _csv(_good_rows(), sep, header=draw(st.sampled_from([HEADER, None])))
    elif kind == "empty columns":
        header = draw(st.sampled_from([["", "", "", ""], ["user", "", "item", ""], ["user", "item", "", ""], HEADER]))
        rows = [[r[0], "", r[1], ""] if header[1] == "" else [r[0], r[1], "", ""] for r in _good_rows()]
        if draw(st.booleans()):
            rows = [["", "", "", ""] for _ in rows]
        data = _csv(rows, sep, header)
    elif kind == "duplicated headers":
        header = draw(st.sampled_from([["user", "user", "item", "item"], ["user", "item", "item", "rating"],
                                       ["userId", "user_id", "movieId", "item"], ["a", "a", "a", "a"]]))
        data = _csv(_good_rows(), sep, header)
    elif kind == "zip bomb disguised as CSV":
        data = _bombs()[draw(st.sampled_from(["gzip", "zip", "nested zip"]))]
        name = draw(st.sampled_from(["data.csv", "ratings.tsv", "d.jsonl", "ratings.csv.gz", "ratings.zip", "d.inter"]))
    elif kind == "deep JSON":
        depth = draw(st.sampled_from([100, 10_000, 200_000]))
        data = ("[" * depth + "]" * depth).encode() if draw(st.booleans()) else \
            (json.dumps({"user": "u1", "item": "i1"}) + "\n" + '{"user": ' + "[" * depth + "]" * depth + "}\n").encode()
        name = draw(st.sampled_from(["d.json", "d.jsonl", "data.csv"]))
    elif kind == "one enormous line":
        cell = draw(st.sampled_from(["x", "1,", "\"", "a\tb"]))
        data = b"user,item\n" + (cell * draw(st.sampled_from([10_000, 2_000_000]))).encode() + b"\n"
    elif kind == "truncated file":
        full = _csv(_good_rows() + [['"u4', 'i"1', "3", "1600000600"]], sep)
        data = full[: draw(st.integers(1, len(full)))]
    else:  # random bytes
        data = draw(st.binary(min_size=0, max_size=2048))
    return name, data, kind


KINDS = ["wrong types", "NaN and infinite values", "mixed separators", "huge ids", "unicode and control characters",
         "billion-row claim", "empty columns", "duplicated headers", "zip bomb disguised as CSV", "deep JSON",
         "one enormous line", "truncated file", "random bytes"]
