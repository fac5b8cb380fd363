"""Compression of trained demo runs: size, NDCG@10 and one-user top-10 latency before and after.

    python bench/compress.py [--families sasrec,mf] [--prune 0.5] [--quantize int8] [--runs-dir DIR] [--no-write]

Trains each family on the demo data with its default config (or reuses runs/bench-compress-<family>
when it exists), then runs `rectune compress --run RUN --prune P --quantize Q --json` on it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, machine, write_section  # noqa: E402
from recsys_core.storage.rundir import RunDir  # noqa: E402
from recsys_core.runs.execute import execute_run  # noqa: E402
from recsys_core.runs.spec import RunSpec  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default="sasrec,mf")
    p.add_argument("--prune", type=float, default=0.5)
    p.add_argument("--quantize", default="int8")
    p.add_argument("--runs-dir", default=str(ROOT / "runs"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    rows = {}
    for family in args.families.split(","):
        run = RunDir(Path(args.runs_dir) / f"bench-compress-{family}")
        if run.read_status().get("state") != "finished":
            shutil_rmtree(run.path)
            execute_run(RunSpec.create("demo", family).save(run.path),
                        progress=lambda m: print(f"[{family}] {m}", file=sys.stderr, flush=True))
        res = subprocess.run([sys.executable, "-m", "recsys_core", "compress", "--run", str(run.path), "--prune",
                              str(args.prune), "--quantize", args.quantize, "--json"],
                             capture_output=True, text=True, cwd=ROOT)
        if res.returncode != 0:
            raise SystemExit(res.stderr)
        rows[family] = json.loads(res.stdout)
        print(f"{family}: {rows[family]}", file=sys.stderr)
    if not args.no_write:
        lines = [f"Command: `python {' '.join(['bench/compress.py', *sys.argv[1:]])}` on {machine()}; each row is "
                 f"`rectune compress --run RUN --prune {args.prune} --quantize {args.quantize} --json` on a demo run "
                 "trained with its family's defaults. Size is bytes on disk (weights only); NDCG@10 is the test "
                 "figure under the default protocol; latency is top-10 for one user on the CPU (median of repeats).", "",
                 "| family | size before | size after | ratio | NDCG@10 before | after | relative change | "
                 "latency before ms | after ms |", "|---|---|---|---|---|---|---|---|---|"]
        for family, r in rows.items():
            rel = (r["ndcg_after"] - r["ndcg_before"]) / r["ndcg_before"] if r["ndcg_before"] else 0.0
            lines.append(f"| {family} | {r['size_before'] / 1e6:.2f} MB | {r['size_after'] / 1e6:.2f} MB | "
                         f"{r['size_ratio']:.2f}x | {r['ndcg_before']:.4f} | {r['ndcg_after']:.4f} | {rel:+.1%} | "
                         f"{r['latency_before_ms']:.2f} | {r['latency_after_ms']:.2f} |")
        lines += ["", "After pruning, `rectune compress` fine-tunes the surviving weights for `--recover-epochs` (default 3) "
                      "epochs with the masks held, keeping the best epoch on validation (seeded, so a run always "
                      "compresses to the same model). Without that recovery (`--recover-epochs 0`), pruning half of "
                      "SASRec's weights cost 9% of its NDCG@10 (0.0608 to 0.0553). int8 alone (`--prune 0`) gives 0.27x "
                      "at no loss. Dynamic int8 linear layers do not speed up the top-10 of these small models on this "
                      "CPU (the item-scoring matmul dominates and stays in float)."]
        write_section("compress", "\n".join(lines))
        (ROOT / "docs" / "results-compress.json").write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows))
    return 0


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
