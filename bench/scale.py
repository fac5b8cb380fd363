"""How each stage's cost grows with the data: 100k to 20M interactions, items growing with rows.

    python bench/scale.py [--sizes 100k,1M,5M,20M] [--stage-timeout 1200] [--no-write]

For every size, bench/synth.py writes a realistic log (CSV), then every stage runs in a fresh process
of its own, so its peak RSS is its own (it includes the loaded data the stage needs, which is what a
user's process holds too): load (read; validate + clean + index), report, split, each baseline at the
settings named in the table, one MF and one SASRec epoch with their evaluation, and the studio's Data
page (Streamlit AppTest: first render, which loads and describes, and a rerun). A stage that refuses
in words is recorded with its message; one past --stage-timeout is stopped and recorded as such.
Results go to docs/BENCHMARKS.md (section "scale") and docs/results-scale.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, write_section  # noqa: E402

#: rows -> (users, items): activity ~33 per user as in the issue's 4.76M-row log; items grow up to 100k
SIZES = {"100k": (100_000, 3_000, 5_000), "1M": (1_000_000, 30_000, 20_000), "5M": (5_000_000, 150_000, 60_000),
         "20M": (20_000_000, 600_000, 100_000)}
ITEMKNN = {"neighbours": 100}
EASE_DEFAULT = {"max_seconds": 300}  # the 5-minute limit: past it EASE refuses before starting
EASE_PRUNED = {"max_items": 10_000, "l2": 500.0}
#: SASRec at the sequence length and negatives usual for large logs (the demo defaults, 200 and 1024, cost
#: 16x more per step: one epoch at 5M rows would take over half an hour on 2 cores)
SASREC = {"model": {"max_len": 50, "negatives": 256}, "train": {"batch_size": 256}}
MF = {"model": {}, "train": {"batch_size": 1024}}
STAGES = ["load", "report", "split", "pop", "itemknn", "ease", "ease_pruned", "mf", "sasrec", "data_page"]
#: stages left out at a size, with the reason shown in the table
SKIP = {"20M": {
    "sasrec": "not run: one epoch over 600k users' sequences (about 1,600 steps of 256) is past this bench's "
              "time budget on 2 cores",
    "mf": "not run: one epoch took 806 s at 5M rows, and every step updates every embedding row (dense Adam), "
          "so 4x the steps over 2.7x the rows is past this bench's time budget",
    "ease_pruned": "not run: ranking 600k users over 100k items at the 5M run's cost per score is about 25 min, "
                   "past this bench's time budget"}}


#: when the current stage's fit began (a refusal reports how long after it came)
FIT_STARTED = [0.0]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Steps:
    """Progress messages with their times: which library step started when."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, str]] = []

    def __call__(self, message: str) -> None:
        self.marks.append((time.perf_counter(), message))
        print(f"    {message}", file=sys.stderr, flush=True)

    def since(self, prefix: str) -> float | None:
        return next((t for t, m in self.marks if m.startswith(prefix)), None)


def _load(path: str, steps: Steps):
    from recsys_core.data.dataset import load_dataset

    start = time.perf_counter()
    ds = load_dataset(path, progress=steps)
    end = time.perf_counter()
    read_end = steps.since("validating") or end
    return ds, {"read_s": read_end - start, "validate_s": end - read_end, "seconds": end - start,
                "rows": len(ds), "users": ds.n_users, "items": ds.n_items}


def run_stage(stage: str, path: str) -> dict:
    """One stage in this process; returns its figures (seconds, peak RSS, details)."""
    from recsys_core.data.describe import describe
    from recsys_core.data.splits import leave_last_out

    steps = Steps()
    if stage == "data_page":
        return _data_page(path)
    if stage in ("mf", "sasrec"):
        return _one_epoch(stage, path)
    ds, loaded = _load(path, steps)
    if stage == "load":
        return loaded
    if stage == "report":
        start = time.perf_counter()
        describe(ds)
        return {"seconds": time.perf_counter() - start, "load_s": loaded["seconds"]}
    start = time.perf_counter()
    split = leave_last_out(ds)
    split.train_history.csr
    if stage == "split":
        return {"seconds": time.perf_counter() - start, "test_users": int(len(split.test))}
    return _baseline(stage, split, steps)


def _baseline(stage: str, split, steps: Steps) -> dict:
    from recsys_core.eval.evaluator import evaluate
    from recsys_core.eval.evaluator import ranking_progress
    from recsys_core.pipeline import fit_baseline

    family = {"ease_pruned": "ease"}.get(stage, stage)
    options = {"itemknn": ITEMKNN, "ease": EASE_DEFAULT, "ease_pruned": EASE_PRUNED}.get(stage, {})
    start = FIT_STARTED[0] = time.perf_counter()
    model = fit_baseline(family, split, progress=steps, **options)
    fit_s = time.perf_counter() - start
    result = evaluate(model, split, "test", progress=ranking_progress(steps, "test", every=30))
    return {"fit_s": fit_s, "eval_s": result.eval_seconds, "seconds": fit_s + result.eval_seconds,
            "ndcg@10": result.metrics["ndcg@10"], "test_users": result.metrics["n_users"], "notes": model.notes(),
            "options": options}


