"""Model families behind one Recommender contract, and the registry that names them."""
from __future__ import annotations

import json
from pathlib import Path

from recsys_core.errors import ConfigError
from recsys_core.registry import add_unique
from recsys_core.models.base import FittedRecommender, ModelConfig, Recommender
from recsys_core.models.ease import EASERecommender
from recsys_core.models.itemknn import ItemKNNRecommender
from recsys_core.models.lightgcn import LightGCN
from recsys_core.models.mf import MF
from recsys_core.models.ncf import NCF
from recsys_core.models.pop import PopRecommender
from recsys_core.models.sasrec import SASRec
from recsys_core.models.text_ctr import TextCTR
from recsys_core.models.two_tower import TwoTower

FAMILIES: dict[str, type[Recommender]] = {}


def register_model(cls: type[Recommender]) -> type[Recommender]:
    """Add a model family under its `family` name; a name already taken is refused."""
    return add_unique(FAMILIES, cls.family, cls, "model family")


for _cls in (PopRecommender, ItemKNNRecommender, EASERecommender, MF, NCF, SASRec, LightGCN, TwoTower, TextCTR):
    register_model(_cls)


def baseline_families() -> list[str]:
    """Families fitted in closed form (no base, no strategy)."""
    return [name for name, cls in FAMILIES.items() if not cls.trainable]


def trainable_families() -> list[str]:
    """Families trained by gradient descent (they take bases and strategies)."""
    return [name for name, cls in FAMILIES.items() if cls.trainable]


def family_class(name: str) -> type[Recommender]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}") from None


def baseline_class(name: str) -> type[FittedRecommender]:
    cls = family_class(name)
    if cls.trainable:
        raise ConfigError(f"{name} is not a baseline; choose from {', '.join(baseline_families())}")
    return cls  # type: ignore[return-value]


def build_model(family: str, n_users: int, n_items: int, config: dict | None = None) -> Recommender:
    cls = family_class(family)
    return cls(n_users, n_items, cls.config_class.from_dict(config or {}))


def load_recommender(directory: str | Path, item_texts: list[str] | None = None) -> Recommender:
    """Rebuild a saved model from model.json and its safetensors weights (text models need their item texts)."""
    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.exists():
        raise ConfigError(f"{directory}: no saved model here (model.json missing)")
    meta = json.loads(meta_path.read_text())
    model = build_model(meta["family"], meta["n_users"], meta["n_items"], meta["config"])
    if model.needs_item_text:
        if item_texts is None:
            raise ConfigError(f"{directory}: this {meta['family']} model reads item text; give the item texts to load it")
        model.set_item_texts(item_texts)
    model.load_state(directory)
    return model


__all__ = ["FAMILIES", "FittedRecommender", "ModelConfig", "Recommender", "baseline_class", "baseline_families",
           "build_model", "family_class", "load_recommender", "register_model", "trainable_families"]
