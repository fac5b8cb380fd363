"""The one rule every registry (model families, kinds of base, strategies) follows: a name is taken once."""
from __future__ import annotations

from typing import TypeVar

from recsys_core.errors import ConfigError

T = TypeVar("T")


def add_unique(registry: dict[str, T], name: str, item: T, what: str) -> T:
    """registry[name] = item, refusing an empty name or one already taken (a silent overwrite hides a clash)."""
    if not name:
        raise ConfigError(f"a {what} needs a name ({type(item).__name__} has none)")
    if name in registry:
        raise ConfigError(f"{what} {name!r} is already registered ({type(registry[name]).__name__})")
    registry[name] = item
    return item
