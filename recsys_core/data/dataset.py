"""Dataset: validated interactions with growable id maps and an optional item text table."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from recsys_core.data.clean import CleaningOptions, CleaningStep, clean
from recsys_core.data.idmap import IdMap
from recsys_core.data.io import is_parquet_folder, parquet_columns, read_table
from recsys_core.data.schema import infer_mapping, parse_columns_option, role_of
from recsys_core.data.validate import Issue, check_usable, typed_interactions, warnings_for
from recsys_core.errors import DataError
from recsys_core.paths import project_root

DEMO_NAME = "demo"
ORDERS = ("time", "file")
INTERACTION_FILES = ["ratings.csv", "ratings.dat", "ratings.tsv", "interactions.csv", "interactions.tsv",
                     "ratings.parquet", "interactions.parquet", "ratings.jsonl", "interactions.jsonl"]
ITEM_FILES = ["movies.csv", "movies.dat", "items.csv", "items.tsv", "items.parquet", "items.jsonl"]


def demo_path() -> Path:
    """The embedded demo dataset (overridable with RECTUNE_DEMO_DIR)."""
    return Path(os.environ.get("RECTUNE_DEMO_DIR", project_root() / "data" / "ml-latest-small"))


@dataclass
class DataReport:
    """What loading found and did: inferred roles, warnings, cleaning steps."""

    source: str
    raw_rows: int
    mapping: dict
    notes: list[str] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    cleaning: list[CleaningStep] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"source": self.source, "raw_rows": self.raw_rows, "mapping": self.mapping, "notes": self.notes,
                "warnings": [w.as_dict() for w in self.warnings], "cleaning": [c.as_dict() for c in self.cleaning]}


@dataclass
class Dataset:
    """Interactions with dense indices `u`, `i` (from the id maps), in file order (`row`)."""

    name: str
    interactions: pd.DataFrame
    users: IdMap
    items: IdMap
    has_rating: bool
    has_timestamp: bool
    item_table: pd.DataFrame | None = None
    report: DataReport | None = None
    #: what orders a user's interactions in time: "time" (timestamps; a random order without them)
    #: or "file" (row order within each user is time order, for logs listed in time order without timestamps)
    order: str = "time"

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return len(self.interactions)

    def item_titles(self) -> dict[int, str]:
        """Dense item index -> display title (the raw id where no title is known)."""
        titles = {}
        table = self.item_table
        for idx, raw in enumerate(self.items.ids):
            if table is not None and raw in table.index:
                titles[idx] = str(table.at[raw, "title"])
            else:
                titles[idx] = raw
        return titles

    def item_texts(self) -> list[str]:
        """Text for every item in index order, for text encoders; the raw id where no text is known."""
        table = self.item_table
        if table is None:
            return [f"item {raw}" for raw in self.items.ids]
        return [str(table.at[raw, "text"]) if raw in table.index else f"item {raw}" for raw in self.items.ids]

    def item_images(self) -> list[str | None] | None:
        """Image file path of every item in index order (None where an item has none); None without an image column."""
        table = self.item_table
        if table is None or "image" not in table:
            return None
        return [(table.at[raw, "image"] or None) if raw in table.index else None for raw in self.items.ids]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, name: str = "data", has_rating: bool | None = None,
                   has_timestamp: bool | None = None, item_table: pd.DataFrame | None = None,
                   users: IdMap | None = None, items: IdMap | None = None, order: str = "time") -> "Dataset":
        """Build from a frame with columns user, item[, rating, timestamp]; id maps grow if given."""
        frame = frame.copy()
        if has_rating is None:
            has_rating = "rating" in frame
        if has_timestamp is None:
            has_timestamp = "timestamp" in frame and frame["timestamp"].notna().all()
        if "rating" not in frame:
            frame["rating"] = 1.0
        if "timestamp" not in frame:
            frame["timestamp"] = np.nan
        if "row" not in frame:
            frame["row"] = np.arange(len(frame), dtype=np.int64)
        users = users.copy() if users is not None else IdMap(kind="user")
        items = items.copy() if items is not None else IdMap(kind="item")
        frame["u"] = users.encode(frame["user"])
        frame["i"] = items.encode(frame["item"])
        # raw ids as categoricals coded by the dense index: strings for every reader, ints in memory
        frame["user"] = users.categorical(frame["u"].to_numpy())
        frame["item"] = items.categorical(frame["i"].to_numpy())
        frame = frame[["user", "item", "rating", "timestamp", "row", "u", "i"]].reset_index(drop=True)
        return cls(name, frame, users, items, bool(has_rating), bool(has_timestamp), item_table, order=order)


def _parquet_projection(path: Path, overrides: dict[str, str]) -> list[str] | None:
    """The columns of a Parquet source that roles map to: only those are read (None: read everything)."""
    names = parquet_columns(path)
    if names is None:
        return None
    try:
        mapping = infer_mapping(names, overrides, header=True, source=path.name)
    except DataError:
        return None  # reading everything gives the same error, with the data at hand
    return [c for c in (mapping.user, mapping.item, mapping.rating, mapping.timestamp) if c]


def _size_text(path: Path) -> str:
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    return f"{size / 1e6:,.1f} MB"


def resolve_data_path(data: str | Path) -> tuple[Path, Path | None]:
    """DATA (a file, a folder or 'demo') -> (interactions file, item file or None)."""
    if str(data) == DEMO_NAME:
        path = demo_path()
        if not (path / "ratings.csv").exists():
            raise DataError(f"the demo dataset is missing: {path}/ratings.csv not found")
    else:
        path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"{data}: no such file or folder")
    if path.is_dir():
        for name in INTERACTION_FILES:
            if (path / name).exists():
                items = next((path / n for n in ITEM_FILES if (path / n).exists()), None)
                return path / name, items
        inter = sorted(path.glob("*.inter"))
        if inter:
            item = sorted(path.glob("*.item"))
            return inter[0], item[0] if item else None
        if is_parquet_folder(path):
            return path, None
        raise DataError(f"{path}: folder has no ratings.csv (or interactions.csv, ratings.dat, *.inter)")
    return path, None


def load_dataset(data: str | Path, columns: str | dict | None = None, sep: str | None = None,
                 header: bool | None = None, items_path: str | Path | None = None,
                 cleaning: CleaningOptions | None = None, max_bytes: int | None = None,
                 name: str | None = None, order: str = "time",
                 progress: Callable[[str], None] | None = None) -> Dataset:
    """Load, validate and clean interactions (and item text), reporting everything that was done.

    `progress` is told each step as it starts (reading, validating, cleaning, indexing).
    """
    say = progress or (lambda message: None)
    cleaning = cleaning or CleaningOptions()
    if order not in ORDERS:
        raise DataError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    inter_path, folder_items = resolve_data_path(data)
    if items_path is None:
        items_path = folder_items
    if inter_path.suffix == ".dat" and sep is None:
        sep, header = "::", False  # MovieLens 1M/10M style
        if columns is None:
            columns = "user=0,item=1,rating=2,timestamp=3"
    say(f"reading {inter_path.name} ({_size_text(inter_path)})")
    overrides = parse_columns_option(columns) if isinstance(columns, str) or columns is None else dict(columns)
    raw = read_table(inter_path, sep=sep, header=header, max_bytes=max_bytes,
                     columns=_parquet_projection(inter_path, overrides))
    say(f"validating {len(raw.frame):,} rows")
    numeric = {c for c in raw.frame.columns
               if pd.to_numeric(raw.frame[c].head(200), errors="coerce").notna().mean() > 0.95}
    mapping = infer_mapping(list(raw.frame.columns), overrides, header=raw.header, source=inter_path.name,
                            numeric_columns=numeric)
    if order == "file" and mapping.timestamp is not None:
        mapping.notes.append(f"timestamp column {mapping.timestamp!r} ignored: --order file takes the row order "
                             "within each user as time order")
        mapping.timestamp = None
    frame, invalid, notes = typed_interactions(raw, mapping, drop_invalid=cleaning.drop_invalid)
    has_timestamp = mapping.timestamp is not None
    if order == "file":
        notes.append("order: each user's rows are in time order in the file; splits leave the last rows out by file order")
    say("cleaning")
    cleaned, steps = clean(frame, invalid, cleaning, has_timestamp)
    check_usable(cleaned, inter_path.name)
    warnings = warnings_for(frame[~invalid] if invalid.any() else frame, mapping.rating is not None, inter_path.name)
    item_table = load_item_table(items_path) if items_path is not None else None
    say(f"indexing {len(cleaned):,} interactions")
    ds = Dataset.from_frame(cleaned, name=name or ("demo" if str(data) == DEMO_NAME else inter_path.stem),
                            has_rating=mapping.rating is not None, has_timestamp=has_timestamp, item_table=item_table,
                            order=order)
    ds.report = DataReport(source=str(inter_path), raw_rows=len(raw.frame), mapping=mapping.as_dict(),
                           notes=raw.notes + mapping.notes + notes, warnings=warnings, cleaning=steps)
    if item_table is not None:
        known = sum(1 for raw_id in ds.items.ids if raw_id in item_table.index)
        ds.report.notes.append(f"item text for {known} of {ds.n_items} items from {Path(items_path).name}")
        images = ds.item_images()
        if images is not None:
            ds.report.notes.append(f"images for {sum(p is not None for p in images)} of {ds.n_items} items")
    return ds


def _column_samples(frame: pd.DataFrame, skip: set[str]):
    """(column, its first 300 non-missing values as text) for every column not in `skip` that has values."""
    for col in frame.columns:
        if col in skip:
            continue
        sample = frame[col].dropna().astype(str).head(300)
        if not sample.empty:
            yield col, sample


def _text_columns(frame: pd.DataFrame, skip: set[str]) -> list[str]:
    """Columns that read as words: mostly letters, not URLs, not too long."""
    out = []
    for col, sample in _column_samples(frame, skip):
        joined = "".join(sample)
        letters = sum(ch.isalpha() for ch in joined) / max(1, len(joined))
        urls = sample.str.contains(r"^(?:https?://|www\.)", regex=True).mean()
        if letters > 0.25 and urls < 0.2 and sample.str.len().mean() < 300:
            out.append(col)
    return out


def load_item_table(path: str | Path) -> pd.DataFrame:
    """Read an item file: the item id column, a display `title` and a combined `text` for encoders."""
    path = Path(path)
    if path.suffix == ".dat":
        raw = read_table(path, sep="::", header=False)
        raw.frame.columns = ["item", "title", "genres"][: raw.frame.shape[1]] + [str(j) for j in range(3, raw.frame.shape[1])]
    else:
        raw = read_table(path, header=True)
    frame = raw.frame
    id_col = next((c for c in frame.columns if role_of(c) == "item"), frame.columns[0])
    frame = frame[frame[id_col].notna()].drop_duplicates(id_col, keep="first")
    image_col = _image_column(frame, {id_col})
    texts = _text_columns(frame, {id_col, image_col})
    if not texts and image_col is None:
        raise DataError(f"{path.name}: no text or image columns found beside the item id column {id_col!r}")
    table = pd.DataFrame(index=pd.Index(frame[id_col].astype(str).to_numpy(), name="item"))
    table["title"], table["text"] = _titles_and_texts(frame, texts, table.index)
    for col in texts:
        if col not in ("title", "text", "image"):
            table[col] = frame[col].fillna("").astype(str).to_numpy()
    if image_col is not None:
        table["image"] = _image_paths(frame[image_col], path.parent)
    return table


def _titles_and_texts(frame: pd.DataFrame, texts: list[str], ids: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """A display title and one text for encoders ("title. column: value. ..."); the id for image-only tables."""
    if not texts:
        return ids.to_numpy(), ("item " + ids.to_series()).to_numpy()
    title_col = next((c for c in texts if c.lower() in ("title", "name", "item_name", "product_name")), None) \
        or next((c for c in texts if "name" in c.lower() or "title" in c.lower()), texts[0])
    columns = {col: frame[col].fillna("").astype(str).reset_index(drop=True) for col in texts}
    text = columns[title_col]
    for col in texts:
        if col != title_col:
            text = text + ". " + col.lower() + ": " + columns[col].str.replace("|", ", ", regex=False)
    return columns[title_col].to_numpy(), text.to_numpy()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
IMAGE_COLUMNS = ("image", "image_path", "img", "picture", "poster", "thumbnail", "photo")


def _image_column(frame: pd.DataFrame, skip: set[str]) -> str | None:
    """The column of local image paths: named like one, or whose values mostly end in an image suffix."""
    for col, values in _column_samples(frame, skip):
        suffixed = values.str.lower().str.endswith(IMAGE_SUFFIXES).mean()
        if str(col).lower() in IMAGE_COLUMNS or suffixed > 0.8:
            if values.str.contains(r"^(?:https?|ftp)://", regex=True).mean() > 0.2:
                raise DataError(f"column {col!r} holds image URLs; nothing is downloaded at run time, so give local "
                                "file paths (relative to the item table)", field="items")
            return col
    return None


def _image_paths(column: pd.Series, folder: Path) -> np.ndarray:
    """Absolute paths (relative ones are taken from the item table's folder); '' where an item has no image."""
    def absolute(value) -> str:
        if pd.isna(value) or not str(value).strip():
            return ""
        path = Path(str(value).strip()).expanduser()
        return str(path if path.is_absolute() else (folder / path).resolve())
    return np.array([absolute(v) for v in column], dtype=object)
