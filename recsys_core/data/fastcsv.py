"""Columnar reading of delimited text and of Parquet with pyarrow: millions of rows in seconds, ids as text.

The row-wise reader in io.py gives precise messages (line numbers, encodings, ragged rows) but costs
about 14 s and 0.5 GB per million rows. This reader parses in C++ straight into Arrow string columns
(measured in docs/BENCHMARKS.md: a 5M-row CSV in about 1 s). It declines (raises Declined) whenever it
cannot be sure to read the file exactly as the row-wise reader would — another encoding, a ragged row,
a quoted value spanning lines, a ':' inside a '::' file, runs of spaces — and io.py then reads it row by row, so
bad files keep their precise messages.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

#: files bigger than this are never re-read row by row after the fast reader declines: the row-wise
#: reader needs about 30x the file's size in memory; instead the fast reader's own message is given
ROW_WISE_LIMIT_BYTES = 256 * 1024 * 1024
DOUBLE_COLON = "::"


class Declined(Exception):
    """The fast reader will not read this file; `reason` says why (for the message when no fallback is allowed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def can_read_fast(sep: str, sample_lines: list[str]) -> bool:
    """Single-character separators and '::' (read as ':' with empty fields between); with spaces, only files
    whose fields are split by exactly one."""
    if sep == DOUBLE_COLON:
        return True
    if len(sep) != 1:
        return False
    if sep == " ":
        return not any("  " in ln or ln != ln.strip() or "\t" in ln for ln in sample_lines)
    return True


def row_wise_limit() -> int:
    """The largest file the row-wise reader may take: it needs about 30x the file's size in memory."""
    return int(min(ROW_WISE_LIMIT_BYTES, psutil.virtual_memory().available / 30))


def read_delimited(path: Path, sep: str, names: list[str], skip_rows: int) -> pd.DataFrame:
    """All columns as trimmed text, empty cells missing; raises Declined on anything unusual."""
    if sep == DOUBLE_COLON:  # MovieLens .dat: 'a::b::c' is 'a', '', 'b', '', 'c' split on ':'
        return _read_double_colon(path, names, skip_rows)
    table, bad_rows = _read_text_columns(path, names, skip_rows, delimiter=sep,
                                         quote_char='"' if sep != " " else False)
    if bad_rows:
        raise Declined(f"{len(bad_rows):,} row(s) do not have {len(names)} fields, e.g. {bad_rows[0][:80]!r}")
    for name, column in zip(table.column_names, table.columns):
        if pc.any(pc.match_substring_regex(column, "[\r\n]")).as_py():  # a quoted field spans lines
            raise Declined(f"column {name!r} has a quoted value that spans lines")
    return text_frame(table)


def _read_double_colon(path: Path, names: list[str], skip_rows: int) -> pd.DataFrame:
    gaps = [f"_gap{j}" for j in range(len(names) - 1)]
    spread = [x for pair in zip(names, gaps + [None]) for x in pair if x is not None]
    table, bad_rows = _read_text_columns(path, spread, skip_rows, delimiter=":", quote_char=False)
    if bad_rows or any(pc.any(pc.not_equal(table[g], "")).as_py() for g in gaps):
        raise Declined("a field contains ':' (a single colon inside a '::'-separated file)")
    return text_frame(table.select(names))


def _read_text_columns(path: Path, names: list[str], skip_rows: int, delimiter: str,
                       quote_char: str | bool) -> tuple[pa.Table, list[str]]:
    """Every column as Arrow text; rows with the wrong number of fields are set aside, not guessed at."""
    bad_rows: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(row.text or "")
        return "skip"

    read = pacsv.ReadOptions(column_names=names, skip_rows=skip_rows, block_size=16 << 20)
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=quote_char, double_quote=True,
                               newlines_in_values=False, ignore_empty_lines=True, invalid_row_handler=on_invalid)
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                                   quoted_strings_can_be_null=False, null_values=[])
    try:
        table = pacsv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise Declined(str(exc).splitlines()[0][:200]) from None
    return table, bad_rows


def text_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow columns -> pandas text columns: trimmed, '' as missing; integral floats written without '.0'."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        text = pc.utf8_trim_whitespace(_as_text(column))
        columns[str(name)] = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    frame = pa.table(columns).to_pandas()  # Arrow-backed 'str' columns: compact, vectorised string ops
    frame.columns = list(columns)
    return frame


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Typed Arrow columns (Parquet) to text the way the row-wise reader spells them: ids stay '42'."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_large_string(kind):
        return column.cast(pa.string())
    if pa.types.is_floating(kind):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, kind), column)  # NaN is a missing cell
        finite = pc.is_finite(column)
        values = pc.filter(column, finite)
        if len(values) and pc.all(pc.equal(values, pc.round(values))).as_py() \
                and pc.max(pc.abs(values)).as_py() < 2 ** 53:
            as_int = pc.if_else(finite, column, pa.scalar(0.0, kind)).cast(pa.int64())
            return pc.if_else(finite, as_int.cast(pa.string()), column.cast(pa.string()))
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return column.cast(pa.string())
    return column.cast(pa.string())
