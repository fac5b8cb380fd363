"""Incremental updates over time (DESIGN.md): a base on the first 60%, then N windows of new data.

After each window every strategy updates its own previous model on that window's data only (its new
users and items make the id tables grow) and is scored on the next window; references retrain from
scratch on everything known, retrain on the new window plus the most similar old users, or keep the
base as it is (`no_update`). Ids are numbered in time order, so the catalogue only ever grows.

Scoring a window: the second half of each user's interactions in it are the targets, predicted from
everything known before plus the first half (context, never trained on), over every item seen so far
(items first seen in the window itself cannot be recommended by a model trained before it). Strategies
are compared with retraining by one joint paired bootstrap over the (window, user) pairs of all
windows that resamples users as clusters, with Holm-adjusted p-values and Bonferroni-simultaneous
intervals; the best strategy is chosen on validation NDCG@10; every arm trains under one budget.
Forgetting: each base-period user's last base interaction is held out of all training and of all
model selection (the probe; the base validates on each user's interaction before it); the probe's
NDCG@10 on the old catalogue before any update minus after the last update is the strategy's
forgetting (positive = it forgot).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recsys_core.bases import Base, initial_model
from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import History, Split, chronological, time_windows
from recsys_core.errors import ConfigError
from recsys_core.eval.evaluator import evaluate
from recsys_core.eval.significance import compare_to_reference
from recsys_core.experiments.common import (Arm, ArmData, ArmSpec, ExperimentOptions, Progress, holdout_last,
                                            pick_best, profile_text, score_arm, similar_users, train_arm,
                                            train_strategies)
from recsys_core.models import family_class, trainable_families
from recsys_core.train.device import device_name, pick_device, seed_everything


def time_ordered(ds: Dataset) -> Dataset:
    """The same data with users and items numbered in order of first appearance in time."""
    frame = chronological(ds.interactions)[["user", "item", "rating", "timestamp"]].reset_index(drop=True)
    return Dataset.from_frame(frame, name=ds.name, has_rating=ds.has_rating, has_timestamp=True,
                              item_table=ds.item_table)


class OldCatalogue:
    """Scores restricted to the first `n_items` items (forgetting is measured on the old catalogue)."""

    def __init__(self, model, n_items: int) -> None:
        self.model, self.n_items = model, n_items

    def full_scores(self, users: np.ndarray, history: History) -> torch.Tensor:
        return self.model.full_scores(users, history)[:, : self.n_items]


def split_window(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's interactions in a window, in time order: the first half is context, the rest are targets
    (a user with one interaction there has it as the target)."""
    ordered = chronological(frame)
    position = ordered.groupby("u", sort=False).cumcount().to_numpy()
    count = ordered.groupby("u", sort=False)["i"].transform("size").to_numpy()
    is_context = position < count // 2
    return ordered[is_context].reset_index(drop=True), ordered[~is_context].reset_index(drop=True)


def window_split(name: str, known: pd.DataFrame, new: pd.DataFrame, upcoming: pd.DataFrame) -> tuple[Split, np.ndarray]:
    """Train on everything known except each user's last new interaction (validation); test on `upcoming`.

    In the upcoming window the second half of each user's interactions are the targets; the first half is
    context (known when predicting, never trained on), so users new in that window are scored too.
    """
    n_items = int(known["i"].max()) + 1
    upcoming = upcoming[upcoming["i"] < n_items]  # items nobody has seen yet cannot be recommended
    n_users = int(max(known["u"].max(), upcoming["u"].max() if len(upcoming) else 0)) + 1
    _, valid = holdout_last(new, min_count=2)
    valid_rows = set(valid["row"].tolist())
    train = known[~known["row"].isin(valid_rows)].reset_index(drop=True)
    context, targets = split_window(upcoming)
    seen = set(zip(known["u"].tolist(), known["i"].tolist())) | set(zip(context["u"].tolist(), context["i"].tolist()))
    has_history = targets["u"].isin(set(known["u"]) | set(context["u"]))
    fresh = np.array([(u, i) not in seen for u, i in zip(targets["u"].tolist(), targets["i"].tolist())], dtype=bool)
    test = targets[has_history.to_numpy() & fresh].drop_duplicates(["u", "i"]).reset_index(drop=True)
    new_rows = new.loc[~new["row"].isin(valid_rows), "row"].to_numpy()
    return Split(name, "all data known so far (each user's last new interaction validates); test: each user's last "
                 "interaction in the next window, their earlier ones there as context",
                 n_users, n_items, train, valid.reset_index(drop=True), test, test_context=context), new_rows


