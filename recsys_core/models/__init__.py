"""Model families behind one Recommender contract."""
from __future__ import annotations

from recsys_core.errors import ConfigError
from recsys_core.models.base import FittedRecommender, ModelConfig, Recommender
from recsys_core.models.ease import EASERecommender
from recsys_core.models.itemknn import ItemKNNRecommender
from recsys_core.models.pop import PopRecommender

BASELINES: dict[str, type[FittedRecommender]] = {
    "pop": PopRecommender,
    "itemknn": ItemKNNRecommender,
    "ease": EASERecommender,
}


def baseline_class(name: str) -> type[FittedRecommender]:
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}") from None


__all__ = ["BASELINES", "FittedRecommender", "ModelConfig", "Recommender", "baseline_class"]


def load_recommender(directory) -> Recommender:
    """Rebuild a saved model from model.json and its safetensors weights."""
    import json
    from pathlib import Path

    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.exists():
        raise ConfigError(f"{directory}: no saved model here (model.json missing)")
    meta = json.loads(meta_path.read_text())
    cls = baseline_class(meta["family"])
    model = cls(meta["n_users"], meta["n_items"], cls.config_class.from_dict(meta["config"]))
    model.load_state(directory)
    return model
