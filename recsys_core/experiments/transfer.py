"""Transfer to new users (DESIGN.md): pretrain on the earliest users, fine-tune on later users' few shots.

Users are ordered by their first interaction; the earliest `source_frac` are the source and pretrain the
base on all their interactions. Each later (target) user gives `shots` interactions for fine-tuning, the
next for validation and the one after for test. Every strategy fine-tunes the base on the few shots and
is compared with references: the base as it is (zero-shot, `no_update`), training from scratch on the
few shots alone (`scratch`), retraining on source + few shots (`retrain`) and training on the few shots
plus the most similar source users (`similar_users`).
"""
from __future__ import annotations

import time

import numpy as np

from recsys_core.bases import Base
from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import Split, user_group_split
from recsys_core.errors import ConfigError
from recsys_core.experiments.common import (Arm, ArmData, ArmSpec, ExperimentOptions, Progress, compare_arms,
                                            holdout_last, pick_best, profile_text, score_arm, similar_users,
                                            train_arm, train_strategies)
from recsys_core.models import family_class, trainable_families
from recsys_core.train.device import device_name, pick_device, seed_everything



def run_transfer(ds: Dataset, options: ExperimentOptions, shots: int = 10, source_frac: float = 0.8,
                 progress: Progress | None = None, source_cutoff: bool = True) -> dict:
    if not family_class(options.family).trainable:
        raise ConfigError(f"the transfer experiment fine-tunes trainable models; {options.family} is not one "
                          f"(choose from {', '.join(trainable_families())})")
    say = progress or (lambda m: None)
    started = time.perf_counter()
    device = pick_device(options.device)
    seed_everything(options.seed)
    split = user_group_split(ds, source_frac, shots, source_cutoff=source_cutoff)
    target_users = split.test["u"].unique()
    if len(target_users) < 2:
        raise ConfigError("the transfer experiment needs at least 2 target users with shots + 2 interactions")
    is_target = split.train["u"].isin(target_users).to_numpy()
    few_rows = split.train.loc[is_target, "row"].to_numpy()
    source = split.train[~is_target]
    data = ArmData(split, ds.users.ids, ds.items.ids, ds.item_texts() if ds.item_table is not None else None,
                   ds.item_images())
    base_arm, base = _pretrain_base(ds, source, split, data, options, device, say)
    say(f"{len(target_users):,} target users with {shots} shots each ({len(few_rows):,} interactions)")
    references = _references(base_arm, source, target_users, few_rows, data, options, device, say)
    say("strategies, each starting from the base")
    strategies, skipped = train_strategies(
        options, lambda name: ArmSpec(name, options.strategy_spec(name), base, train_rows=few_rows, new_rows=few_rows),
        data, device, say)
    for arm in [*references.values(), *strategies.values()]:
        score_arm(arm, split)
    others = {n: a.test for n, a in {**strategies, **references}.items() if n != "scratch"}
    result = {
        "protocol": {**split.summary(), "name": "transfer", "split": split.name, "description": split.description,
                     "model": options.family, "device": device_name(device), "selected_on": "valid",
                     "text": PROTOCOL_TEXT},
        "selected_on": "valid",
        "budget": options.budget(),
        "base": {"seconds": round(base_arm.seconds, 2), "epochs_run": base_arm.epochs,
                 "best_epoch": base_arm.best_epoch, "source_interactions": int(len(source))},
        "strategies": {n: a.figures() for n, a in strategies.items()},
        "references": {n: a.figures() for n, a in references.items()},
        "reference": "scratch",
        "vs_scratch": compare_arms(others, references["scratch"].test, options.seed),
        "notes": {n: a.notes for n, a in {**strategies, **references}.items() if a.notes},
        "skipped": skipped,
    }
    result["best"] = pick_best(result["strategies"])
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


PROTOCOL_TEXT = ("Users are ordered by their first interaction; the earliest are the source and pretrain the base "
                 "on their interactions up to the start of the target users' held-out period (later source "
                 "interactions are dropped, source_cutoff). Each later user gives its first N interactions for "
                 "fine-tuning, the next for validation and the one after for test. Every arm trains under one budget; "
                 "the best arm is chosen on validation NDCG@10; each arm is compared with scratch by a joint paired "
                 "bootstrap over target users, with Holm-adjusted p-values and Bonferroni-simultaneous intervals.")


def _pretrain_base(ds: Dataset, source, split: Split, data: ArmData, options: ExperimentOptions, device,
                   say: Progress) -> tuple[Arm, Base]:
    """The base: pretrained on the source users only (their last interactions validate it)."""
    base_train, base_valid = holdout_last(source)
    base_split = Split("transfer-source", "source users, last interaction held out for validation",
                       ds.n_users, ds.n_items, base_train, base_valid, split.test)
    say(f"pretraining the {options.family} base on {len(source):,} interactions of {source['u'].nunique():,} source users")
    base_arm = train_arm(ArmSpec("base", "scratch"), options,
                         ArmData(base_split, data.user_ids, data.item_ids, data.item_texts), device, say)
    return base_arm, Base.from_model(base_arm.model, data.user_ids, data.item_ids, name="transfer-source")


def _references(base_arm: Arm, source, target_users: np.ndarray, few_rows: np.ndarray, data: ArmData,
                options: ExperimentOptions, device, say: Progress) -> dict[str, Arm]:
    """no_update (the base as it is), scratch on the shots, retrain on everything, similar users + shots."""
    split = data.split
    references: dict[str, Arm] = {}
    references["no_update"] = Arm("no_update", base_arm.model, 0.0, 0, base_arm.total_params,
                                  notes=["the pretrained base applied to the target users as it is (zero-shot)"])
    say("references")
    near = similar_users(split.train, target_users, source["u"].unique(), split.n_items, options.similar_share,
                         profile_text(options, data.item_texts))
    near_rows = np.concatenate([few_rows, source.loc[source["u"].isin(near), "row"].to_numpy()])
    for spec in (ArmSpec("scratch", "scratch", train_rows=few_rows), ArmSpec("retrain", "scratch"),
                 ArmSpec("similar_users", "scratch", train_rows=near_rows)):
        references[spec.name] = train_arm(spec, options, data, device, say)
    return references
