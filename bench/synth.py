"""Realistic synthetic interaction logs, for load and scale benchmarks.

    python bench/synth.py --users U --items I --rows N --out PATH [--seed S]
                          [--format csv|tsv|parquet] [--no-timestamp] [--no-rating]

The model of the data (every step vectorised with numpy; the only Python loop is over topics):

* Catalogue: each item belongs to one of K=32 latent topics (topic sizes uneven, Dirichlet) and has a
  Zipf-like popularity weight ~ 1/(rank+2)^1.05, so a few head items take a large share of events.
* Activity: events per user are lognormal (heavy-tailed), at least 3 each, capped at a quarter of the
  catalogue, and scaled so that they sum to exactly `rows`.
* Taste: each user has a sparse Dirichlet mix over topics (usually 1-4 topics carry the mass) and a
  "mainstream" share (Beta, mean ~0.2) of events drawn from global popularity instead of a topic.
  An event picks a topic from the mix, then an item by popularity within that topic, so collaborative
  models have co-occurrence structure to learn.
* Repeats: repeated (user, item) pairs are redrawn a few rounds (flatter within the topic, then
  uniform), so the leftover share is tiny; it is kept in `frame.attrs["repeat_share"]`.
* Time: ~3 years from 2020-01-01; sign-ups skew late (platform growth); each user is active in a
  window that grows with their activity; gaps inside it are lognormal (bursty sessions); events of one
  topic cluster in time (interest phases), which gives sequential models a signal. Timestamps are
  strictly increasing within a user.
* Ratings: user bias + item quality + affinity of the user for the item's topic + noise, clipped to
  0.5..5; most users rate in whole stars, about a third use half stars.

Ids are 1-based shuffled integers, so neither id order nor file order gives popularity away. Rows come
grouped per user (users in random id order), in time order within each user.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

TOPICS = 32
MIN_EVENTS = 3
START = 1_577_836_800  # 2020-01-01 UTC
SPAN = 3 * 365 * 86_400
DAY = 86_400
REDRAW_ROUNDS = 8


class Catalogue(NamedTuple):  # NamedTuple, not dataclass: loads fine via importlib without sys.modules
    ids: np.ndarray              # public item id per item index
    topic: np.ndarray            # topic per item index
    members: list[np.ndarray]    # item indices per topic; entry TOPICS is the whole catalogue
    cdfs: list[np.ndarray]       # popularity CDF over `members`, same indexing
    quality: np.ndarray          # rating bias per item index
    mass: np.ndarray             # popularity mass per topic (how much demand the topic draws)


def _streams(seed: int) -> list[np.random.Generator]:
    # Separate streams per component: the catalogue depends on (seed, items) only, so item_topics()
    # can rebuild it without generating the events.
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]


def _catalogue(items: int, rng: np.random.Generator) -> Catalogue:
    k = min(TOPICS, max(1, items // 8))
    share = rng.dirichlet(np.full(k, 2.0))
    topic = rng.choice(k, size=items, p=share).astype(np.int16)
    rank = rng.permutation(items)  # popularity rank independent of topic: every topic has its own head
    pop = 1.0 / (rank + 2.0) ** 1.05
    members, cdfs = [], []
    order = np.argsort(topic, kind="stable")
    bounds = np.searchsorted(topic[order], np.arange(TOPICS + 1))
    for t in range(TOPICS):
        idx = order[bounds[t]:bounds[t + 1]]
        if idx.size == 0:  # tiny catalogues have fewer topics; fall back to everything
            idx = np.arange(items)
        members.append(idx)
        cdfs.append(_cdf(pop[idx]))
    members.append(np.arange(items))
    cdfs.append(_cdf(pop))
    # Popular items are rated a little higher on average (selection effect), plus per-item noise.
    logp = np.log(pop)
    quality = 0.3 * rng.standard_normal(items) + 0.15 * (logp - logp.mean()) / (logp.std() + 1e-9)
    ids = rng.permutation(items).astype(np.int64) + 1
    mass = np.bincount(topic, weights=pop, minlength=TOPICS) / pop.sum()
    return Catalogue(ids, topic, members, cdfs, quality, mass)


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _activity(users: int, rows: int, items: int, rng: np.random.Generator) -> np.ndarray:
    """Events per user: lognormal weights, water-filled under a cap, summing exactly to `rows`."""
    if rows < MIN_EVENTS * users:
        raise ValueError(f"rows ({rows}) must be at least {MIN_EVENTS} x users ({users})")
    cap = max(items // 4, 2 * -(-rows // users), MIN_EVENTS)  # nobody can sensibly touch the whole catalogue
    w = rng.lognormal(0.0, 1.2, users)
    extra, room = rows - MIN_EVENTS * users, cap - MIN_EVENTS
    lo, hi = 0.0, extra / w.min() + 1.0
    for _ in range(100):  # bisection on the scale s with sum(min(s*w, room)) == extra
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(mid * w, room).sum() < extra else (lo, mid)
    share = np.minimum(lo * w, room)
    counts = np.floor(share).astype(np.int64)
    rem = int(extra - counts.sum())
    if rem > 0:  # largest remainders get the leftover events
        counts[np.argpartition(counts - share, rem - 1)[:rem]] += 1
    return counts + MIN_EVENTS


def _tastes(users: int, catalogue: Catalogue, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Prior proportional to the topic's popularity mass, so an item's overall share stays ~ its
    # popularity; the small total concentration (1.5) keeps each user's mix on a few topics.
    prior = catalogue.mass + 1e-4  # unused topics (tiny catalogues) get ~no fans
    mix = rng.dirichlet(1.5 * prior / prior.sum(), size=users)
    mainstream = rng.beta(2.0, 8.0, users)
    return mix, mainstream


def _pick_topics(user: np.ndarray, mix: np.ndarray, mainstream: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """A topic per event from its user's mix; TOPICS means 'global popularity'."""
    users, k = mix.shape
    cum = np.cumsum(mix, axis=1)
    cum[:, -1] = 1.0
    # Offset row u by u so all rows form one increasing array: one searchsorted samples every event.
    flat = (cum + np.arange(users)[:, None]).ravel()
    pos = np.searchsorted(flat, user + rng.random(user.size), side="right")
    topic = np.clip(pos - user.astype(np.int64) * k, 0, k - 1).astype(np.int16)
    topic[rng.random(user.size) < mainstream[user]] = TOPICS
    return topic


