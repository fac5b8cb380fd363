"""IdMap: raw ids (strings) to dense indices, growable without renumbering."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from recsys_core.errors import UnknownIdError


class IdMap:
    """Maps raw ids to 0..n-1 in order of first appearance; new ids are appended."""

    def __init__(self, ids: Iterable[str] = (), kind: str = "id") -> None:
        self.kind = kind
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.add(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def add(self, ids: Iterable[str]) -> int:
        """Append ids not seen before; existing ids keep their index. Returns how many were new."""
        added = 0
        for raw in ids:
            key = str(raw)
            if key not in self._index:
                self._index[key] = len(self._ids)
                self._ids.append(key)
                added += 1
        return added

    def encode(self, values: pd.Series) -> np.ndarray:
        """Add the ids not seen before (in order of first appearance) and return every value's index.

        Work is per distinct id, not per row: a categorical column of millions of rows costs one pass
        over its codes.
        """
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            distinct = values.cat.categories.astype(str)
        else:
            codes, distinct = pd.factorize(values.astype(str))
        if (codes < 0).any():
            raise UnknownIdError(f"{int((codes < 0).sum())} {self.kind} id(s) are missing")
        first_seen = pd.unique(codes)  # distinct codes in order of first appearance
        self.add(distinct[first_seen].tolist())
        return self.indices(distinct.tolist(), missing="minus_one")[codes]

    def categorical(self, indices: np.ndarray) -> pd.Categorical:
        """Raw ids of `indices` as a categorical whose codes are the indices themselves (cheap for millions)."""
        return pd.Categorical.from_codes(np.asarray(indices), categories=pd.Index(self._ids, dtype="str"))

    def index(self, raw: object) -> int:
        key = str(raw)
        try:
            return self._index[key]
        except KeyError:
            raise UnknownIdError(f"unknown {self.kind} {key!r} (the data has {len(self)} {self.kind}s)") from None

    def indices(self, raws: Sequence[object], missing: str = "error") -> np.ndarray:
        """Vectorised lookup; missing='error' raises, missing='minus_one' maps unknown ids to -1."""
        out = np.fromiter((self._index.get(str(r), -1) for r in raws), dtype=np.int64, count=len(raws))
        if missing == "error" and (out < 0).any():
            bad = [str(r) for r, j in zip(raws, out) if j < 0][:3]
            raise UnknownIdError(f"unknown {self.kind}(s) {', '.join(repr(b) for b in bad)}")
        return out

    def raw(self, idx: int) -> str:
        return self._ids[int(idx)]

    def raws(self, idxs: Iterable[int]) -> list[str]:
        return [self._ids[int(i)] for i in idxs]

    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    def copy(self) -> "IdMap":
        return IdMap(self._ids, kind=self.kind)

    def to_list(self) -> list[str]:
        return list(self._ids)

    @classmethod
    def from_list(cls, ids: list[str], kind: str = "id") -> "IdMap":
        return cls(ids, kind=kind)
