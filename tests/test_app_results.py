"""A small experiment result in the current format, for the studio's tests (not a test module itself)."""
from __future__ import annotations


def corrected_result() -> dict:
    def arm(valid: float, test: float) -> dict:
        return {"ndcg@10": test, "recall@10": 2 * test, "hr@10": 2 * test, "mrr@10": test / 2, "n_users": 50,
                "valid": {"ndcg@10": valid, "n_users": 50}, "seconds": 4.0, "trainable_params": 100,
                "total_params": 1000, "epochs_run": 5, "best_epoch": 3}

    def versus(diff: float, significant: bool) -> dict:
        return {"diff": diff, "ci_low": diff - 0.02, "ci_high": diff + 0.02, "p": 0.001 if significant else 0.4,
                "p_holm": 0.003 if significant else 0.8, "ci_low_adj": diff - 0.03, "ci_high_adj": diff + 0.03,
                "significant": significant, "comparisons": 3, "n_users": 50, "n_boot": 2000, "confidence": 0.95}

    return {"protocol": {"name": "transfer", "model": "sasrec", "device": "cpu"}, "seconds": 30, "dataset": "demo",
            "selected_on": "valid", "budget": {"epochs": 5, "patience": 2, "min_epochs": 0, "eval_every": 1},
            "reference": "scratch", "best": "lora",
            "strategies": {"lora": arm(0.12, 0.10), "frozen": arm(0.09, 0.11)},
            "references": {"scratch": arm(0.05, 0.05), "no_update": arm(0.04, 0.05)},
            "vs_scratch": {"lora": versus(0.05, True), "frozen": versus(0.01, False), "no_update": versus(0.0, False)}}
