"""Infer which column plays which role (user, item, rating, timestamp) from its name, or take it as given."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from recsys_core.errors import ConfigError, DataError

ROLES = ("user", "item", "rating", "timestamp")

# Nouns that name the acting party or the thing acted upon; "<noun>", "<noun>id", "<noun>_id" all match.
USER_NOUNS = ["user", "u", "uid", "customer", "client", "visitor", "member", "account", "buyer", "reviewer",
              "person", "listener", "viewer", "player", "reader", "subscriber", "shopper", "profile"]
ITEM_NOUNS = ["item", "i", "iid", "movie", "film", "product", "sku", "asin", "isbn", "book", "track", "song",
              "artist", "album", "wine", "article", "video", "game", "business", "restaurant", "hotel", "recipe",
              "course", "show", "anime", "beer", "app", "news", "post", "offer", "listing", "content", "asset",
              "title", "poi", "venue", "place", "event", "job", "doc", "document", "url", "page"]
RATING_NAMES = ["rating", "ratings", "score", "stars", "star", "rate", "rank", "preference", "value", "weight",
                "plays", "playcount", "count", "clicks", "label", "feedback", "grade", "points", "quantity", "qty"]
TIME_NAMES = ["timestamp", "time", "ts", "date", "datetime", "eventtime", "createdat", "created", "updatedat",
              "unixtime", "epoch", "when", "ratedat", "ratingdate", "reviewdate", "reviewtime", "unixreviewtime",
              "eventdate", "day", "time_stamp", "datestamp", "watchedat", "playedat", "purchasedat", "orderdate"]


def _norm(name: str) -> str:
    """'User_ID:token' -> 'userid'."""
    return re.sub(r"[^a-z0-9]", "", str(name).split(":", 1)[0].lower())


def _strip_id(norm: str) -> str | None:
    for suffix in ("id", "ids", "key", "code", "no", "num", "number", "token"):
        if norm.endswith(suffix) and len(norm) > len(suffix):
            return norm[: -len(suffix)]
    return None


def role_of(name: str) -> str | None:
    """The role a column name suggests, or None. 'RatingID' is an id of a rating, not a rating."""
    n = _norm(name)
    if not n:
        return None
    stem = _strip_id(n)
    if n in USER_NOUNS or stem in USER_NOUNS:
        return "user"
    if n in ("uid",):
        return "user"
    if n in ITEM_NOUNS or stem in ITEM_NOUNS:
        if n == "title":  # a bare 'title' is item text, not an id
            return None
        return "item"
    if stem is not None:  # '<something>id' that is not a user or item noun (RatingID, OrderID): ignore
        return None
    if n in RATING_NAMES:
        return "rating"
    if n in TIME_NAMES or n.endswith("timestamp") or n.endswith("datetime"):
        return "timestamp"
    return None


def looks_like_role_name(cell: str) -> bool:
    return role_of(cell) is not None


@dataclass
class ColumnMapping:
    """Which source column holds each role; rating and timestamp may be absent."""

    user: str
    item: str
    rating: str | None = None
    timestamp: str | None = None
    inferred: bool = True
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, str | None]:
        return {"user": self.user, "item": self.item, "rating": self.rating, "timestamp": self.timestamp}


def parse_columns_option(text: str | None) -> dict[str, str]:
    """Parse 'user=COL,item=COL,rating=COL,timestamp=COL' into a dict, checking the role names."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"--columns: expected ROLE=COLUMN, got {part.strip()!r}")
        role, col = (s.strip() for s in part.split("=", 1))
        role = {"time": "timestamp", "ts": "timestamp", "score": "rating"}.get(role.lower(), role.lower())
        if role not in ROLES:
            raise ConfigError(f"--columns: unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not col:
            raise ConfigError(f"--columns: no column given for {role}")
        out[role] = col
    return out


def infer_mapping(columns: list[str], overrides: dict[str, str] | None = None, header: bool = True,
                  source: str = "data", numeric_columns: set[str] | None = None) -> ColumnMapping:
    """Map roles to columns: overrides first, then names, then (without a header) positions."""
    overrides = dict(overrides or {})
    for role, col in overrides.items():
        if col not in columns:
            shown = _list_columns(columns)
            hint = " (with --no-header, name columns by 0-based position)" if not header else ""
            raise DataError(f"{source}: column {_cut(col)} given for {role} does not exist; columns are {shown}{hint}")
    chosen: dict[str, str] = dict(overrides)
    notes: list[str] = []
    if header:
        for col in columns:
            role = role_of(col)
            if role and role not in chosen and col not in chosen.values():
                chosen[role] = col
    else:
        # Headerless: the conventional order user, item, rating, timestamp.
        free = [c for c in columns if c not in chosen.values()]
        for role in ROLES:
            if role in chosen or not free:
                continue
            if role in ("rating", "timestamp") and numeric_columns is not None and free[0] not in numeric_columns:
                continue
            chosen[role] = free.pop(0)
            notes.append(f"{role} taken from column {chosen[role]} by position")
    for role in ("user", "item"):
        if role not in chosen:
            shown = _list_columns(columns)
            raise DataError(f"{source}: no {role} column found among {shown}; "
                            f"name it with --columns {role}=COLUMN")
    for role, col in chosen.items():
        if role not in overrides:
            notes.append(f"{role} <- {col!r}")
    return ColumnMapping(user=chosen["user"], item=chosen["item"], rating=chosen.get("rating"),
                         timestamp=chosen.get("timestamp"), inferred=not overrides, notes=notes)


def _cut(name, limit: int = 40) -> str:
    text = repr(str(name))
    return text if len(text) <= limit else f"{text[:limit]}… ({len(str(name)):,} characters)"


def _list_columns(columns: list) -> str:
    """At most 12 column names, each cut short: a header can be one 100 kB name."""
    shown = ", ".join(_cut(c) for c in columns[:12])
    return shown + (f", … ({len(columns):,} columns)" if len(columns) > 12 else "")
