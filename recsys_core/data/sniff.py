"""Sniffing a delimited file from its first lines: the separator, whether a header row is there, its names."""
from __future__ import annotations

import csv

from recsys_core.data.schema import looks_like_role_name
from recsys_core.errors import DataError

CANDIDATE_SEPARATORS = ["\t", ",", ";", "|", "::", " "]


def sniff_separator(lines: list[str]) -> str:
    """Pick the separator that splits the first lines into the same number (>1) of fields."""
    best, best_score = None, -1.0
    for sep in CANDIDATE_SEPARATORS:
        counts = [len(split_fields(line, sep)) for line in lines]
        if not counts or min(counts) < 2:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        score = consistent * 10 + min(counts[0], 10) / 10 - (0.5 if sep == " " else 0)
        if score > best_score:
            best, best_score = sep, score
    if best is None:
        raise DataError("could not find a column separator (tried tab, comma, semicolon, pipe, '::' and space); "
                        "the file seems to have a single column — give --sep if it has more")
    return best


def split_fields(line: str, sep: str) -> list[str]:
    if sep == " ":
        return line.split()
    if sep == ",":
        return next(csv.reader([line]), [])
    return line.split(sep)


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _detect_header(rows: list[list[str]]) -> bool:
    """A first row is a header if a column is numeric below it but not in it, or it names known roles."""
    first, rest = rows[0], rows[1:6]
    if any(looks_like_role_name(cell) for cell in first):
        return True
    if not rest:
        return not any(_looks_numeric(c) for c in first)
    for j, cell in enumerate(first):
        below = [r[j] for r in rest if j < len(r)]
        if below and not _looks_numeric(cell) and all(_looks_numeric(b) for b in below):
            return True
    return False


def sniff(name: str, text: str, sep: str | None, header: bool | None, is_inter: bool) -> tuple:
    """Separator, header and the first rows split, from the first lines of the file."""
    lines = [ln for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[:200] if ln.strip()]
    if not lines:
        raise DataError(f"{name}: the file has no data (only blank lines)")
    notes = []
    if is_inter and sep is None:
        sep = "\t"
    if sep is None:
        try:
            sep = sniff_separator(lines[:50])
        except DataError as exc:
            raise DataError(f"{name}: {exc}") from None
        notes.append(f"separator detected: {sep_name(sep)}")
    sample_rows = [split_fields(ln, sep) for ln in lines[:50]]
    if header is None:
        header = True if is_inter else _detect_header(sample_rows)
        notes.append("header row detected" if header else "no header row detected; columns named by position")
    return sep, bool(header), sample_rows, lines, notes


def header_names(name: str, first_row: list[str], header: bool, is_inter: bool) -> list[str]:
    if not header:
        return [str(j) for j in range(len(first_row))]
    # pandas renames repeated names ('item.1'), so check the header line as written
    cols = [c.strip() for c in first_row]
    if is_inter:  # RecBole atomic files name columns like 'user_id:token'
        cols = [c.split(":", 1)[0] for c in cols]
    if "" in cols:
        raise DataError(f"{name}: the header has an empty column name (column {cols.index('') + 1}); "
                        "name every column, or remove the header row and map columns by position")
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        raise DataError(f"{name}: the header names column {dupes[0][:80]!r} more than once")
    return cols


def first_nonblank(lines: list[str]) -> int:
    for i, line in enumerate(lines, start=1):
        if line.strip():
            return i
    return 1


def sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", " ": "space"}.get(sep, repr(sep))