@dataclass
class Incremental:
    """The state an incremental experiment carries from window to window."""

    options: ExperimentOptions
    device: torch.device
    say: Progress
    users: list[str]
    items: list[str]
    texts: list[str] | None
    base_arm: Arm | None = None
    base_ids: tuple[list[str], list[str]] = ((), ())
    current: dict = field(default_factory=dict)  # strategy -> (its latest model, its user ids, its item ids)
    figures: dict = field(default_factory=dict)  # arm -> per-window figures
    results: dict = field(default_factory=dict)  # arm -> per-window per-user results
    finals: dict = field(default_factory=dict)  # arm -> its model after the last window
    skipped: dict = field(default_factory=dict)

    def data(self, split: Split) -> ArmData:
        return ArmData(split, self.users[: split.n_users], self.items[: split.n_items], self.texts)


def run_incremental(ds: Dataset, options: ExperimentOptions, windows: int = 3, base_frac: float = 0.6,
                    progress: Progress | None = None) -> dict:
    if not family_class(options.family).trainable:
        raise ConfigError(f"the incremental experiment updates trainable models; {options.family} is not one "
                          f"(choose from {', '.join(trainable_families())})")
    if windows < 2:
        raise ConfigError("the incremental experiment needs at least 2 windows (update on one, score on the next)")
    started = time.perf_counter()
    device = pick_device(options.device)
    seed_everything(options.seed)
    ds = time_ordered(ds)
    base_frame, parts = time_windows(ds, base_frac, windows)
    base_rest, probe = holdout_last(base_frame)  # the probe never trains or selects anything: it measures forgetting
    state = Incremental(options, device, progress or (lambda m: None), ds.users.ids, ds.items.ids,
                        ds.item_texts() if ds.item_table is not None else None)
    base_split, probe_split = _base_splits(base_rest, probe, parts)
    state.say(f"base: {options.family} on the first {base_frac:.0%} ({len(base_split.train):,} interactions); "
              f"{windows} windows of about {len(parts[0]):,}")
    probe_before = _train_base(state, base_split, probe_split)
    per_window = [{"window": 1, "trained_on": "base period", "test_users": state.base_arm.test.metrics["n_users"],
                   "base": state.base_arm.figures()}]
    known = pd.concat([base_split.train, base_split.valid], ignore_index=True)  # the probe stays out for good
    for t in range(1, windows):
        new = parts[t - 1][~parts[t - 1]["row"].isin(set(probe["row"]))]
        known = pd.concat([known, new], ignore_index=True)
        per_window.append(_update_window(state, t, known, new, parts[t]))
    protocol = {"name": "incremental", "windows": windows, "base_frac": base_frac, "model": options.family,
                "base_interactions": int(len(base_split.train)), "probe_users": int(len(probe)),
                "selected_on": "valid",
                "device": device_name(device), "description": __doc__.split("\n\n")[1].replace("\n", " ")}
    result = _incremental_result(state, protocol, per_window, probe_split, probe_before)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _base_splits(base_rest: pd.DataFrame, probe: pd.DataFrame, parts: list[pd.DataFrame]) -> tuple[Split, Split]:
    """The base's split and the probe split that measures forgetting on old items.

    The base validates on each user's interaction before the probe one, so the probe is never used to
    select anything.
    """
    base_train, base_valid = holdout_last(base_rest)
    base_split, _ = window_split("incremental-base", base_train, base_train.iloc[:0], parts[0])
    base_split.valid = base_valid[base_valid["i"] < base_split.n_items].reset_index(drop=True)
    probe = probe[probe["i"] < base_split.n_items].reset_index(drop=True)
    probe_split = Split("probe", "each base user's last base-period interaction (never trained on or selected with)",
                        base_split.n_users, base_split.n_items, base_rest, probe, probe)
    return base_split, probe_split


