"""Dataclass configs with help text: turn them into dicts, build them from dicts, describe them for UIs."""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

from recsys_core.errors import ConfigError


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass `cls` from a dict, rejecting unknown keys and coercing lists to tuples where needed."""
    values = dict(values or {})
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        default = names[name].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """Field name, type, default, help and choices: what a UI needs to draw a widget for each option."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("hidden"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        out.append({"name": f.name, "type": hints.get(f.name), "default": default,
                    "help": f.metadata.get("help", ""), "choices": f.metadata.get("choices"),
                    "min": f.metadata.get("min"), "max": f.metadata.get("max")})
    return out


def check_choice(value: Any, choices: typing.Sequence[Any], name: str) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")


def check_range(value: float, name: str, low: float | None = None, high: float | None = None) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name} must be {bounds}, not {value!r}")


def check_fields(obj: Any, where: str) -> None:
    """Check every field of a dataclass instance against its metadata's choices, min and max."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        if meta.get("choices") is not None:
            check_choice(value, meta["choices"], f"{where} {f.name}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and ("min" in meta or "max" in meta):
            check_range(value, f"{where} {f.name}", meta.get("min"), meta.get("max"))
