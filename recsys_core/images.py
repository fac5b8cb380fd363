"""Image encoders for item images: any local Hugging Face vision model (CLIP's vision tower, ViT, DINO, ...).

Like text encoders, nothing is downloaded: `hf:PATH` names a local folder (or the local Hugging Face cache)
holding the model's config, weights and image processor; `trust_remote_code` stays off. Embeddings are cached
on disk per (encoder, sha256 of the image file's bytes), so an image that changes is encoded again and a
catalogue that grows only encodes its new images.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from recsys_core.errors import ConfigError, DataError
from recsys_core.text import cache_dir, resolve_encoder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
#: model types whose folder holds a text tower too; the image side is the one we load
_VISION_TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")


def is_image_encoder(path: Path) -> bool:
    """A model folder is an image encoder when it has an image processor and no tokenizer, or is CLIP-like."""
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError):
        return False
    if model_type in _VISION_TOWERS:
        return True
    has_processor = (path / "preprocessor_config.json").exists()
    return has_processor and not any((path / name).exists() for name in _TOKENIZER_FILES)


@lru_cache(maxsize=2)
def load_image_encoder(name: str) -> tuple[torch.nn.Module, object]:
    """(vision model, image processor) from local files only."""
    # transformers takes seconds to import; only runs with item images need it
    import transformers
    from transformers.utils import logging as hf_logging  # lazy: see above

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # the "torchvision not installed, using the PIL processor" notice is noise here
    path = resolve_encoder(name)
    if not is_image_encoder(path):
        raise ConfigError(f"{name!r} at {path} is not an image encoder (no image processor in the folder); "
                          "give a local vision model such as a ViT or CLIP folder", field="image_encoder")
    model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
    loader = getattr(transformers, _VISION_TOWERS.get(model_type, "AutoModel"))
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(str(path), local_files_only=True,
                                                                    trust_remote_code=False)
        model = loader.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise ConfigError(f"could not load image encoder {name!r} from {path}: {type(exc).__name__}: {exc}",
                          field="image_encoder") from None
    model.eval()
    return model, processor


def image_dim(name: str) -> int:
    """Size of the vectors `encode_images` gives for this encoder."""
    model, _ = load_image_encoder(name)
    return int(model.config.hidden_size)


def _open_image(path: str, item: str):
    from PIL import Image, UnidentifiedImageError  # lazy: Pillow is needed only for catalogues with images

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"item {item}: image file {path} not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"item {item}: {path} is not a readable image ({type(exc).__name__})") from None


def _pooled(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """One vector per image: the model's pooled output where it has one, else the mean of its patch states."""
    out = model(pixel_values=pixels)
    pooled = getattr(out, "pooler_output", None)  # a ModelOutput field, present for ViT/CLIP, absent for some
    return pooled if pooled is not None else out.last_hidden_state.mean(1)


def _file_key(name: str, path: str, item: str) -> str:
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        raise DataError(f"item {item}: image file {path} not found") from None
    except OSError as exc:
        raise DataError(f"item {item}: cannot read image file {path} ({exc.strerror})") from None
    return hashlib.sha256(f"{name}|{digest}".encode()).hexdigest()[:32]


def encode_images(name: str, paths: list[str | None], items: list[str] | None = None,
                  batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(vectors [len(paths), dim], has_image [len(paths)] bool): L2-normalised image embeddings.

    Items without an image (None) get a zero vector. Each file's embedding is cached by the hash of its
    bytes; a missing or unreadable file is a DataError naming the item and the path.
    """
    items = items or [str(k) for k in range(len(paths))]
    dim = image_dim(name)
    out = torch.zeros(len(paths), dim)
    has = torch.tensor([p is not None for p in paths], dtype=torch.bool)
    folder = cache_dir() / "image_embeddings"
    keys = {k: _file_key(name, p, items[k]) for k, p in enumerate(paths) if p is not None}
    todo = []
    for k, key in keys.items():
        cached = _read_cached(folder / f"{key}.safetensors")
        if cached is not None and cached.shape == (dim,):
            out[k] = cached
        else:
            todo.append(k)
    if todo:
        model, processor = load_image_encoder(name)
        with torch.no_grad():
            for lo in range(0, len(todo), batch_size):
                chunk = todo[lo: lo + batch_size]
                images = [_open_image(paths[k], items[k]) for k in chunk]
                pixels = processor(images=images, return_tensors="pt")["pixel_values"]
                vecs = torch.nn.functional.normalize(_pooled(model, pixels).float(), dim=-1)
                for k, vec in zip(chunk, vecs):
                    out[k] = vec
                    _write_cached(folder / f"{keys[k]}.safetensors", vec)
    return out, has


def _read_cached(path: Path) -> torch.Tensor | None:
    if not path.exists():
        return None
    try:
        return load_file(str(path))["emb"]
    except Exception:
        path.unlink(missing_ok=True)  # a corrupt cache entry is recomputed, never trusted
        return None


def _write_cached(path: Path, vec: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file({"emb": vec.contiguous().clone()}, str(tmp))
    os.replace(tmp, path)
