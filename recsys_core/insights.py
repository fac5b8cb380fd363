"""What the studio shows about trained runs (UI-free): one user's recommendations explained, every user's
top-K, metrics by segment, paired comparisons of two runs, and item-embedding maps before/after fine-tuning."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recsys_core.data.dataset import Dataset
from recsys_core.data.source import DataSource
from recsys_core.data.splits import Split
from recsys_core.errors import RecTuneError
from recsys_core.eval.segments import activity_segments, segment_summary
from recsys_core.eval.significance import paired_bootstrap
from recsys_core.recommend import recommend
from recsys_core.runs.finished import FinishedRun
from recsys_core.storage.rundir import RunDir


def _similarity_rows(loaded: FinishedRun, items: np.ndarray, history_items: np.ndarray) -> np.ndarray:
    """Similarity of each item in `items` to each history item: model embeddings, else co-occurrence cosine."""
    vecs = loaded.model.item_embedding_matrix()
    if vecs is not None:
        v = torch.nn.functional.normalize(vecs, dim=-1)
        return (v[torch.as_tensor(np.array(items))] @ v[torch.as_tensor(np.array(history_items))].T).numpy()
    m = loaded.split.train_history.csr.tocsc().astype(np.float32)
    a, b = m[:, items], m[:, history_items]
    norms_a = np.sqrt(np.asarray(a.multiply(a).sum(0))).ravel() + 1e-9
    norms_b = np.sqrt(np.asarray(b.multiply(b).sum(0))).ravel() + 1e-9
    return np.asarray((a.T @ b).todense()) / norms_a[:, None] / norms_b[None, :]


def user_recommendations(loaded: FinishedRun, user: str, k: int = 10, explain: int = 2) -> dict:
    """Top-k for a user from what is known when predicting their test item, with hits and explanations."""
    ds, split = loaded.ds, loaded.split
    top = recommend(loaded, [user], k=k, exclude="test")
    u = ds.users.index(user)
    titles = ds.item_titles()
    held_out = set(split.test.loc[split.test["u"] == u, "i"].tolist())
    known = split.known("test")
    mine = known[known["u"] == u].sort_values(["timestamp", "row"], ascending=False, kind="stable")
    hist_items = mine["i"].to_numpy()
    recs = np.array([ds.items.index(i) for i in top["item"]], dtype=np.int64)
    sims = _similarity_rows(loaded, recs, hist_items) if len(hist_items) and len(recs) else np.zeros((len(recs), 0))
    rows = []
    for r, rec in enumerate(top.itertuples()):
        because = [{"item": ds.items.raw(int(hist_items[j])), "title": titles[int(hist_items[j])],
                    "similarity": round(float(sims[r, j]), 4)} for j in np.argsort(-sims[r])[:explain]] \
            if sims.shape[1] else []
        rows.append({"rank": int(rec.rank), "item": rec.item, "title": rec.title, "score": float(rec.score),
                     "hit": bool(rec.hit), "because": because})
    hist = pd.DataFrame({"item": [ds.items.raw(i) for i in hist_items], "title": [titles[int(i)] for i in hist_items],
                         "rating": mine["rating"].to_numpy(),
                         "time": pd.to_datetime(mine["timestamp"], unit="s", errors="coerce").to_numpy()})
    return {"user": user, "k": len(rows), "items": rows, "history": hist,
            "held_out": [{"item": ds.items.raw(i), "title": titles[i]} for i in sorted(held_out)],
            "hits": sum(r["hit"] for r in rows)}


def all_topk(loaded: FinishedRun, k: int = 10) -> pd.DataFrame:
    """Every user's top-k (from everything known about them), as rows user, rank, item, title, score, hit."""
    return recommend(loaded, None, k=k, exclude="all")


# ------------------------------------------------------------------ comparing runs

def per_user_frame(run: RunDir) -> pd.DataFrame:
    path = run.path / "per_user_test.csv"
    if not path.exists():
        raise RecTuneError(f"{run.run_id}: no per-user test results yet (is the run finished?)")
    return pd.read_csv(path)


