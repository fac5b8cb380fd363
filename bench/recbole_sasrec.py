"""RecBole 1.2.1's SASRec on an interactions file, timed per epoch; run by bench/speed.py in RecBole's own venv.

Usage (inside .venv-recbole): python bench/recbole_sasrec.py INTER_DIR DATASET_NAME OUT.json [--epochs 10]
INTER_DIR/DATASET_NAME/DATASET_NAME.inter is a RecBole atomic file (user_id:token item_id:token rating:float
timestamp:float). Prints nothing of its own; writes OUT.json with each epoch's cumulative seconds and
validation NDCG@10. This file imports only RecBole and the standard library: it never runs in our venv.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("dataset")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=50)
    args = ap.parse_args()

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    # RecBole's defaults for SASRec, spelt out, plus the protocol of DESIGN.md (leave-last-out by time, full ranking)
    config_dict = {
        "data_path": args.data_dir, "checkpoint_dir": str(Path(args.out).parent / "recbole-saved"),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "hidden_size": args.hidden, "n_layers": args.layers, "n_heads": 2, "inner_size": 256,
        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "MAX_ITEM_LIST_LENGTH": args.max_len,
        "loss_type": "CE", "train_neg_sample_args": None, "train_batch_size": 2048, "eval_batch_size": 4096,
        "epochs": args.epochs, "stopping_step": args.epochs + 1, "learning_rate": 0.001,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["NDCG", "Hit", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
        "device": "cpu", "use_gpu": False, "seed": 2020, "reproducibility": True, "show_progress": False,
        "log_wandb": False, "state": "WARNING",
    }
    config = Config(model="SASRec", dataset=args.dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train, valid, _test = data_preparation(config, dataset)
    model = SASRec(config, train.dataset).to(config["device"])
    trainer = Trainer(config, model)
    epochs: list[dict] = []
    start = time.perf_counter()

    def after_validation(epoch_idx: int, valid_score: float) -> None:
        epochs.append({"epoch": epoch_idx + 1, "seconds": time.perf_counter() - start, "valid_ndcg@10": float(valid_score)})

    trainer.fit(train, valid, saved=False, show_progress=False, callback_fn=after_validation)
    total = time.perf_counter() - start
    import torch

    Path(args.out).write_text(json.dumps({
        "epochs": epochs, "seconds": total, "n_users": int(dataset.user_num - 1), "n_items": int(dataset.item_num - 1),
        "n_interactions": int(dataset.inter_num), "torch_threads": torch.get_num_threads(),
        "recbole": __import__("recbole").__version__, "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    main()