def _train_base(state: Incremental, base_split: Split, probe_split: Split) -> float:
    """Train and score the base; every strategy starts from it. Returns its probe NDCG@10."""
    options, data = state.options, state.data(base_split)
    state.base_ids = (data.user_ids, data.item_ids)
    state.base_arm = train_arm(ArmSpec("base", "scratch"), options, data, state.device, state.say)
    score_arm(state.base_arm, base_split)
    state.current = {name: (state.base_arm.model, *state.base_ids) for name in options.strategies}
    return evaluate(OldCatalogue(state.base_arm.model, probe_split.n_items), probe_split, "valid").metrics["ndcg@10"]


def _window_references(state: Incremental, split: Split, known: pd.DataFrame, new: pd.DataFrame,
                       new_rows: np.ndarray) -> dict[str, Arm]:
    """no_update (the base as it is), retrain on everything known, and new data plus the most similar old users."""
    options, data = state.options, state.data(split)
    arms: dict[str, Arm] = {}
    base_now, _ = initial_model(options.family, Base.from_model(state.base_arm.model, *state.base_ids), split.n_users,
                                split.n_items, {}, data.user_ids, data.item_ids, state.texts)
    arms["no_update"] = Arm("no_update", base_now, 0.0, 0, state.base_arm.total_params)
    arms["retrain"] = train_arm(ArmSpec("retrain", "scratch"), options, data, state.device, state.say)
    old_users = known.loc[~known["row"].isin(set(new_rows)), "u"].unique()
    near = similar_users(split.train, new["u"].unique(), np.setdiff1d(old_users, new["u"].unique()),
                         split.n_items, options.similar_share,
                         profile_text(options, state.texts[: split.n_items] if state.texts else None))
    near_rows = np.concatenate([new_rows, split.train.loc[split.train["u"].isin(near), "row"].to_numpy()])
    arms["similar_users"] = train_arm(ArmSpec("similar_users", "scratch", train_rows=near_rows), options, data,
                                      state.device, state.say)
    return arms


def _update_window(state: Incremental, t: int, known: pd.DataFrame, new: pd.DataFrame,
                   upcoming: pd.DataFrame) -> dict:
    """Update every arm on window t's new data and score it on window t + 1; returns the window's row."""
    options = state.options
    split, new_rows = window_split(f"window-{t + 1}", known, new, upcoming)
    data = state.data(split)
    state.say(f"window {t + 1}: update on {len(new):,} new interactions; score {split.test['u'].nunique():,} users "
              f"on the next window ({split.n_users:,} users, {split.n_items:,} items known)")
    arms = _window_references(state, split, known, new, new_rows)

    def spec_for(name: str) -> ArmSpec:
        prev, prev_users, prev_items = state.current[name]
        return ArmSpec(name, options.strategy_spec(name), Base.from_model(prev, prev_users, prev_items),
                       train_rows=new_rows, new_rows=new_rows)

    updated, state.skipped = train_strategies(options, spec_for, data, state.device, state.say, skip=state.skipped)
    for name, arm in updated.items():
        state.current[name] = (arm.model, data.user_ids, data.item_ids)
    arms.update(updated)
    row = {"window": t + 1, "trained_on": f"window {t}", "new_interactions": int(len(new)),
           "test_users": int(split.test["u"].nunique())}
    for name, arm in arms.items():
        score_arm(arm, split)
        row[name] = arm.figures()
        state.figures.setdefault(name, []).append(arm.figures())
        state.results.setdefault(name, []).append(arm.test.per_user.assign(window=t + 1))
        state.finals[name] = arm.model
    return row


