"""Splits follow DESIGN.md's protocol; IdMap grows without renumbering."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_core.data import Dataset, IdMap, leave_last_out
from recsys_core.data.splits import random_split, temporal_cutoff, time_windows, user_group_split
from recsys_core.errors import UnknownIdError
from tests.conftest import make_interactions


def _ds(frame: pd.DataFrame) -> Dataset:
    return Dataset.from_frame(frame.rename(columns={"user_id": "user", "item_id": "item"}))


def test_leave_last_out_takes_last_two_by_time_with_stable_ties() -> None:
    frame = pd.DataFrame({"user": ["a"] * 5 + ["b"] * 2,
                          "item": ["p", "q", "r", "s", "t", "p", "q"],
                          "timestamp": [5, 1, 9, 9, 3, 1, 2]})
    sp = leave_last_out(Dataset.from_frame(frame))
    items = Dataset.from_frame(frame).items
    # user a by time: q(1) t(3) p(5) r(9) s(9); r and s tie and keep file order, so s is last
    assert items.raws(sp.test["i"]) == ["s"] and items.raws(sp.valid["i"]) == ["r"]
    assert sorted(items.raws(sp.train[sp.train["u"] == 0]["i"])) == ["p", "q", "t"]
    assert (sp.train["u"] == 1).sum() == 2  # b has fewer than 3 interactions: training only
    assert sp.meta["train_only_users"] == 1
    assert sp.name == "leave-last-out"


def test_no_timestamps_falls_back_to_seeded_random_and_says_so() -> None:
    frame = make_interactions().drop(columns="timestamp")
    ds = _ds(frame)
    a, b = leave_last_out(ds, seed=3), leave_last_out(ds, seed=3)
    assert a.name == "random-leave-one-out" and "no timestamps" in a.description
    assert a.test.equals(b.test)
    assert not a.test.equals(leave_last_out(ds, seed=4).test)


def test_every_split_partitions_the_interactions() -> None:
    ds = _ds(make_interactions())
    for sp in (leave_last_out(ds), temporal_cutoff(ds), random_split(ds, seed=1), user_group_split(ds, shots=3)):
        rows = np.concatenate([sp.train["row"], sp.valid["row"], sp.test["row"]])
        assert len(rows) == len(set(rows)), sp.name
        if sp.name != "user-group":  # user-group drops target users' interactions after shots + 2
            assert len(rows) == len(ds), sp.name


def test_temporal_cutoff_is_ordered_in_time() -> None:
    sp = temporal_cutoff(_ds(make_interactions()), valid_frac=0.1, test_frac=0.2)
    assert sp.train["timestamp"].max() <= sp.valid["timestamp"].min() <= sp.test["timestamp"].min()


def test_user_group_split_follows_the_transfer_protocol() -> None:
    ds = _ds(make_interactions(n_users=20, per_user=10))
    sp = user_group_split(ds, source_frac=0.8, shots=4)
    first_time = ds.interactions.groupby("u")["timestamp"].min().sort_values()
    source = set(first_time.index[:16])
    target = set(sp.test["u"])
    assert not (source & target) and len(target) == 4
    for u in target:
        few = sp.train[sp.train["u"] == u].sort_values("timestamp")
        assert len(few) == 4
        assert few["timestamp"].max() < sp.valid[sp.valid["u"] == u]["timestamp"].iloc[0] < sp.test[sp.test["u"] == u]["timestamp"].iloc[0]


def test_time_windows_cover_the_rest_in_order() -> None:
    ds = _ds(make_interactions())
    base, windows = time_windows(ds, base_frac=0.6, n_windows=3)
    assert len(base) + sum(len(w) for w in windows) == len(ds)
    assert base["timestamp"].max() <= windows[0]["timestamp"].min()
    assert windows[0]["timestamp"].max() <= windows[1]["timestamp"].min()


def test_history_sequences_are_in_time_order() -> None:
    ds = _ds(make_interactions())
    sp = leave_last_out(ds)
    seq = sp.train_history.sequences[0]
    expect = sp.train[sp.train["u"] == 0].sort_values(["timestamp", "row"])["i"].to_numpy()
    assert np.array_equal(seq, expect)
    assert sp.train_history.csr.shape == (ds.n_users, ds.n_items)


def test_idmap_grows_without_renumbering() -> None:
    m = IdMap(["a", "b", "c"], kind="user")
    before = {k: m.index(k) for k in "abc"}
    assert m.add(["c", "d", "a", "e"]) == 2
    assert {k: m.index(k) for k in "abc"} == before
    assert m.index("d") == 3 and m.index("e") == 4
    assert list(m.indices(["e", "a", "zz"], missing="minus_one")) == [4, 0, -1]
    with pytest.raises(UnknownIdError, match="unknown user 'zz'"):
        m.index("zz")
    assert IdMap.from_list(m.to_list()) == m


def test_dataset_grows_id_maps_when_new_data_arrives() -> None:
    old = _ds(make_interactions(n_users=5))
    new_frame = pd.DataFrame({"user": ["u0", "new_user"], "item": ["brand_new", "i1"]})
    new = Dataset.from_frame(new_frame, users=old.users, items=old.items)
    assert new.users.ids[: old.n_users] == old.users.ids
    assert new.items.ids[: old.n_items] == old.items.ids
    assert new.n_users == old.n_users + 1 and new.n_items == old.n_items + 1
