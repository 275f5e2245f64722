"""Build at scale: `personagen build` of 100k, 1M and 3M personas and from a national-size source, each beside a
minimal polars read-filter-sample-write of the same columns, every run in its own process with its own peak RSS.

The national-size source is the state files in ../shared/data/acs_pums repeated to --national-records records
(all columns, written to a temp dir and removed afterwards; never committed). Targets: 1M personas under 2 GB peak,
time per persona at 3M within 1.3x of that at 100k. Wall times on a shared 2-core machine are noisy.

    python benchmarks/build_scale.py [--census PATH] [--sizes 100000,1000000,3000000]
                                     [--national-records 10000000] [--national-n 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CENSUS = REPO.parent / "shared" / "data" / "acs_pums" / "psam_p15.csv.gz"


STATE_FILES = ("psam_p15.csv.gz", "psam_p50.csv.gz", "psam_p56.csv.gz")
BASELINE = """
import resource, sys, time
import numpy as np, polars as pl
src, n, out, cols = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
t0 = time.perf_counter()
df = pl.scan_csv(src, infer_schema=False).select(cols).with_columns(pl.col(c).cast(pl.Int64, strict=False)
    for c in cols if c != "SERIALNO").filter(pl.col("AGEP") >= 18).collect(engine="streaming")
w = df["PWGTP"].to_numpy().astype(float)
idx = np.random.default_rng(0).choice(df.height, n, p=w / w.sum())
df[idx].write_parquet(out)
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def measured_build(census: Path, n: int, out: Path) -> dict:
    """`personagen build` in a fresh interpreter: wall seconds, that process's own CPU seconds and peak RSS (MB)."""
    code = ("import resource, sys; from personagen.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "u = resource.getrusage(resource.RUSAGE_SELF)\n"
            "print('RSS', u.ru_maxrss / 1024, u.ru_utime + u.ru_stime)")
    cmd = [sys.executable, "-c", code, "build", "-o", str(out), "--census", str(census), "-n", str(n), "--seed", "0"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"build failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    _, rss, cpu = r.stdout.strip().splitlines()[-1].split()
    return {"n": n, "seconds": sec, "us_per_persona": 1e6 * sec / n, "cpu_seconds": float(cpu),
            "cpu_us_per_persona": 1e6 * float(cpu) / n, "peak_rss_mb": float(rss)}


def national_source(data: Path, tmp: Path, records: int) -> Path:
    """A national-size PUMS csv in tmp: the state files' rows repeated until `records` (never committed)."""
    import polars as pl

    one = pl.concat([pl.read_csv(data / f, infer_schema=False) for f in STATE_FILES], how="diagonal")
    reps = -(-records // one.height)
    out = tmp / "psam_national.csv"
    with open(out, "wb") as fh:
        for i in range(reps):
            one.write_csv(fh, include_header=i == 0)
    return out


def baseline(census: Path, n: int, out: Path) -> dict:
    """The minimal polars read-filter-sample-write of the same columns, in a fresh interpreter."""
    from personagen.census.codebook import attributes
    from personagen.census.read import header

    spec = attributes()
    cols = [c for c in spec["required"] + spec["optional"] if c in header(census)]
    r = subprocess.run([sys.executable, "-c", BASELINE, str(census), str(n), str(out), ",".join(cols)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"baseline failed: {r.stderr.strip()[-500:]}")
    sec, rss = map(float, r.stdout.split())
    return {"n": n, "seconds": sec, "peak_rss_mb": rss}


def scale(census: Path, sizes: list[int], national_records: int, national_n: int) -> dict:
    """Builds of `sizes` personas from `census` and one from a national-size source, each beside the baseline."""
    res: dict = {"builds": [], "national": None}
    with tempfile.TemporaryDirectory(prefix="pg-bench-scale-") as tmp:
        t = Path(tmp)
        for n in sizes:
            b, base = measured_build(census, n, t / f"lib{n}"), baseline(census, n, t / f"base{n}.parquet")
            shutil.rmtree(t / f"lib{n}")
            res["builds"].append({"build": b, "baseline": base})
            print(f"  n={n:>9,}: build {b['seconds']:7.1f} s ({b['us_per_persona']:.1f} µs/persona; cpu "
                  f"{b['cpu_seconds']:.1f} s, {b['cpu_us_per_persona']:.1f} µs/persona), "
                  f"peak {b['peak_rss_mb'] / 1024:.2f} GB | polars baseline {base['seconds']:.1f} s, "
                  f"{base['peak_rss_mb'] / 1024:.2f} GB", flush=True)
        first, last = res["builds"][0]["build"], res["builds"][-1]["build"]
        res["time_per_persona_ratio"] = last["us_per_persona"] / first["us_per_persona"]
        res["cpu_per_persona_ratio"] = last["cpu_us_per_persona"] / first["cpu_us_per_persona"]
        print(f"  time per persona at n={last['n']:,} / at n={first['n']:,}: {res['time_per_persona_ratio']:.2f} wall, "
              f"{res['cpu_per_persona_ratio']:.2f} cpu")
        if national_records:
            src = national_source(census.parent, t, national_records)
            b, base = measured_build(src, national_n, t / "libnat"), baseline(src, national_n, t / "nat.parquet")
            res["national"] = {"records": national_records, "bytes": src.stat().st_size, "build": b, "baseline": base}
            print(f"  national-size source ({national_records:,} records, {src.stat().st_size / 2**30:.1f} GiB csv), "
                  f"n={national_n:,}: build {b['seconds']:.1f} s, peak {b['peak_rss_mb'] / 1024:.2f} GB | "
                  f"polars baseline {base['seconds']:.1f} s, {base['peak_rss_mb'] / 1024:.2f} GB", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--census", type=Path, default=DEFAULT_CENSUS)
    ap.add_argument("--sizes", default="100000,1000000,3000000")
    ap.add_argument("--national-records", type=int, default=10_000_000, help="0 skips the national-size source")
    ap.add_argument("--national-n", type=int, default=1_000_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.census.is_file():
        sys.exit(f"error: {args.census}: census file not found")
    print(f"build at scale ({args.census.name}; peak RSS of each process)")
    res = scale(args.census, [int(x) for x in args.sizes.split(",")], args.national_records, args.national_n)
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
