"""Model families behind one Recommender contract, and the registry that names them."""
from __future__ import annotations

import json
from pathlib import Path

from recsys_core.errors import ConfigError
from recsys_core.models.base import FittedRecommender, ModelConfig, Recommender
from recsys_core.models.ease import EASERecommender
from recsys_core.models.itemknn import ItemKNNRecommender
from recsys_core.models.mf import MF
from recsys_core.models.ncf import NCF
from recsys_core.models.pop import PopRecommender
from recsys_core.models.sasrec import SASRec
from recsys_core.models.text_ctr import TextCTR
from recsys_core.models.two_tower import TwoTower

BASELINES: dict[str, type[FittedRecommender]] = {
    "pop": PopRecommender,
    "itemknn": ItemKNNRecommender,
    "ease": EASERecommender,
}
NEURAL: dict[str, type[Recommender]] = {
    "mf": MF,
    "ncf": NCF,
    "sasrec": SASRec,
    "two_tower": TwoTower,
    "text_ctr": TextCTR,
}
FAMILIES: dict[str, type[Recommender]] = {**BASELINES, **NEURAL}


def baseline_class(name: str) -> type[FittedRecommender]:
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}") from None


def family_class(name: str) -> type[Recommender]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(FAMILIES)}") from None


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
    if hasattr(model, "set_item_texts") and getattr(model, "needs_text", False):
        if item_texts is None:
            raise ConfigError(f"{directory}: this {meta['family']} model reads item text; give the item texts to load it")
        model.set_item_texts(item_texts)
    model.load_state(directory)
    return model


__all__ = ["BASELINES", "FAMILIES", "NEURAL", "FittedRecommender", "ModelConfig", "Recommender", "baseline_class",
           "build_model", "family_class", "load_recommender"]