def compare_two(run_a: RunDir, run_b: RunDir, metric: str = "ndcg@10") -> dict:
    """Paired bootstrap of a metric, run a minus run b, over the test users both were scored on."""
    a, b = per_user_frame(run_a), per_user_frame(run_b)
    ca, cb = run_a.read_config(), run_b.read_config()
    if DataSource.from_dict(ca["data"]) != DataSource.from_dict(cb["data"]) or ca["split"] != cb["split"]:
        raise RecTuneError("these runs used different data or splits, so their users cannot be paired")
    joined = a[["u", metric]].merge(b[["u", metric]], on="u", suffixes=("_a", "_b"))
    if joined.empty:
        raise RecTuneError("the two runs have no test users in common")
    return paired_bootstrap(joined[f"{metric}_a"].to_numpy(), joined[f"{metric}_b"].to_numpy())


def segments(run: RunDir, split: Split | None = None, base_item_ids: list[str] | None = None,
             item_ids: list[str] | None = None) -> pd.DataFrame:
    """NDCG@10 and HR@10 of a run by user activity (cold to warm) and by the test item (new vs old, or head vs tail)."""
    per_user = per_user_frame(run)
    metrics = [m for m in ("ndcg@10", "hr@10") if m in per_user]
    by_users = segment_summary(per_user, activity_segments(per_user["n_known"].to_numpy()).map(lambda s: f"users with {s} known"),
                               metrics)
    out = [by_users.assign(kind="user activity")]
    if split is not None:
        target = split.test.drop_duplicates("u").set_index("u")["i"]
        items = target.reindex(per_user["u"]).to_numpy()
        ok = ~pd.isna(items)
        if base_item_ids is not None and item_ids is not None:
            old = set(base_item_ids)
            labels = np.array(["new item" if item_ids[int(i)] not in old else "item known to the base"
                               for i in items[ok]])
        else:
            counts = split.train_history.item_counts
            head = set(np.argsort(-counts)[: max(1, len(counts) // 5)].tolist())
            labels = np.array(["popular item (top 20%)" if int(i) in head else "long-tail item" for i in items[ok]])
        out.append(segment_summary(per_user[ok].reset_index(drop=True), labels, metrics).assign(kind="test item"))
    return pd.concat(out, ignore_index=True)


def embedding_map(after, before=None, ds: Dataset | None = None, max_items: int = 1500) -> pd.DataFrame:
    """2-D PCA of item embeddings (the most popular items), before and after fine-tuning on shared axes."""
    va = after.item_embedding_matrix()
    if va is None:
        raise RecTuneError("this model has no item embeddings to map")
    vb = before.item_embedding_matrix() if before is not None else None
    n = va.shape[0] if vb is None else min(va.shape[0], vb.shape[0])
    counts = np.bincount(ds.interactions["i"].to_numpy(), minlength=ds.n_items)[:n] if ds is not None else np.ones(n)
    keep = np.argsort(-counts, kind="stable")[:max_items]
    stacks = [va[keep]] + ([vb[keep]] if vb is not None and vb.shape[1] == va.shape[1] else [])
    data = torch.cat(stacks)
    centred = data - data.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    xy = (centred @ v[:2].T).numpy()
    titles = ds.item_titles() if ds is not None else {}
    genre = _genres(ds, keep) if ds is not None else ["" for _ in keep]
    frames = []
    for k, which in enumerate(["after fine-tuning", "before (base)"][: len(stacks)]):
        part = xy[k * len(keep):(k + 1) * len(keep)]
        frames.append(pd.DataFrame({"x": part[:, 0], "y": part[:, 1], "which": which,
                                    "item": [ds.items.raw(int(i)) if ds is not None else str(i) for i in keep],
                                    "title": [titles.get(int(i), str(i)) for i in keep], "genre": genre,
                                    "popularity": counts[keep]}))
    return pd.concat(frames, ignore_index=True)


def _genres(ds: Dataset, items: np.ndarray) -> list[str]:
    table = ds.item_table
    if table is None or "genres" not in table.columns:
        return ["" for _ in items]
    out = []
    for i in items:
        raw = ds.items.raw(int(i))
        g = str(table.at[raw, "genres"]) if raw in table.index else ""
        out.append(g.split("|")[0] if g else "")
    return out
