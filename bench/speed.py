"""Speed and scale benchmarks.

    python bench/speed.py --vs-recbole [--json]        time-to-quality of our SASRec vs RecBole 1.2.1's
    python bench/speed.py --eval-scale --users 100000 --items 1000000 [--json]
                                                       full-ranking top-10 on synthetic data of that size
    python bench/speed.py --throughput [--families mf,ncf,sasrec] [--json]
                                                       samples/s and epoch time per family (+ MFU on CUDA)

--vs-recbole: RecBole's SASRec (from `make recbole-env`, its own venv .venv-recbole) trains 10 epochs on
the demo data under the same protocol (leave-last-out by time, full ranking) with the same hidden size,
layers and sequence length; its best validation NDCG@10 over those epochs is the target. Our SASRec then
trains until its validation NDCG@10 reaches that target. Both are timed here, one after the other.
Each mode writes its section of docs/BENCHMARKS.md unless --no-write.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.common import ROOT, machine, write_section  # noqa: E402
from recsys_core.data.dataset import Dataset, load_dataset  # noqa: E402
from recsys_core.data.splits import make_split  # noqa: E402
from recsys_core.eval.evaluator import evaluate  # noqa: E402
from recsys_core.models import build_model  # noqa: E402
from recsys_core.models.neural import TrainData  # noqa: E402
from recsys_core.train.device import device_name, pick_device, seed_everything  # noqa: E402
from recsys_core.train.trainer import Callback, Trainer, TrainerConfig  # noqa: E402

RECBOLE_PY = ROOT / ".venv-recbole" / "bin" / "python"
# Our SASRec for the race: RecBole's shape (hidden 64, 2 layers, 2 heads, inner 256, length 50, full
# softmax); our own training recipe (all positions of each sequence at once, larger learning rate).
RACE_MODEL = {"hidden": 64, "layers": 2, "heads": 2, "inner": 256, "max_len": 50, "loss": "ce", "dropout": 0.2}
RACE_TRAIN = {"epochs": 200, "batch_size": 64, "lr": 2e-3, "patience": 0, "eval_every": 1}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # ru_maxrss is in KiB on Linux


# ---------------------------------------------------------------- RecBole race

def recbole_inter_file(ds: Dataset, directory: Path, name: str) -> Path:
    """The dataset as a RecBole atomic .inter file (original ids, ratings and timestamps)."""
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    f = ds.interactions
    out = pd.DataFrame({"user_id:token": f["user"], "item_id:token": f["item"], "rating:float": f["rating"],
                        "timestamp:float": f["timestamp"]})
    path = folder / f"{name}.inter"
    out.to_csv(path, sep="\t", index=False)
    return path


def run_recbole(ds: Dataset, epochs: int, say) -> dict:
    if not RECBOLE_PY.exists():
        raise SystemExit("RecBole's venv is missing: run `make recbole-env` first (RecBole never enters our own venv)")
    with tempfile.TemporaryDirectory() as tmp:
        recbole_inter_file(ds, Path(tmp), "rectune")
        out = Path(tmp) / "recbole.json"
        say(f"RecBole 1.2.1 SASRec: {epochs} epochs in {RECBOLE_PY.parent.parent.name}")
        t0 = time.perf_counter()
        proc = subprocess.run([str(RECBOLE_PY), str(ROOT / "bench" / "recbole_sasrec.py"), tmp, "rectune", str(out),
                               "--epochs", str(epochs)], capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise SystemExit(f"RecBole failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        result = json.loads(out.read_text())
        result["process_seconds"] = time.perf_counter() - t0
    best = max(result["epochs"], key=lambda e: e["valid_ndcg@10"])
    result["best"] = best
    return result


class ReachTarget(Callback):
    """Stops training at the first validation whose NDCG@10 reaches the target; records the curve."""

    def __init__(self, target: float, start: float, say) -> None:
        self.target, self.start, self.say = target, start, say
        self.reached_at: float | None = None
        self.curve: list[dict] = []

    def on_eval_end(self, trainer: Trainer, metrics: dict) -> None:
        ndcg = metrics["valid"]["ndcg@10"]
        seconds = time.perf_counter() - self.start
        self.curve.append({"epoch": metrics["epoch"], "seconds": round(seconds, 2), "valid_ndcg@10": ndcg})
        self.say(f"ours epoch {metrics['epoch']}: valid ndcg@10 {ndcg:.4f} at {seconds:.1f} s")
        if ndcg >= self.target and self.reached_at is None:
            self.reached_at = seconds


def run_ours(ds: Dataset, target: float, device: torch.device, say) -> dict:
    seed_everything(0)
    split = make_split(ds, "leave-last-out")
    model = build_model("sasrec", split.n_users, split.n_items, RACE_MODEL)
    start = time.perf_counter()
    reach = ReachTarget(target, start, say)
    trainer = Trainer(model, TrainData(split.train_history), split, TrainerConfig.from_dict(RACE_TRAIN), device,
                      callbacks=[reach], should_stop=lambda: reach.reached_at is not None)
    trainer.fit()
    return {"seconds": reach.reached_at, "reached": reach.reached_at is not None, "curve": reach.curve,
            "model": RACE_MODEL, "train": RACE_TRAIN, "device": device_name(device)}


def vs_recbole(args, say) -> dict:
    ds = load_dataset(args.data)
    recbole = run_recbole(ds, args.recbole_epochs, say)
    target = recbole["best"]["valid_ndcg@10"]
    say(f"RecBole: best valid ndcg@10 {target:.4f} at epoch {recbole['best']['epoch']} "
        f"({recbole['best']['seconds']:.0f} s; {recbole['seconds']:.0f} s for {args.recbole_epochs} epochs)")
    ours = run_ours(ds, target, pick_device(args.device), say)
    # RecBole's time-to-quality is the time to its best epoch, not all 10: the stricter comparison for us
    recbole_seconds = recbole["best"]["seconds"]
    ours_seconds = ours["seconds"] if ours["reached"] else float("inf")
    return {"sasrec": {"ours_seconds": round(ours_seconds, 2), "recbole_seconds": round(recbole_seconds, 2),
                       "ratio": round(ours_seconds / recbole_seconds, 4), "target_valid_ndcg@10": round(target, 5),
                       "recbole_seconds_all_epochs": round(recbole["seconds"], 2), "recbole_epochs": recbole["epochs"],
                       "ours_curve": ours["curve"], "ours_model": ours["model"], "ours_train": ours["train"],
                       "ours_device": ours["device"], "data": args.data, "recbole_torch_threads": recbole["torch_threads"],
                       "our_torch_threads": torch.get_num_threads()}}


def recbole_markdown(r: dict, command: str) -> str:
    s = r["sasrec"]
    rows = "\n".join(f"| {e['epoch']} | {e['seconds']:.0f} | {e['valid_ndcg@10']:.4f} |" for e in s["recbole_epochs"])
    ours = "\n".join(f"| {e['epoch']} | {e['seconds']:.1f} | {e['valid_ndcg@10']:.4f} |" for e in s["ours_curve"])
    return (f"Command: `{command}` on {machine()}.\n\n"
            f"Target: RecBole's best validation NDCG@10 in 10 epochs, **{s['target_valid_ndcg@10']:.4f}**. "
            f"RecBole reached it after **{s['recbole_seconds']:.0f} s** ({s['recbole_seconds_all_epochs']:.0f} s for all "
            f"10 epochs); our SASRec after **{s['ours_seconds']:.1f} s**: ratio **{s['ratio']:.3f}x**.\n\n"
            "RecBole, per epoch (cumulative seconds, validation NDCG@10):\n\n| epoch | s | valid NDCG@10 |\n|---|---|---|\n"
            f"{rows}\n\nOurs (model {json.dumps(s['ours_model'])}, train {json.dumps(s['ours_train'])}):\n\n"
            f"| epoch | s | valid NDCG@10 |\n|---|---|---|\n{ours}\n")


# ---------------------------------------------------------------- evaluation at scale

def synthetic_split(n_users: int, n_items: int, per_user: int, seed: int = 0):
    """Users with `per_user` interactions each over a Zipf-like catalogue in which every item occurs."""
    rng = np.random.default_rng(seed)
    n = max(n_users * per_user, n_items)
    items = rng.zipf(1.2, n) % n_items
    items[:n_items] = rng.permutation(n_items)  # every item occurs at least once: the catalogue is n_items
    users = np.repeat(np.arange(n_users), -(-n // n_users))[:n]
    rng.shuffle(users)
    frame = pd.DataFrame({"user": users.astype(np.int64), "item": items.astype(np.int64),
                          "timestamp": np.arange(n, dtype=np.float64)})
    ds = Dataset.from_frame(frame, name=f"synthetic-{n_users}x{n_items}")
    del frame
    return make_split(ds, "leave-last-out")


def eval_scale(args, say) -> dict:
    t0 = time.perf_counter()
    split = synthetic_split(args.users, args.items, args.per_user)
    build_seconds = time.perf_counter() - t0
    say(f"synthetic data: {len(split.train):,} training interactions, {split.n_users:,} users, {split.n_items:,} items "
        f"({build_seconds:.0f} s, peak RSS so far {peak_rss_gb():.2f} GB)")
    device = pick_device(args.device)
    seed_everything(0)
    model = build_model("mf", split.n_users, split.n_items, {"dim": 64}).to(device).eval()
    done = [0.0]

    def progress(i: int, n: int) -> None:
        if time.perf_counter() - done[0] > 30:
            done[0] = time.perf_counter()
            say(f"  {i:,}/{n:,} users ranked, peak RSS {peak_rss_gb():.2f} GB")

    t1 = time.perf_counter()
    result = evaluate(model, split, "test", k=10, progress=progress)
    seconds = time.perf_counter() - t1
    return {"eval_scale": {"seconds": round(seconds, 1), "peak_rss_gb": round(peak_rss_gb(), 3),
                           "users": int(result.metrics["n_users"]), "items": int(split.n_items),
                           "train_interactions": int(len(split.train)), "build_seconds": round(build_seconds, 1),
                           "device": device_name(device), "ndcg@10": result.metrics["ndcg@10"]}}


def eval_scale_markdown(r: dict, command: str) -> str:
    s = r["eval_scale"]
    return (f"Command: `{command}` on {machine()}.\n\n"
            f"Full-ranking top-10 of **{s['items']:,} items for {s['users']:,} users** ({s['train_interactions']:,} "
            f"training interactions, an MF model of dimension 64 on {s['device']}): **{s['seconds']:.0f} s**, "
            f"peak resident memory of the whole process (data generation included) **{s['peak_rss_gb']:.2f} GB**. "
            f"Scores exist for a block of users at a time (at most 2^25 scores), never for the full users x items matrix.\n")


# ---------------------------------------------------------------- throughput per family

THROUGHPUT_FAMILIES = ["mf", "ncf", "two_tower", "sasrec", "text_ctr"]
# bf16 dense peak of the cards the device tool lends (NVIDIA data sheets, dense, no sparsity)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def count_flops(model, batch: dict) -> float | None:
    """FLOPs of one training step (forward + backward) as counted by torch's FlopCounterMode."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    counter = FlopCounterMode(display=False)
    with counter:
        model.loss(batch).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def throughput(args, say) -> dict:
    ds = load_dataset(args.data)
    split = make_split(ds, "leave-last-out")
    device = pick_device(args.device)
    out = {}
    for family in args.families.split(","):
        seed_everything(0)
        model = build_model(family, split.n_users, split.n_items, {})
        from recsys_core.models import family_class

        train_cfg = {**getattr(family_class(family), "default_train", {}), "epochs": 1, "patience": 0}
        data = TrainData(split.train_history, item_texts=ds.item_texts() if getattr(model, "needs_text", False) else None)
        trainer = Trainer(model, data, split, TrainerConfig.from_dict(train_cfg), device)
        # one epoch, or as many steps as fit in --max-seconds (then the epoch time is extrapolated)
        t0 = time.perf_counter()
        n_samples = steps = 0
        for batch in model.batches(data, trainer.config.batch_size, trainer.generator):
            trainer._train_step(batch)
            n_samples += int(batch.get("n", len(next(iter(batch.values())))))
            steps += 1
            if time.perf_counter() - t0 > args.max_seconds:
                break
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        full = steps >= trainer.steps_per_epoch
        epoch_seconds = seconds if full else seconds / steps * trainer.steps_per_epoch
        row = {"epoch_seconds": round(epoch_seconds, 2), "samples_per_second": round(n_samples / seconds, 1),
               "samples": n_samples, "steps": steps, "steps_per_epoch": trainer.steps_per_epoch,
               "epoch_extrapolated": not full, "batch_size": trainer.config.batch_size, "device": device_name(device)}
        if device.type == "cuda":
            batch = next(iter(model.batches(data, trainer.config.batch_size, torch.Generator().manual_seed(0))))
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            flops = count_flops(model, batch)
            name = torch.cuda.get_device_name(0)
            peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
            if flops and peak:
                achieved = flops * steps / seconds / 1e12
                row.update({"tflops": round(achieved, 3), "mfu": round(achieved / peak, 5), "peak_tflops": peak})
        say(f"{family}: {row}")
        out[family] = row
    return {"throughput": out}