def _one_epoch(family: str, path: str) -> dict:
    """One epoch through the real run path (a run directory, validation, the final full-ranking test)."""
    from recsys_core.runs.execute import execute_run
    from recsys_core.runs.spec import RunSpec

    steps = Steps()
    options = SASREC if family == "sasrec" else MF
    train = {"epochs": 1, "min_epochs": 0, **options["train"]}
    spec = RunSpec.create({"path": path}, family, model=options["model"], train=train, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        run = spec.save(Path(tmp) / "run")
        start = time.perf_counter()
        result = execute_run(run, progress=steps)
        end = time.perf_counter()
    trained = steps.since("splitting") or start
    ranked = steps.since("ranking all") or end
    return {"status": result.status, "epoch_s": result.train_seconds, "eval_s": end - ranked,
            "seconds": end - trained, "ndcg@10": result.test.get("ndcg@10"),
            "test_users": result.test.get("n_users"), "error": result.error}


def _data_page(path: str) -> dict:
    from streamlit.testing.v1 import AppTest

    from recsys_core.data.source import DataSource

    app = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=1800)
    app.session_state["dataset_source"] = DataSource(path)
    start = time.perf_counter()
    app.run()
    first = time.perf_counter() - start
    start = time.perf_counter()
    app.run()
    rerun = time.perf_counter() - start
    errors = [e.value for e in app.exception] + [e.value for e in app.error]
    return {"first_s": first, "rerun_s": rerun, "seconds": rerun, "errors": errors[:1]}


def stage_in_subprocess(stage: str, path: Path, timeout: float) -> dict:
    """Run one stage in a child, watching its memory, so a stage stopped at the time limit still reports it."""
    import psutil

    cmd = [sys.executable, __file__, "--stage", stage, "--data", str(path)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT)
        watched, peak, start = psutil.Process(child.pid), 0, time.perf_counter()
        while child.poll() is None and time.perf_counter() - start < timeout:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.5)
        if child.poll() is None:
            child.kill()
            child.wait()
            return {"outcome": "timeout", "message": f"stopped after {timeout:.0f} s (this bench's limit); "
                    f"peak RSS until then {peak / 2**30:.2f} GiB", "peak_rss_mb": peak / 2**20}
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        killed = child.returncode < 0
        return {"outcome": "killed" if killed else "failed",
                "message": f"killed by signal {-child.returncode}" if killed else (lines[-1] if lines else "failed")}
    return {"outcome": "ok", **json.loads(stdout.strip().splitlines()[-1])}


def ensure_data(name: str, workdir: Path) -> Path:
    rows, users, items = SIZES[name]
    path = workdir / f"synth-{name}.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "synth.py"), "--users", str(users), "--items",
                        str(items), "--rows", str(rows), "--out", str(path)], check=True)
    return path


def _message(r: dict) -> str:
    """A child's last stderr line, without the exception's class name (the words are the message)."""
    text = r.get("message", "")
    return text.split("Error: ", 1)[1] if text.startswith("recsys_core.errors.") and "Error: " in text else text


def growth(results: dict, stage: str) -> str:
    """How the stage's time grows with the rows between the two largest sizes where both ran: t ~ rows^a."""
    ran = [(SIZES[s][0], r[stage]["seconds"]) for s, r in results.items()
           if r[stage]["outcome"] == "ok" and r[stage]["seconds"] > 0.05]
    if len(ran) < 2:
        return "—"
    (n1, t1), (n2, t2) = ran[-2], ran[-1]
    return f"rows^{math.log(t2 / t1) / math.log(n2 / n1):.2f}"


def _cell(r: dict) -> str:
    if r["outcome"] == "skipped":
        return "—"
    if r["outcome"] != "ok":
        return f"{r['outcome']}"
    return f"{r['seconds']:,.1f} s · {r['peak_rss_mb'] / 1024:,.2f} GiB"


def _sizes_header(sizes: list[str]) -> str:
    return " | ".join(f"{s} rows ({SIZES[s][1] // 1000}k users, {SIZES[s][2] // 1000}k items)" for s in sizes)


def markdown(results: dict, command: str, started: str) -> str:
    sizes = list(results)
    missing = {"outcome": "skipped", "message": "not run (the run was cut short)"}
    results = {s: {stage: r.get(stage, missing) for stage in STAGES} for s, r in results.items()}
    lines = [f"Command: `{command}` on {machine()}, {os.cpu_count()} cores, {started}. Every stage in a fresh "
             "process; peak RSS is that process's peak (the loaded data + the stage: light stages show the load's "
             "peak). Data: bench/synth.py logs (power-law activity and popularity, 32 latent topics, timestamps, "
             "ratings). The growth exponent is of time against rows, while users and items grow with the rows "
             "too (ranking costs users x items, EASE items^3).", "",
             "| stage | " + _sizes_header(sizes) + " | time grows as |",
             "|---|" + "---|" * (len(sizes) + 1)]
    for stage in STAGES:
        lines.append(f"| {LABELS[stage]} | " + " | ".join(_cell(results[s][stage]) for s in sizes)
                     + f" | {growth(results, stage)} |")
    lines += ["", "Details (seconds are wall time on this machine):", ""]
    for s in sizes:
        for stage in STAGES:
            detail = _detail(results[s][stage])
            if detail:
                lines.append(f"- {s}, {LABELS[stage]}: {detail}")
    return "\n".join(lines)


