"""Which columnar engine reads interaction files fastest here: pyarrow, polars (if importable) and pandas.

    python bench/ingest.py FILE.csv [--polars-path DIR]

Each engine reads every column as text (the loader keeps ids exactly as spelled), trims it, and codes
the user column, in a fresh process of its own; wall seconds and peak RSS are printed. polars is not a
dependency: give --polars-path to a folder it was installed into (pip install --target DIR polars).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

ENGINES = ("pyarrow", "polars", "pandas")


def read(engine: str, path: str, polars_path: str | None) -> dict:
    start = time.perf_counter()
    if engine == "polars":
        if polars_path:
            sys.path.insert(0, polars_path)
        import polars as pl

        frame = pl.read_csv(path, infer_schema=False)
        frame = frame.with_columns([pl.col(c).str.strip_chars() for c in frame.columns])
        frame[frame.columns[0]].cast(pl.Categorical).to_physical()
        rows = len(frame)
    elif engine == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        names = open(path).readline().strip().split(",")
        table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                               convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}))
        columns = [pc.utf8_trim_whitespace(c) for c in table.columns]
        pc.dictionary_encode(columns[0])
        rows = table.num_rows
    else:
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, engine="c")
        frame = frame.apply(lambda c: c.str.strip())
        pd.factorize(frame[frame.columns[0]])
        rows = len(frame)
    return {"engine": engine, "rows": rows, "seconds": round(time.perf_counter() - start, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--polars-path")
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(read(args.engine, args.path, args.polars_path)))
        return 0
    for engine in ENGINES:
        cmd = [sys.executable, __file__, args.path, "--engine", engine]
        if args.polars_path:
            cmd += ["--polars-path", args.polars_path]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{engine}: not run ({(out.stderr.strip().splitlines() or ['failed'])[-1]})")
            continue
        r = json.loads(out.stdout)
        print(f"{engine}: {r['rows']:,} rows as text, trimmed, users coded in {r['seconds']} s, "
              f"peak {r['peak_rss_mib']:,} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
