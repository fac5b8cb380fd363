"""Prequential (evaluate-then-train) replay: how quality drifts over time with no updates, periodic retraining,
or streaming incremental updates.

Interactions are replayed in time order after a base trained on the first `start_frac` of them. The
rest are cut into `updates` equal chunks. Every event is first scored by each arm's current model (the
rank of the item the user picked, over the full catalogue the model knows, excluding what the user
did before; the context is refreshed every `score_batch` events), and only after its chunk has been
scored do the arms learn from it: `streaming` updates its previous model on the chunk alone with the
incremental strategy (growth, replay, L2-SP); `retrain` trains from scratch on everything known every
`retrain_every` chunks; `no_update` keeps the base. A user or item a model has no row for scores 0
(except for families that score from history alone). Every training shares one budget. The arms are
compared with `retrain` by a paired bootstrap over events that resamples users, Holm-adjusted.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from recsys_core.bases import Base
from recsys_core.data.dataset import Dataset
from recsys_core.data.splits import History, chronological
from recsys_core.errors import ConfigError
from recsys_core.eval.pointwise import ndcg_at, target_ranks
from recsys_core.eval.significance import compare_to_reference
from recsys_core.experiments.common import ArmData, ArmSpec, ExperimentOptions, Progress, train_arm
from recsys_core.experiments.incremental import time_ordered, window_split
from recsys_core.models import family_class
from recsys_core.train.device import device_name, pick_device, seed_everything

ARMS = ("no_update", "retrain", "streaming")
CURVE_BINS = 20


def _history(frame: pd.DataFrame, n_users: int, n_items: int) -> History:
    return History(frame[frame["i"] < n_items], n_users, n_items)


def score_events(model, known: pd.DataFrame, events: pd.DataFrame, n_users: int, score_batch: int) -> np.ndarray:
    """Per-event NDCG@10 of `model` on `events`, each scored from what was known before its batch."""
    alone = family_class(model.family).scores_from_history_alone
    out = np.zeros(len(events))
    for lo in range(0, len(events), score_batch):
        part = events.iloc[lo: lo + score_batch]
        context = pd.concat([known, events.iloc[:lo]], ignore_index=True) if lo else known
        history = _history(context, n_users, model.n_items)
        users = part["u"].to_numpy().copy()
        items = part["i"].to_numpy().copy()
        if not alone:
            users[users >= model.n_users] = -1  # no row for this user yet: the model could not recommend to them
        items[items >= model.n_items] = -1
        out[lo: lo + len(part)] = ndcg_at(target_ranks(model, history, users, items))
    return out


def _train(name: str, strategy: str, options: ExperimentOptions, known: pd.DataFrame, new: pd.DataFrame, ids,
           device: torch.device, say: Progress, base: Base | None = None):
    split, new_rows = window_split(f"prequential-{name}", known, new, known.iloc[:0])
    users, items, texts = ids
    data = ArmData(split, users[: split.n_users], items[: split.n_items], texts)
    spec = ArmSpec(name, strategy, base, train_rows=new_rows, new_rows=new_rows) if base is not None else \
        ArmSpec(name, strategy)
    arm = train_arm(spec, options, data, device, say)
    return arm, (data.user_ids, data.item_ids)


def run_prequential(ds: Dataset, options: ExperimentOptions, start_frac: float = 0.6, updates: int = 8,
                    retrain_every: int = 1, score_batch: int = 500, progress: Progress | None = None) -> dict:
    if not family_class(options.family).trainable:
        raise ConfigError(f"the prequential replay updates a trainable model; {options.family} is fitted in closed form",
                          field="family")
    if updates < 1 or retrain_every < 1 or not 0.1 <= start_frac <= 0.95:
        raise ConfigError("need updates >= 1, retrain_every >= 1 and start_frac in [0.1, 0.95]")
    say, started, device = progress or (lambda m: None), time.perf_counter(), pick_device(options.device)
    seed_everything(options.seed)
    ds = time_ordered(ds)
    ordered = chronological(ds.interactions)[["u", "i", "rating", "timestamp", "row"]].reset_index(drop=True)
    cut = int(len(ordered) * start_frac)
    bounds = np.linspace(cut, len(ordered), updates + 2).astype(int)
    known = ordered.iloc[:cut]
    chunks = [ordered.iloc[lo:hi].reset_index(drop=True) for lo, hi in zip(bounds[:-1], bounds[1:])]
    ids = (ds.users.ids, ds.items.ids, ds.item_texts() if ds.item_table is not None else None)
    say(f"base: {options.family} on the first {start_frac:.0%} ({cut:,} interactions); replaying {len(ordered) - cut:,} "
        f"events in {updates + 1} chunks, updating after each of the first {updates}")
    base, base_ids = _train("base", "scratch", options, known, known, ids, device, say)
    current = {arm: (base.model, base_ids) for arm in ARMS}
    scores = {arm: [] for arm in ARMS}
    cost = {arm: [] for arm in ARMS}
    for c, chunk in enumerate(chunks):
        n_users = int(max(known["u"].max(), chunk["u"].max())) + 1
        for arm in ARMS:
            scores[arm].append(score_events(current[arm][0], known, chunk, n_users, score_batch))
        say(f"chunk {c + 1}/{len(chunks)}: " + ", ".join(f"{a} {scores[a][-1].mean():.4f}" for a in ARMS))
        if c == len(chunks) - 1:
            break
        seen = pd.concat([known, chunk], ignore_index=True)
        model, model_ids = current["streaming"]
        arm, new_ids = _train("streaming", "incremental", options, seen, chunk, ids, device, say,
                              Base.from_model(model, *model_ids))
        current["streaming"] = (arm.model, new_ids)
        cost["streaming"].append({"after_chunk": c + 1, "seconds": round(arm.seconds, 2),
                                  "trainable_params": arm.trainable_params, "trained_rows": int(len(chunk))})
        if (c + 1) % retrain_every == 0:
            arm, new_ids = _train("retrain", "scratch", options, seen, chunk, ids, device, say)
            current["retrain"] = (arm.model, new_ids)
            cost["retrain"].append({"after_chunk": c + 1, "seconds": round(arm.seconds, 2),
                                    "trainable_params": arm.trainable_params, "trained_rows": int(len(seen))})
        known = seen
    stream = pd.concat(chunks, ignore_index=True)
    protocol = {"name": "prequential", "model": options.family, "start_frac": start_frac, "updates": updates,
                "retrain_every": retrain_every, "score_batch": score_batch, "base_interactions": cut,
                "stream_events": int(len(stream)), "budget": options.budget(), "device": device_name(device),
                "description": " ".join(__doc__.split("\n\n")[1].split())}
    result = _result(protocol, stream, {a: np.concatenate(s) for a, s in scores.items()}, cost, options.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["base"] = {"seconds": round(base.seconds, 2), "epochs_run": base.epochs, "best_epoch": base.best_epoch}
    return result


def _result(protocol: dict, stream: pd.DataFrame, ndcg: dict[str, np.ndarray], cost: dict, seed: int) -> dict:
    users = stream["u"].to_numpy()
    bins = np.array_split(np.arange(len(stream)), CURVE_BINS)
    curve = [{"bin": b + 1, "events": int(len(idx)), "t_start": float(stream["timestamp"].iloc[idx[0]]),
              "t_end": float(stream["timestamp"].iloc[idx[-1]]), **{a: round(float(v[idx].mean()), 6) for a, v in ndcg.items()}}
             for b, idx in enumerate(bins) if len(idx)]
    arms = {a: {"ndcg@10": round(float(v.mean()), 6), "events": int(len(v)), "versions": len(cost[a]),
                "update_seconds": round(sum(c["seconds"] for c in cost[a]), 2),
                "seconds_per_update": round(float(np.mean([c["seconds"] for c in cost[a]])), 2) if cost[a] else 0.0,
                "updates": cost[a]} for a, v in ndcg.items()}
    versus = compare_to_reference({a: ndcg[a] for a in ARMS if a != "retrain"}, ndcg["retrain"], clusters=users, seed=seed)
    return {"protocol": protocol, "arms": arms, "curve": curve, "reference": "retrain", "vs_retrain": versus,
            "selected_on": "none (every arm is reported; nothing is chosen)"}


def prequential_table(result: dict) -> str:
    """The replay's figures as text: mean NDCG@10 per arm, its update cost, and the comparison with retraining."""
    proto = result["protocol"]
    lines = [f"prequential replay, {proto['model']} on {result.get('data', '?')}: base on the first "
             f"{proto['start_frac']:.0%}, {proto['stream_events']:,} events scored before learning from them, "
             f"{proto['updates']} updates ({result.get('seconds', 0):.0f}s on {proto['device']})",
             f"{'arm':<10} {'ndcg@10':>8} {'versions':>8} {'s/update':>9} {'update s':>9}  vs retrain (simultaneous 95%, Holm)"]
    for name, arm in result["arms"].items():
        versus = result["vs_retrain"].get(name)
        tail = "" if versus is None else (
            f"{versus['diff']:+.4f} [{versus['ci_low_adj']:+.4f}, {versus['ci_high_adj']:+.4f}] "
            f"{'significant' if versus['significant'] else 'no significant difference'}")
        lines.append(f"{name:<10} {arm['ndcg@10']:>8.4f} {arm['versions']:>8} {arm['seconds_per_update']:>9.2f} "
                     f"{arm['update_seconds']:>9.1f}  {tail}")
    return "\n".join(lines)