def _draw_items(topic: np.ndarray, catalogue: Catalogue, rng: np.random.Generator,
                flatten: int = 0) -> np.ndarray:
    """Items for events given their topic: by popularity (flatten 0), uniform in topic (1), uniform (2)."""
    if flatten == 2:
        return rng.integers(0, catalogue.ids.size, topic.size, dtype=np.int64)
    item = np.empty(topic.size, dtype=np.int64)
    order = np.argsort(topic, kind="stable")
    bounds = np.searchsorted(topic[order], np.arange(TOPICS + 2))
    for t in range(TOPICS + 1):
        rows = order[bounds[t]:bounds[t + 1]]
        if rows.size:
            members = catalogue.members[t]
            if flatten:
                pos = rng.integers(0, members.size, rows.size)
            else:
                pos = np.minimum(np.searchsorted(catalogue.cdfs[t], rng.random(rows.size), side="right"),
                                 members.size - 1)
            item[rows] = members[pos]
    return item


def _repeats(key: np.ndarray) -> np.ndarray:
    """Positions whose key already occurred earlier (the first occurrence is kept)."""
    order = np.argsort(key, kind="stable")
    same = key[order[1:]] == key[order[:-1]]
    return order[1:][same]


def _dedupe(user: np.ndarray, topic: np.ndarray, item: np.ndarray, catalogue: Catalogue,
            rng: np.random.Generator) -> int:
    """Redraw repeated (user, item) pairs in place; returns how many repeats are left."""
    n_items = catalogue.ids.size
    rows = np.arange(user.size)  # only users that had repeats need checking again
    for r in range(REDRAW_ROUNDS):
        key = user[rows].astype(np.int64) * n_items + item[rows]
        dup = rows[_repeats(key)]
        if dup.size == 0 or r == REDRAW_ROUNDS - 1:
            return int(dup.size)
        # Popular items collide again for heavy users, so later rounds draw flatter.
        item[dup] = _draw_items(topic[dup], catalogue, rng, flatten=0 if r < 2 else 1 if r < 5 else 2)
        touched = np.zeros(int(user[-1]) + 1, dtype=bool)
        touched[user[dup]] = True
        rows = rows[touched[user[rows]]]
    return 0


def _phase_order(user: np.ndarray, topic: np.ndarray, users: int, rng: np.random.Generator) -> np.ndarray:
    """Row order within each user so that one topic's events cluster in time (interest phases)."""
    phase = rng.random((users, TOPICS + 1))
    when = phase[user, topic] + 0.35 * rng.random(user.size)
    when[topic == TOPICS] = 1.35 * rng.random(int((topic == TOPICS).sum()))  # mainstream: any time
    return np.argsort(user + when / 1.36)