def _incremental_result(state: Incremental, protocol: dict, per_window: list[dict], probe_split: Split,
                        probe_before: float) -> dict:
    forgetting = {}
    for name, model in state.finals.items():
        after = evaluate(OldCatalogue(model, probe_split.n_items), probe_split, "valid").metrics["ndcg@10"]
        forgetting[name] = {"before": round(probe_before, 6), "after": round(after, 6),
                            "drop": round(probe_before - after, 6)}
    options, figures, results = state.options, state.figures, state.results
    strategies = {n: _average(figures[n]) for n in options.strategies if n in figures}
    references = {n: _average(figures[n]) for n in ("retrain", "no_update", "similar_users")}
    result = {
        "protocol": protocol,
        "base": {"seconds": round(state.base_arm.seconds, 2), "epochs_run": state.base_arm.epochs,
                 "best_epoch": state.base_arm.best_epoch},
        "strategies": strategies,
        "references": references,
        "windows": per_window,
        "forgetting": {n: f["drop"] for n, f in forgetting.items()},
        "reference": "retrain",
        "selected_on": "valid",
        "budget": options.budget(),
        "vs_retrain": pooled_versus({n: r for n, r in results.items() if n != "retrain"}, results["retrain"],
                                    options.seed),
        "forgetting_detail": forgetting,
        "skipped": state.skipped,
    }
    best = pick_best(strategies)
    result["best"] = best
    if best is not None:
        retrain = references["retrain"]
        result["best_vs_retrain"] = {
            "ndcg_ratio": round(strategies[best]["ndcg@10"] / max(retrain["ndcg@10"], 1e-12), 4),
            "time_ratio": round(strategies[best]["seconds"] / max(retrain["seconds"], 1e-12), 4),
            "beats_no_update": strategies[best]["ndcg@10"] > references["no_update"]["ndcg@10"],
            "significant": result["vs_retrain"].get(best, {}).get("significant", False)}
    return result


def pooled_versus(arms: dict[str, list[pd.DataFrame]], reference: list[pd.DataFrame], seed: int = 0) -> dict:
    """Each arm minus the reference in NDCG@10 over every (window, user) pair of all windows.

    One joint bootstrap resamples users as clusters (a user scored in several windows carries all of them),
    with Holm-adjusted p-values and simultaneous intervals over the len(arms) comparisons.
    """
    ref = pd.concat(reference, ignore_index=True)[["window", "u", "ndcg@10"]]
    keys = ref[["window", "u"]]
    for frames in arms.values():
        keys = pd.concat([keys, pd.concat(frames, ignore_index=True)[["window", "u"]]]).drop_duplicates()
    keys = keys.sort_values(["window", "u"]).reset_index(drop=True)

    def aligned(frames: list[pd.DataFrame]) -> np.ndarray:
        frame = pd.concat(frames, ignore_index=True)[["window", "u", "ndcg@10"]]
        return keys.merge(frame, on=["window", "u"], how="left")["ndcg@10"].fillna(0.0).to_numpy()

    return compare_to_reference({n: aligned(f) for n, f in arms.items()}, aligned(reference),
                                clusters=keys["u"].to_numpy(), seed=seed)


def _average(rows: list[dict]) -> dict:
    """Mean of each figure over the windows (parameter counts: the last window's)."""
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if isinstance(values[0], dict):
            out[key] = _average(values) if values[0] else {}
            out[key].pop("n_windows", None)
        else:
            out[key] = values[-1] if key in ("trainable_params", "total_params") else round(float(np.mean(values)), 6)
    out["n_windows"] = len(rows)
    return out
