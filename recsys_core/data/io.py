"""Read a tabular file as it comes: CSV/TSV with any separator, Parquet, JSON lines, RecBole .inter.

Everything is read as text so that ids keep their exact spelling; typing happens in validation.
Every failure is a DataError naming the file and, where there is one, the line.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_core.data import fastcsv
from recsys_core.data.sniff import first_nonblank, header_names, sep_name, sniff, split_fields
from recsys_core.errors import DataError

SEPARATOR_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
PARQUET_SUFFIXES = {".parquet", ".pq"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
SNIFF_BYTES = 64 * 1024
# Magic numbers of formats that are certainly not text tables (zip, gzip, bzip2, xz, 7z, PDF, PNG, ELF).
BINARY_MAGIC = {
    b"PK\x03\x04": "a zip archive",
    b"\x1f\x8b": "a gzip archive",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ": "an xz archive",
    b"7z\xbc\xaf": "a 7z archive",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\x7fELF": "a program (ELF binary)",
}


@dataclass
class RawTable:
    """A table read from a file: all cells are strings (or None when absent)."""

    frame: pd.DataFrame
    path: Path
    fmt: str
    header: bool
    sep: str | None = None
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)
    first_data_line: int = 2  # file line number of the first data row (for error messages)

    def line_of(self, row: int) -> str:
        """Human-readable location of a 0-based data row."""
        if self.fmt in ("csv", "inter"):
            return f"line {row + self.first_data_line}"
        return f"row {row + 1}"


def is_parquet_folder(path: Path) -> bool:
    """A folder holding Parquet files (at any depth, as hive partitions lay them out) and no ratings file."""
    return path.is_dir() and next(path.rglob("*.parquet"), None) is not None


def parse_separator(sep: str | None) -> str | None:
    if sep is None:
        return None
    return SEPARATOR_NAMES.get(sep.lower(), sep)


def read_table(path: str | Path, sep: str | None = None, header: bool | None = None,
               max_bytes: int | None = None, columns: list[str] | None = None) -> RawTable:
    """Read `path` into a RawTable. `header=None` detects a header row; `sep=None` sniffs it.

    `columns` limits a Parquet read to those columns (a wide table's other columns are never read).
    """
    path = Path(path)
    name = path.name
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if is_parquet_folder(path):
            return _read_parquet(path, columns)
        raise DataError(f"{path}: is a folder; give a file, a folder of Parquet files, "
                        "or a MovieLens-style folder with ratings.csv")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{name}: the file is empty (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise DataError(f"{name}: the file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return _read_parquet(path, columns)
        head = _read_head(path)
        if suffix in JSONL_SUFFIXES or (head.lstrip()[:1] == b"{" and suffix not in (".csv", ".tsv", ".inter")):
            return _read_jsonl(path, head)
        return _read_delimited(path, head, parse_separator(sep), header, is_inter=suffix == ".inter")
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{name}: the file is too large to load into memory") from None
    except RecursionError:
        raise DataError(f"{name}: the data is nested too deeply to be a table of interactions") from None
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise DataError(f"{name}: one field is longer than {csv.field_size_limit():,} characters; "
                            "check the separator and the quotes (an unclosed quote swallows the rest of the file)") from None
        raise DataError(f"{name}: could not read the file as a table ({_first_line(exc)})") from None
    except Exception as exc:  # a reader failed in a way we did not foresee: still one clear line
        raise DataError(f"{name}: could not read the file ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(SNIFF_BYTES)


def _check_binary(name: str, head: bytes) -> None:
    for magic, what in BINARY_MAGIC.items():
        if head.startswith(magic):
            raise DataError(f"{name}: this is {what}, not a text table; extract it and give the CSV/TSV inside")
    if head.startswith(b"PAR1"):
        raise DataError(f"{name}: this is a Parquet file; give it a .parquet extension")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 with a BOM contains NUL bytes legitimately
    if b"\x00" in head:
        raise DataError(f"{name}: the file is binary (it contains NUL bytes), not a text table")
    sample = head[:4096]
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 13))
    if sample and control / len(sample) > 0.05:
        raise DataError(f"{name}: the file looks binary ({control} control bytes in the first {len(sample)}), not a text table")


def _decode(name: str, raw: bytes) -> tuple[str, str]:
    """Decode bytes: UTF-8 (with or without BOM), UTF-16 with a BOM; otherwise a clear error."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start: exc.start + 4]
        # Latin-1 text is common from spreadsheets; accept it only if it is mostly printable.
        text = raw.decode("latin-1")
        printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text[:SNIFF_BYTES])
        if printable / max(1, min(len(text), SNIFF_BYTES)) > 0.99:
            return text, "latin-1"
        raise DataError(f"{name}: unreadable text encoding at line {line} (bytes {bad!r} are not UTF-8); "
                        "save the file as UTF-8") from None


def parquet_columns(path: Path) -> list[str] | None:
    """The column names of a Parquet file or folder, from its metadata alone (None if it is not Parquet)."""
    if not (path.suffix.lower() in PARQUET_SUFFIXES or is_parquet_folder(path)):
        return None
    try:
        return list(_parquet_dataset(path).schema.names)
    except Exception:  # an unreadable file: read_table gives the message
        return None


def _parquet_dataset(path: Path):
    import pyarrow.dataset as pads  # the dataset module is a further import; only Parquet sources need it

    return pads.dataset(path, format="parquet", partitioning="hive" if path.is_dir() else None)