def _timestamps(user: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strictly increasing unix seconds within each user, for rows already grouped per user."""
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # Window length grows sublinearly with activity; heavy users stay for years, light ones for weeks.
    window = DAY * 20 * rng.lognormal(0.0, 1.0, counts.size) * np.sqrt(counts / MIN_EVENTS)
    window = np.clip(window, np.maximum(DAY, 600 * counts), SPAN)
    start = (SPAN - window) * rng.beta(1.6, 1.0, counts.size)  # sign-ups skew late: the platform grows
    gap = rng.lognormal(0.0, 2.0, user.size)  # heavy-tailed gaps: bursts of activity, long pauses
    cs = np.cumsum(gap)
    before = np.where(first > 0, cs[first - 1], 0.0)
    total = cs[first + counts - 1] - before + rng.lognormal(0.0, 2.0, counts.size)
    frac = (cs - before[user]) / total[user]
    rank = np.arange(user.size) - first[user]
    # floor(frac * (window - n)) is non-decreasing and rank strictly increasing: their sum is strict.
    offset = np.floor(frac * (window - counts)[user]).astype(np.int64) + rank
    return START + np.floor(start).astype(np.int64)[user] + offset


def _ratings(user: np.ndarray, item: np.ndarray, mix: np.ndarray, catalogue: Catalogue,
             rng: np.random.Generator) -> np.ndarray:
    users = mix.shape[0]
    affinity = mix[user, catalogue.topic[item]]
    bias = 0.45 * rng.standard_normal(users)
    raw = (3.3 + bias[user] + catalogue.quality[item] + 1.4 * (affinity - 0.35)
           + 0.75 * rng.standard_normal(user.size))
    halves = rng.random(users) < 0.35  # most people rate in whole stars
    whole = np.clip(np.round(raw), 1.0, 5.0)
    half = np.clip(np.round(raw * 2.0) / 2.0, 0.5, 5.0)
    return np.where(halves[user], half, whole)


def generate(users: int, items: int, rows: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic log: user_id, item_id (int64), rating (float), timestamp (int64), see module doc."""
    rng_cat, rng_act, rng_taste, rng_item, rng_time, rng_rate = _streams(seed)
    catalogue = _catalogue(items, rng_cat)
    counts = _activity(users, rows, items, rng_act)
    mix, mainstream = _tastes(users, catalogue, rng_taste)
    user = np.repeat(np.arange(users, dtype=np.int32), counts)
    topic = _pick_topics(user, mix, mainstream, rng_taste)
    item = _draw_items(topic, catalogue, rng_item)
    left = _dedupe(user, topic, item, catalogue, rng_item)
    order = _phase_order(user, topic, users, rng_time)
    item, topic = item[order], topic[order]  # user stays grouped: the sort key starts with the user
    del order
    timestamp = _timestamps(user, counts, rng_time)
    rating = _ratings(user, item, mix, catalogue, rng_rate)
    user_ids = rng_act.permutation(users).astype(np.int64) + 1
    frame = pd.DataFrame({"user_id": user_ids[user], "item_id": catalogue.ids[item],
                          "rating": rating, "timestamp": timestamp})
    frame.attrs["repeat_share"] = left / rows
    return frame


def item_topics(items: int, seed: int = 0) -> pd.Series:
    """The latent topic of every item id for generate(..., items, seed=seed): the ground truth."""
    catalogue = _catalogue(items, _streams(seed)[0])
    return pd.Series(catalogue.topic.astype(np.int64), index=pd.Index(catalogue.ids, name="item_id"),
                     name="topic")


def write(frame: pd.DataFrame, path: str | Path, fmt: str) -> None:
    """Write with pyarrow (columnar, no per-row Python): fmt is csv, tsv or parquet."""
    import pyarrow as pa  # lazy: only writing needs it, generate() is pure numpy
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if fmt == "parquet":
        pq.write_table(table, str(path))
    elif fmt in ("csv", "tsv"):
        options = pcsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ",", quoting_style="none",
                                    quoting_header="none", batch_size=1 << 16)  # plain header, big batches
        pcsv.write_csv(table, str(path), options)
    else:
        raise ValueError(f"unknown format {fmt!r}: use csv, tsv or parquet")


def _format_of(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("csv", "tsv", "parquet"):
        raise SystemExit(f"cannot tell the format from {path.name!r}: pass --format csv|tsv|parquet")
    return suffix


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("csv", "tsv", "parquet"))
    p.add_argument("--no-timestamp", action="store_true",
                   help="drop the timestamp column; rows stay grouped per user in time order")
    p.add_argument("--no-rating", action="store_true", help="drop the rating column (implicit feedback)")
    args = p.parse_args()
    fmt = _format_of(args.out, args.format)
    began = time.perf_counter()
    frame = generate(args.users, args.items, args.rows, args.seed)
    share = frame.attrs["repeat_share"]
    drop = [c for c, off in (("timestamp", args.no_timestamp), ("rating", args.no_rating)) if off]
    if drop:
        frame = frame.drop(columns=drop)
    n_items = int(np.count_nonzero(np.bincount(frame["item_id"].to_numpy())))  # ids are 1..n: O(rows)
    n_users = int(np.count_nonzero(np.bincount(frame["user_id"].to_numpy())))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(frame, args.out, fmt)
    print(f"synth: {len(frame):,} rows, {n_users:,} users, {n_items:,} items present, "
          f"{share:.3%} repeated pairs, {time.perf_counter() - began:.1f} s -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