def throughput_markdown(r: dict, command: str) -> str:
    rows = r["throughput"]
    mfu = any("mfu" in v for v in rows.values())
    head = "| family | device | batch | steps timed / epoch | epoch s | samples/s |" + (" TFLOP/s | MFU |" if mfu else "")
    lines = [f"Command: `{command}` on {machine()}.", "", head, "|---" * (head.count("|") - 1) + "|"]
    for family, v in rows.items():
        tail = f" {v.get('tflops', '-')} | {v.get('mfu', 0):.2%} |" if mfu else ""
        epoch = f"{v['epoch_seconds']}" + (" (extrapolated)" if v["epoch_extrapolated"] else "")
        lines.append(f"| {family} | {v['device']} | {v['batch_size']} | {v['steps']:,} / {v['steps_per_epoch']:,} | {epoch} | "
                     f"{v['samples_per_second']:,.0f} |{tail}")
    lines += ["", "A sample is a training example: an interaction for mf/ncf/two_tower/text_ctr, one predicted position "
                  "of a sequence for sasrec. Default model and training configs; no validation inside the timing."]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--vs-recbole", action="store_true")
    mode.add_argument("--eval-scale", action="store_true")
    mode.add_argument("--throughput", action="store_true")
    p.add_argument("--data", default="demo")
    p.add_argument("--recbole-epochs", type=int, default=10)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--per-user", type=int, default=12, help="--eval-scale: interactions per synthetic user")
    p.add_argument("--families", default=",".join(THROUGHPUT_FAMILIES))
    p.add_argument("--max-seconds", type=float, default=90.0,
                   help="--throughput: time at most this long per family (a longer epoch is extrapolated)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    command = "python " + " ".join(["bench/speed.py", *sys.argv[1:]])
    if args.vs_recbole:
        result, section, md = vs_recbole(args, say), "speed-recbole", recbole_markdown
    elif args.eval_scale:
        result, section, md = eval_scale(args, say), "speed-eval-scale", eval_scale_markdown
    else:
        result, section = throughput(args, say), "speed-throughput"
        md = throughput_markdown
        if torch.cuda.is_available():
            section += "-gpu"
    if not args.no_write:
        write_section(section, md(result, command))
        (ROOT / "docs" / f"results-{section}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
