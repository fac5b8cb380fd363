"""RunSpec: everything a run needs, typed and validated; a run directory's config.json is one.

The CLI's flags, the studio's Setup page and the experiments each build a `RunSpec`, save it once
into a run directory, and a worker runs exactly that directory (`rectune train --run-dir DIR`).
Nothing rewrites config.json afterwards.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recsys_core.bases import check_base_spec, model_config_for, resolve_base
from recsys_core.config_fields import check_fields
from recsys_core.data.dataset import Dataset
from recsys_core.data.source import DataSource, load_source
from recsys_core.data.splits import SPLITS, Split, make_split
from recsys_core.errors import ConfigError
from recsys_core.models import FAMILIES, ModelConfig, family_class
from recsys_core.storage.atomic import atomic_write_json, read_json
from recsys_core.storage.rundir import RunDir
from recsys_core.strategies import StrategyConfig, parse_strategy
from recsys_core.train.trainer import TrainerConfig

VERSION = 1
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class SplitSpec:
    """How interactions are split into training, validation and test."""

    name: str = field(default="leave-last-out", metadata={"help": "evaluation split", "choices": tuple(SPLITS)})
    seed: int = field(default=0, metadata={"help": "seed of random splits"})

    def __post_init__(self) -> None:
        check_fields(self, "split")


@dataclass(frozen=True)
class RunSpec:
    """A run: data, split, model family and options, base, strategy, training settings, seed, device."""

    data: DataSource = field(metadata={"help": "where the interactions come from and how they are cleaned"})
    family: str = field(metadata={"help": "model family", "choices": tuple(FAMILIES)})
    model: ModelConfig = field(metadata={"help": "the family's options (defaults filled in)"})
    train: TrainerConfig = field(default_factory=TrainerConfig, metadata={"help": "training settings"})
    base: str = field(default="none", metadata={"help": "pretrained base: none, minilm, hf:NAME, run:DIR"})
    strategy: StrategyConfig = field(default=None, metadata={"help": "fine-tuning strategy options"})  # type: ignore[assignment]
    strategy_name: str = field(default="scratch", metadata={"help": "fine-tuning strategy"})
    split: SplitSpec = field(default_factory=SplitSpec, metadata={"help": "evaluation split"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA, then MPS, then CPU), cpu, cuda, mps"})

    def __post_init__(self) -> None:
        cls = family_class(self.family)
        if not isinstance(self.model, cls.config_class):
            raise ConfigError(f"model options of {self.family} must be a {cls.config_class.__name__}")
        strategy, options = parse_strategy({"name": self.strategy_name, **(self.strategy.as_dict() if self.strategy else {})})
        object.__setattr__(self, "strategy", options)
        check_base_spec(self.base)
        if not cls.trainable and (self.base != "none" or strategy.name != "scratch"):
            raise ConfigError(f"{self.family} is fitted in closed form: it takes no base and no fine-tuning strategy")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ConfigError(f"unknown device {self.device!r}; use {', '.join(DEVICES)}")

    # ------------------------------------------------------------ building
    @classmethod
    def create(cls, data: DataSource | str | dict, family: str, model: dict | None = None,
               train: dict | None = None, base: str | None = "none", strategy: str | dict | None = None,
               split: str = "leave-last-out", seed: int = 0, device: str = "auto") -> "RunSpec":
        """A spec from user choices: a base's implied model options and the family's training defaults filled in.

        The base is resolved now (a missing run or encoder fails before any work); a run base is kept as
        an absolute `run:DIR` so the spec reproduces from anywhere.
        """
        model_cls = family_class(family)
        source = data if isinstance(data, DataSource) else (
            DataSource(path=data) if isinstance(data, str) else DataSource.from_dict(data))
        chosen, options = parse_strategy(strategy)
        base_obj = resolve_base(base)
        implied = {}
        if model_cls.trainable:  # a run base fixes the architecture; a strategy may switch the text encoder
            implied = model_config_for(base_obj, family, chosen.model_overrides(model_cls, base_obj, options))
        model_cfg = model_cls.config_class.from_dict({**implied, **(model or {})})
        train_cfg = TrainerConfig.from_dict({**model_cls.default_train, "seed": seed, **(train or {})})
        base_spec = f"run:{base_obj.path}" if base_obj.kind == "run" and base_obj.path is not None else (base or "none")
        return cls(source, family, model_cfg, train_cfg, base_spec, options, chosen.name, SplitSpec(split, seed), seed,
                   device)

    def replace(self, **changes: Any) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------ JSON (config.json)
    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "data": self.data.as_dict(), "split": dataclasses.asdict(self.split),
                "model": {"family": self.family, **self.model.as_dict()}, "train": self.train.as_dict(),
                "base": self.base, "strategy": {"name": self.strategy_name, **self.strategy.as_dict()},
                "seed": self.seed, "device": self.device,
                # lock-free workers interleave their writes at random: the same seed does not give the same run
                "deterministic": self.train.async_workers == 0}

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> "RunSpec":
        if not isinstance(config, dict) or "model" not in config or "data" not in config:
            raise ConfigError("a run spec needs at least the sections data and model")
        if config.get("version", VERSION) != VERSION:
            raise ConfigError(f"run spec version {config.get('version')!r} is not supported (this is version {VERSION})")
        model = dict(config["model"])
        family = model.pop("family", None)
        model_cls = family_class(str(family))
        strategy_values = dict(config.get("strategy") or {"name": "scratch"})
        strategy, options = parse_strategy(strategy_values)
        split = config.get("split") or {}
        return cls(DataSource.from_dict(config["data"]), family, model_cls.config_class.from_dict(model),
                   TrainerConfig.from_dict(config.get("train")), config.get("base", "none"), options, strategy.name,
                   SplitSpec(split.get("name", "leave-last-out"), split.get("seed", 0)), config.get("seed", 0),
                   config.get("device", "auto"))

    def save(self, directory: str | Path) -> RunDir:
        """Write config.json into `directory` once; the same spec again is a no-op, another one an error."""
        run = RunDir(directory)
        existing = read_json(run.config_path)
        if existing is not None:
            if existing != json.loads(json.dumps(self.to_json())):
                raise ConfigError(f"{run.path} already holds another run spec; pick another run directory")
            return run
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.config_path, self.to_json())
        return run

    @classmethod
    def load(cls, directory: str | Path) -> "RunSpec":
        return cls.from_json(RunDir(directory).read_config())

    # ------------------------------------------------------------ using it
    def load_data(self, progress: Callable[[str], None] | None = None) -> Dataset:
        return load_source(self.data, progress=progress)

    def make_split(self, ds: Dataset) -> Split:
        return make_split(ds, self.split.name, seed=self.split.seed)

    def config_file(self) -> dict[str, Any]:
        """The `--config FILE` content that, with --data and --model, reproduces this spec exactly."""
        data = {k: v for k, v in self.data.as_dict().items() if k != "path"}
        return {"model": self.model.as_dict(), "train": self.train.as_dict(), "data": data,
                "split": {"name": self.split.name}, "base": self.base,
                "strategy": {"name": self.strategy_name, **self.strategy.as_dict()}}

    def command(self, config_path: str | Path = "setup.json") -> str:
        """The `rectune train` command line for this spec's config_file() saved at `config_path`."""
        parts = ["rectune", "train", "--data", self.data.path, "--model", self.family, "--config", str(config_path)]
        if self.seed:
            parts += ["--seed", str(self.seed)]
        if self.device != "auto":
            parts += ["--device", self.device]
        return " ".join(shlex.quote(p) for p in parts)


def load_config_file(path: str | Path) -> dict:
    """A JSON file with any of the sections model, train, data, split, base, strategy (`--config FILE`)."""
    try:
        cfg = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: the config must be a JSON object")
    return cfg
