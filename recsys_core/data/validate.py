"""Turn a raw text table into typed interactions, stopping at the first real problem with a precise message.

Errors name the file, the column and example lines. Usable-but-suspicious data becomes warnings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys_core.data.clean import repeated_pairs
from recsys_core.data.io import RawTable
from recsys_core.data.schema import ColumnMapping
from recsys_core.errors import DataError

MAX_EXAMPLES = 3
MAX_ID_LENGTH = 512


@dataclass
class Issue:
    """One finding of validation: level 'error' or 'warning', with a code for tests and tooling."""

    level: str
    code: str
    message: str
    column: str | None = None
    examples: list[str] = field(default_factory=list)
    count: int = 0

    def as_dict(self) -> dict:
        return {"level": self.level, "code": self.code, "message": self.message, "column": self.column,
                "count": self.count, "examples": self.examples}


def _examples(raw: RawTable, rows: np.ndarray, column: str) -> list[str]:
    frame = raw.frame
    out = []
    for r in rows[:MAX_EXAMPLES]:
        out.append(f"{raw.line_of(int(r))}: {_short(frame[column].iloc[int(r)])}")
    return out


def _short(value, limit: int = 60) -> str:
    """repr() of a cell, cut to `limit` characters: a 10 kB id must not become a 10 kB message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(str(value)):,} characters)"


def _fail(raw: RawTable, code: str, column: str, rows: np.ndarray, what: str, hint: str = "") -> None:
    ex = _examples(raw, rows, column)
    msg = f"{raw.path.name}: column {_short(column, 80)} {what} in {len(rows)} row(s), e.g. {'; '.join(ex)}"
    if hint:
        msg += f" — {hint}"
    err = DataError(msg)
    err.issue = Issue("error", code, msg, column, ex, int(len(rows)))  # type: ignore[attr-defined]
    raise err


NULL_WORDS = ["nan", "none", "null", "na", "n/a"]


