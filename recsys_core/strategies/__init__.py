"""Registry of fine-tuning strategies (after PEFT's register_peft_method): name -> Strategy."""
from __future__ import annotations

from recsys_core.errors import ConfigError
from recsys_core.registry import add_unique
from recsys_core.strategies.base import (Plan, Strategy, StrategyConfig, StrategyContext, parameter_report,
                                         set_trainable)
from recsys_core.strategies.incremental import Incremental
from recsys_core.strategies.lora import LoRA
from recsys_core.strategies.simple import Frozen, Full, Partial, Scratch

STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Add a strategy; the studio's widgets and the CLI pick it up from here. A name already taken is refused."""
    return add_unique(STRATEGIES, strategy.name, strategy, "strategy")


for _s in (Scratch(), Full(), Frozen(), Partial(), LoRA(), Incremental()):
    register_strategy(_s)


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}") from None


def parse_strategy(spec: str | dict | None) -> tuple[Strategy, StrategyConfig]:
    """'lora', 'lora:rank=4,alpha=8' or {'name': 'lora', 'rank': 4} -> (strategy, validated config)."""
    if spec is None:
        spec = "scratch"
    if isinstance(spec, str):
        name, _, rest = spec.partition(":")
        values: dict = {}
        key = None
        for part in filter(None, (p.strip() for p in rest.split(","))):
            k, eq, raw = part.partition("=")
            if eq:
                key = k.strip()
                values[key] = _literal(raw.strip())
            elif key is not None and isinstance(values[key], str):  # targets=q_proj,v_proj: a list value
                values[key] += "," + part
            else:
                raise ConfigError(f"strategy option {part!r} must look like key=value")
        spec = {"name": name.strip(), **values}
    values = dict(spec)
    strategy = get_strategy(values.pop("name", "scratch"))
    return strategy, strategy.parse(values)


def _literal(raw: str):
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


__all__ = ["STRATEGIES", "Plan", "Strategy", "StrategyConfig", "StrategyContext", "get_strategy", "parameter_report",
           "parse_strategy", "register_strategy", "set_trainable"]
