"""Where a dataset comes from and how it is read and cleaned: the data part of a run spec.

`DataSource` is the one description of a dataset that the CLI's flags, the studio's upload and
column-mapping step, a run's config.json and the experiments all build; `load_source` is the one
function that turns it into a loaded `Dataset`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recsys_core.config_fields import check_fields, from_dict
from recsys_core.data.clean import DEDUPE_CHOICES, CleaningOptions
from recsys_core.data.dataset import DEMO_NAME, ORDERS, Dataset, load_dataset, resolve_data_path
from recsys_core.data.schema import parse_columns_option
from recsys_core.errors import ConfigError

CLEANING_FIELDS = tuple(f.name for f in dataclasses.fields(CleaningOptions))


@dataclass(frozen=True)
class DataSource:
    """An interaction file (or folder, or the demo), its column mapping and its cleaning options."""

    path: str = field(default=DEMO_NAME, metadata={"help": "a file, a MovieLens-style folder, or 'demo'"})
    columns: dict[str, str] | None = field(default=None, metadata={
        "help": "role -> column name (0-based position when the file has no header); inferred when empty"})
    sep: str | None = field(default=None, metadata={"help": "column separator (tab, comma, ';', '::', ...); "
                                                             "detected when empty"})
    no_header: bool = field(default=False, metadata={"help": "the file has no header row"})
    items: str | None = field(default=None, metadata={"help": "item text file joined by item id"})
    name: str | None = field(default=None, metadata={"help": "display name (default: the file's name)"})
    order: str = field(default="time", metadata={
        "help": "what orders each user's interactions: 'time' (timestamps; random without them) or 'file' "
                "(row order within a user is time order, for files without timestamps)", "choices": ORDERS})
    drop_invalid: bool = field(default=False, metadata={
        "help": "drop rows with a missing id, rating or timestamp (reported) instead of failing"})
    dedupe: str = field(default="last", metadata={"help": "repeated (user, item) pairs: keep the last, the first, "
                                                          "or all ('none')", "choices": DEDUPE_CHOICES})
    min_rating: float | None = field(default=None, metadata={"help": "keep only interactions rated at least this"})
    min_user_interactions: int = field(default=0, metadata={"help": "drop users with fewer interactions", "min": 0})
    min_item_interactions: int = field(default=0, metadata={"help": "drop items with fewer interactions", "min": 0})

    def __post_init__(self) -> None:
        # Paths are kept absolute so a run's spec loads the same data from any working folder.
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError("data path must be a non-empty string")
        if self.path != DEMO_NAME:
            object.__setattr__(self, "path", str(Path(self.path).expanduser().resolve()))
        if self.items:
            object.__setattr__(self, "items", str(Path(self.items).expanduser().resolve()))
        if isinstance(self.columns, str):
            object.__setattr__(self, "columns", parse_columns_option(self.columns) or None)
        elif self.columns is not None:
            object.__setattr__(self, "columns", {str(k): str(v) for k, v in dict(self.columns).items()} or None)
        check_fields(self, "data option")

    def cleaning(self) -> CleaningOptions:
        return CleaningOptions(**{k: getattr(self, k) for k in CLEANING_FIELDS})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "DataSource":
        return from_dict(cls, values, "data")

    def replace(self, **changes: Any) -> "DataSource":
        return dataclasses.replace(self, **changes)

    def over_csv(self, path: str | Path, name: str) -> "DataSource":
        """This source's cleaning and item text over a CSV we wrote (header user,item,rating,timestamp)."""
        _, items = resolve_data_path(self.path)
        return self.replace(path=str(path), columns=None, sep=None, no_header=False,
                            items=self.items or (str(items) if items else None), name=name)


def load_source(source: DataSource, max_bytes: int | None = None,
                progress: Callable[[str], None] | None = None) -> Dataset:
    """Read, validate and clean the interactions (and item text) a source describes."""
    return load_dataset(source.path, columns=source.columns, sep=source.sep, header=False if source.no_header else None,
                        items_path=source.items, cleaning=source.cleaning(), max_bytes=max_bytes, name=source.name,
                        order=source.order, progress=progress)