def _read_parquet(path: Path, columns: list[str] | None = None) -> RawTable:
    """One Parquet file, or a folder of them (hive partitions become columns), read fragment by fragment."""
    try:
        dataset = _parquet_dataset(path)
        known = set(dataset.schema.names)
        table = dataset.to_table(columns=[c for c in columns if c in known] if columns else None)
    except Exception as exc:
        raise DataError(f"{path.name}: not a readable Parquet file ({_first_line(exc)})") from None
    if table.num_rows == 0:
        raise DataError(f"{path.name}: the Parquet data has no rows")
    return RawTable(fastcsv.text_frame(table), path, "parquet", header=True)


def _read_jsonl(path: Path, head: bytes) -> RawTable:
    _check_binary(path.name, head)
    text, enc = _decode(path.name, path.read_bytes())
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of records is accepted too
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataError(f"{path.name}: a JSON file must be a list of objects or one object per line")
    else:
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path.name}: line {lineno} is not valid JSON ({exc.msg}): {line[:80]!r}") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path.name}: line {lineno} is not a JSON object: {line[:80]!r}")
            records.append(obj)
    if not records:
        raise DataError(f"{path.name}: the file has no records")
    frame = pd.DataFrame.from_records(records)
    return RawTable(_as_text(frame).astype("str"), path, "jsonl", header=True, encoding=enc)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert typed columns to strings, writing integral floats without '.0' (ids stay '42')."""
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_float_dtype(s):
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            finite = np.isfinite(vals)
            if finite.any() and np.all(vals[finite] == np.round(vals[finite])) and np.abs(vals[finite]).max() < 2**53:
                text = pd.Series([repr(int(v)) if f else (None if np.isnan(v) else repr(float(v)))
                                  for v, f in zip(vals, finite)], index=s.index, dtype=object)
            else:
                text = pd.Series([None if np.isnan(v) else repr(float(v)) for v in vals], index=s.index, dtype=object)
        elif pd.api.types.is_datetime64_any_dtype(s):
            text = s.astype(str).where(s.notna(), None)
        else:
            text = s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        out[str(col)] = text.astype(object)
    return pd.DataFrame(out)


def _head_text(name: str, head: bytes, complete: bool) -> str | None:
    """The sniffed head as UTF-8 text (a cut multi-byte character at the end is dropped); None if not UTF-8."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None
    if not complete:
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _read_delimited(path: Path, head: bytes, sep: str | None, header: bool | None, is_inter: bool) -> RawTable:
    name = path.name
    _check_binary(name, head)
    size = path.stat().st_size
    text = _head_text(name, head, complete=size <= len(head))
    if text is not None and text.strip():
        sep, header, sample_rows, lines, notes = sniff(name, text, sep, header, is_inter)
        starts_at_top = bool(text.lstrip("\ufeff")[:1].strip())  # no blank lines before the first row
        if starts_at_top and fastcsv.can_read_fast(sep, lines):
            names = header_names(name, sample_rows[0], header, is_inter)
            try:
                frame = fastcsv.read_delimited(path, sep, names, skip_rows=1 if header else 0)
            except fastcsv.Declined as why:
                if size > fastcsv.row_wise_limit():
                    raise DataError(f"{name}: could not read the file as a table ({why.reason})") from None
            else:
                if frame.empty:
                    raise DataError(f"{name}: the file has a header but no data rows")
                return RawTable(frame, path, "inter" if is_inter else "csv", header=header, sep=sep,
                                notes=notes, first_data_line=2 if header else 1)
    if size > fastcsv.row_wise_limit():
        raise DataError(f"{name}: {size / 1e6:,.0f} MB is too large to read row by row; save it as UTF-8 with "
                        "a one-character separator (or as Parquet) so the fast reader can take it")
    return _read_row_wise(path, sep, header, is_inter)


def _read_row_wise(path: Path, sep: str | None, header: bool | None, is_inter: bool) -> RawTable:
    """The exact reader: every line checked, precise line numbers, any encoding we accept."""
    name = path.name
    text, enc = _decode(name, path.read_bytes())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    sep, header, sample_rows, _, notes = sniff(name, text[:SNIFF_BYTES * 4], sep, header, is_inter)
    n_fields = len(sample_rows[0])
    # Ragged rows: check every line so the error names the first bad one.
    all_lines = text.split("\n")
    for lineno, line in enumerate(all_lines, start=1):
        if not line.strip():
            continue
        count = len(split_fields(line, sep))
        if count != n_fields:
            raise DataError(f"{name}: line {lineno} has {count} fields but line {first_nonblank(all_lines)} has "
                            f"{n_fields} (separator {sep_name(sep)}): {line[:80]!r}")
    if sep == " ":
        frame = pd.read_csv(io.StringIO(text), sep=r"\s+", header=0 if header else None, dtype=str,
                            keep_default_na=False, na_values=[], skip_blank_lines=True, engine="python")
    else:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=0 if header else None, dtype=str,
                            keep_default_na=False, na_values=[], skip_blank_lines=True,
                            engine="python" if len(sep) > 1 else "c", quotechar='"')
    frame.columns = header_names(name, sample_rows[0], header, is_inter)
    if frame.empty:
        raise DataError(f"{name}: the file has a header but no data rows")
    frame = frame.map(lambda v: v.strip() if isinstance(v, str) else v)
    frame = frame.replace({"": None})
    first_data = first_nonblank(all_lines) + (1 if header else 0)
    return RawTable(frame.astype("str"), path, "inter" if is_inter else "csv", header=bool(header), sep=sep,
                    encoding=enc, notes=notes, first_data_line=first_data)