LABELS = {"load": "load: read + validate/clean/index", "report": "report (describe)", "split": "split (leave-last-out)",
          "pop": "pop fit + full-ranking test", "itemknn": f"itemknn {ITEMKNN} fit + test",
          "ease": f"ease default {EASE_DEFAULT}", "ease_pruned": f"ease pruned {EASE_PRUNED} fit + test",
          "mf": f"mf {MF}: 1 epoch + validation + test", "sasrec": f"sasrec {SASREC}: 1 epoch + validation + test",
          "data_page": "studio Data page (rerun; first render in details)"}


def _detail(r: dict) -> str:
    if r["outcome"] == "skipped":
        return r["message"]
    if r["outcome"] != "ok":
        after = f" (refused {r['refused_in_s']:.2f} s after the fit was asked for; the whole process, loading " \
            f"the data included, took {r['refused_after_s']:.1f} s)" if r.get("refused_in_s") is not None else ""
        return f"{r['outcome']}: {_message(r)}{after}"
    keys = ["read_s", "validate_s", "fit_s", "epoch_s", "eval_s", "first_s", "rerun_s", "ndcg@10", "test_users"]
    parts = [f"{k} {r[k]:,.4g}" if isinstance(r.get(k), float) else f"{k} {r[k]:,}" for k in keys
             if r.get(k) is not None]
    parts += list(r.get("notes", []))
    if r.get("errors"):
        parts.append(f"errors: {r['errors']}")
    return "; ".join(parts)


def run_child(stage: str, data: str) -> None:
    """A child: one stage, one JSON line on stdout (a refusal in words is a result too)."""
    from recsys_core.errors import RecTuneError

    start = time.perf_counter()
    try:
        figures = run_stage(stage, data)
    except RecTuneError as exc:  # how long it took to say so is part of the result
        now = time.perf_counter()
        figures = {"outcome": "refused", "message": str(exc), "refused_after_s": now - start,
                   "refused_in_s": now - FIT_STARTED[0] if FIT_STARTED[0] else None}
    print(json.dumps({**figures, "peak_rss_mb": peak_rss_mb()}, default=str))


def rerender(path: Path) -> None:
    """Rewrite the BENCHMARKS section from saved results (what a run writes as it goes, or its final form)."""
    saved = json.loads(path.read_text())
    if "results" not in saved:
        saved = {"results": saved, "command": "python bench/scale.py", "started": time.strftime("%Y-%m-%d")}
    write_section("scale", markdown(saved["results"], saved["command"], saved["started"]))


def run_sizes(args: argparse.Namespace) -> None:
    """Each size's stages in turn, saving the results after every stage (a cut-short run keeps what it did)."""
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started, results = time.strftime("%Y-%m-%d"), {}
    command = ("python bench/scale.py " + " ".join(sys.argv[1:])).strip()
    stages = args.stages.split(",") if args.stages else STAGES
    saved_path = ROOT / "docs" / "results-scale.json"
    if args.merge and saved_path.exists():
        saved = json.loads(saved_path.read_text())
        results = saved["results"] if "results" in saved else saved
        command = f"{saved.get('command', 'python bench/scale.py')}, then {command}"
    for name in args.sizes.split(","):
        path = ensure_data(name, workdir)
        results.setdefault(name, {})
        for stage in stages:
            if stage in SKIP.get(name, {}):
                results[name][stage] = {"outcome": "skipped", "message": SKIP[name][stage]}
                continue
            print(f"[{name}] {stage}", file=sys.stderr, flush=True)
            results[name][stage] = stage_in_subprocess(stage, path, args.stage_timeout)
            print(f"[{name}] {stage}: {_cell(results[name][stage])} {_detail(results[name][stage])}",
                  file=sys.stderr, flush=True)
            saved = {"command": command, "started": started, "machine": machine(), "results": results}
            saved_path.write_text(json.dumps(saved, indent=1, default=str))
    if not args.no_write:
        write_section("scale", markdown(results, command, started))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1M,5M,20M")
    parser.add_argument("--stage-timeout", type=float, default=1200)
    parser.add_argument("--workdir", default="/tmp/rectune-scale")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--from-json", metavar="FILE", help="rewrite the section from a saved run's results")
    parser.add_argument("--stages", help="comma-separated stages to run (default: all)")
    parser.add_argument("--merge", action="store_true",
                        help="add these results to docs/results-scale.json instead of starting it anew")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_child(args.stage, args.data)
    elif args.from_json:
        rerender(Path(args.from_json))
    else:
        run_sizes(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