def _parse_numbers(values: pd.Series) -> np.ndarray:
    """Parse text to float; unparseable -> NaN (callers tell NaN from missing).

    Arrow's cast parses millions of clean numbers in a fraction of a second; only when it meets a
    value it cannot parse does the slower pandas parse run, to find which ones.
    """
    try:
        return pc.cast(pa.array(values, type=pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _distinct(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Codes per row (-1 where missing) and the distinct values as text: checks run once per value, not per row."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, pd.Series(np.asarray(uniques, dtype=object), dtype="str")


def _per_row(codes: np.ndarray, per_value: np.ndarray, fill: bool = False) -> np.ndarray:
    """A per-distinct-value flag spread over the rows (missing rows get `fill`)."""
    if len(per_value) == 0:
        return np.full(len(codes), fill)
    return np.where(codes >= 0, per_value[np.maximum(codes, 0)], fill)


def parse_ids(raw: RawTable, column: str, role: str, drop_invalid: bool) -> tuple[pd.Series, np.ndarray]:
    """The id column as a categorical of clean ids, and a mask of rows whose id is missing (only if drop_invalid)."""
    codes, text = _distinct(raw.frame[column])
    null_word = text.str.lower().isin(NULL_WORDS).to_numpy()
    missing = (codes < 0) | _per_row(codes, null_word)
    if missing.any() and not drop_invalid:
        _fail(raw, f"missing_{role}", column, np.flatnonzero(missing), f"has a missing {role} id",
              "drop those rows with --drop-invalid or fix the file")
    control = _per_row(codes, text.str.contains(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", regex=True).to_numpy() & ~null_word)
    if control.any():
        _fail(raw, f"bad_{role}", column, np.flatnonzero(control), f"has {role} ids with control characters")
    too_long = _per_row(codes, (text.str.len() > MAX_ID_LENGTH).to_numpy() & ~null_word)
    if too_long.any():
        _fail(raw, f"bad_{role}", column, np.flatnonzero(too_long), f"has {role} ids longer than {MAX_ID_LENGTH} characters")
    # Ids that are integers written as floats ('1.0') are the same id as '1'; rewritten as text, so ids
    # beyond float precision (or with leading zeros) keep every digit.
    text = text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    # distinct spellings may now be the same id: code rows by the clean id
    clean_codes, ids = pd.factorize(text)
    row_codes = np.where(missing, -1, clean_codes[np.maximum(codes, 0)] if len(clean_codes) else -1)
    return pd.Series(pd.Categorical.from_codes(row_codes, categories=pd.Index(ids, dtype="str"))), missing


def parse_ratings(raw: RawTable, column: str, drop_invalid: bool) -> tuple[np.ndarray, np.ndarray]:
    codes, text = _distinct(raw.frame[column])
    absent = codes < 0
    value_nums = _parse_numbers(text)
    nums = np.where(absent, np.nan, value_nums[np.maximum(codes, 0)] if len(text) else np.nan)
    nan_written = _per_row(codes, text.str.strip().str.lower().isin(NULL_WORDS).to_numpy())
    non_numeric = np.isnan(nums) & ~absent & ~nan_written
    if non_numeric.any():
        _fail(raw, "non_numeric_rating", column, np.flatnonzero(non_numeric), "is not numeric",
              "ratings must be numbers; map another column with --columns rating=COLUMN or drop it")
    infinite = np.isinf(nums)
    if infinite.any():
        _fail(raw, "infinite_rating", column, np.flatnonzero(infinite), "has infinite values")
    missing = absent | nan_written
    if missing.any() and not drop_invalid:
        _fail(raw, "missing_rating", column, np.flatnonzero(missing), "has missing (NaN) ratings",
              "drop those rows with --drop-invalid")
    return nums, missing


MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31 23:59:59 UTC


def parse_timestamps(raw: RawTable, column: str, drop_invalid: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Unix seconds (milliseconds are detected) or date strings -> float seconds since the epoch."""
    values = raw.frame[column]
    absent = values.isna().to_numpy().copy()
    nums = _parse_numbers(values)
    numeric_share = np.isfinite(nums[~absent]).mean() if (~absent).any() else 0.0
    kind = "unix seconds"
    if numeric_share > 0.5:  # mostly numbers: the others are the culprits (dates mixed in are not supported)
        finite = np.isfinite(nums)
        bad = ~finite & ~absent
        if bad.any():
            _fail(raw, "bad_timestamp", column, np.flatnonzero(bad), "has values that are not timestamps",
                  "give unix seconds (or milliseconds) in every row, or ISO dates in every row")
        med = np.nanmedian(np.abs(nums)) if finite.any() else 0
        if 3000 > med > 1000 and np.nanmax(nums) < 3000:
            kind = "year"
            years = pd.to_datetime(pd.Series(nums).fillna(1970).astype("int64").astype(str), format="%Y")
            nums = np.where(finite, years.to_numpy().astype("datetime64[ns]").astype("int64") / 1e9, np.nan)
        elif med > 1e14:
            kind = "unix microseconds"
            nums = nums / 1e6
        elif med > 1e11:
            kind = "unix milliseconds"
            nums = nums / 1e3
        seconds = nums
        # beyond year 9999 (or before year 1) no calendar can show it: a corrupt value, not a time
        out_of_range = np.isfinite(seconds) & (np.abs(seconds) > MAX_TIMESTAMP_SECONDS)
        if out_of_range.any():
            _fail(raw, "bad_timestamp", column, np.flatnonzero(out_of_range), "has timestamps out of range (beyond year 9999)")
    else:
        text = values.where(~absent, None)
        parsed = _parse_dates(text)
        bad = parsed.isna().to_numpy() & ~absent
        if bad.any():
            _fail(raw, "bad_timestamp", column, np.flatnonzero(bad), "has values that are not dates or times",
                  "use ISO dates (2021-03-04 12:00:00) or unix seconds")
        seconds = np.full(len(values), np.nan)
        ok = ~absent
        # pandas may pick second or microsecond resolution; normalise through datetime64[ns]
        seconds[ok] = parsed[ok].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype("int64") / 1e9
        kind = "dates"
    if absent.any() and not drop_invalid:
        _fail(raw, "missing_timestamp", column, np.flatnonzero(absent), "has missing timestamps",
              "drop those rows with --drop-invalid")
    return seconds, absent, kind


def _parse_dates(text: pd.Series) -> pd.Series:
    """ISO dates parse in one vectorised pass; anything else (mixed formats) falls back to per-value parsing."""
    try:
        return pd.to_datetime(text, errors="raise", utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return pd.to_datetime(text, errors="coerce", utc=True, format="mixed")


def typed_interactions(raw: RawTable, mapping: ColumnMapping, drop_invalid: bool = False) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Build the typed frame (user, item, rating, timestamp, row) and the per-row 'invalid' mask."""
    notes: list[str] = []
    users, bad_u = parse_ids(raw, mapping.user, "user", drop_invalid)
    items, bad_i = parse_ids(raw, mapping.item, "item", drop_invalid)
    n = len(raw.frame)
    invalid = bad_u | bad_i
    if mapping.rating is not None:
        ratings, bad_r = parse_ratings(raw, mapping.rating, drop_invalid)
        invalid |= bad_r
    else:
        ratings = np.ones(n)
    if mapping.timestamp is not None:
        times, bad_t, kind = parse_timestamps(raw, mapping.timestamp, drop_invalid)
        invalid |= bad_t
        notes.append(f"timestamps read as {kind}")
    else:
        times = np.full(n, np.nan)
    frame = pd.DataFrame({"user": users, "item": items, "rating": ratings,
                          "timestamp": times, "row": np.arange(n, dtype=np.int64)})
    return frame, invalid, notes


def check_usable(frame: pd.DataFrame, source: str) -> None:
    """Errors that only the cleaned whole can show: nothing left, one user, one item."""
    if frame.empty:
        raise DataError(f"{source}: no interactions are left after cleaning")
    n_users, n_items = frame["user"].nunique(), frame["item"].nunique()
    if n_users < 2:
        raise DataError(f"{source}: all {len(frame)} interactions belong to a single user "
                        f"({frame['user'].iloc[0]!r}); a recommender needs at least 2 users")
    if n_items < 2:
        raise DataError(f"{source}: all {len(frame)} interactions are on a single item "
                        f"({frame['item'].iloc[0]!r}); a recommender needs at least 2 items")


def warnings_for(frame: pd.DataFrame, has_rating: bool, source: str) -> list[Issue]:
    """Suspicious but usable data."""
    out: list[Issue] = []
    repeated = repeated_pairs(frame)
    dup = np.zeros(len(frame), dtype=bool)
    if repeated.any():  # only rows of repeated pairs can be duplicates: check those alone
        dup[np.flatnonzero(repeated)] = frame[repeated].duplicated(["user", "item"], keep="first").to_numpy()
    if dup.any():
        ex = frame.loc[dup, ["user", "item"]].head(MAX_EXAMPLES).astype(str).agg(" / ".join, axis=1).tolist()
        out.append(Issue("warning", "duplicate_pairs",
                         f"{int(dup.sum())} repeated (user, item) pairs; by default the last one is kept", "item", ex,
                         int(dup.sum())))
    exact = frame[repeated].duplicated(["user", "item", "rating", "timestamp"], keep="first")
    if exact.any():
        out.append(Issue("warning", "duplicate_rows", f"{int(exact.sum())} rows are exact duplicates", None, [],
                         int(exact.sum())))
    if has_rating:
        r = frame["rating"].to_numpy()
        r = r[np.isfinite(r)]
        if len(r):
            q_lo, q_hi = np.quantile(r, [0.001, 0.999])
            span = max(q_hi - q_lo, 1e-9)
            outside = (frame["rating"] < q_lo - 0.5 * span) | (frame["rating"] > q_hi + 0.5 * span)
            if outside.any():
                ex = frame.loc[outside, "rating"].head(MAX_EXAMPLES).astype(str).tolist()
                out.append(Issue("warning", "rating_outliers",
                                 f"{int(outside.sum())} ratings lie far outside the usual scale "
                                 f"{q_lo:g}..{q_hi:g}", "rating", ex, int(outside.sum())))
            if (r < 0).any():
                out.append(Issue("warning", "negative_ratings", f"{int((r < 0).sum())} ratings are negative",
                                 "rating", [], int((r < 0).sum())))
    codes, users = pd.factorize(frame["user"])
    singles = np.flatnonzero(np.bincount(codes, minlength=len(users)) == 1)
    if len(singles):
        out.append(Issue("warning", "single_interaction_users",
                         f"{len(singles)} users have only one interaction; they can be trained on but not evaluated",
                         "user", [str(users[j]) for j in singles[:MAX_EXAMPLES]], int(len(singles))))
    return out
