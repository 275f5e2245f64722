"""Build speed: personas/s of the whole `personagen build -n 100000` process on the Hawaii PUMS file.

Measures (1) the wall time of the complete CLI process (Python start-up, imports, read, rules, sampling,
decoding, priors, default narrative render, parquet write) as a subprocess, best and median of --repeat runs,
(2) the child's peak RSS (resource.getrusage RUSAGE_CHILDREN), (3) each render style's cost on the built
personas, in-process, (4) the child's CPU seconds (user + sys), which do not depend on other load on the
machine: personas per CPU-second is the figure to compare when the wall time is inflated by other processes.
Target: ≥ 20,000 personas/s for the whole process on a 2-core machine.

    python benchmarks/build.py [--n 100000] [--repeat 3] [--census PATH] [--json] [--compare OTHER_CHECKOUT]

--compare runs the other checkout's own benchmarks/build.py (its code, same machine, same moment) first and
prints both figures side by side with the ratio new/old (rendering must stay within 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CENSUS = REPO.parent / "shared" / "data" / "acs_pums" / "psam_p15.csv.gz"


def run_build(census: Path, n: int, out: Path, styles: list[str]) -> float:
    """Wall seconds of one `personagen build` subprocess."""
    cmd = [sys.executable, "-m", "personagen.cli", "build", "-o", str(out), "--census", str(census), "-n", str(n),
           "--seed", "0"]
    for s in styles:
        cmd += ["--style", s]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"build failed ({r.returncode}): {r.stderr.strip()}")
    return sec


def _baseline(args: argparse.Namespace) -> dict:
    """The other checkout's benchmark figures (its script, its package first on PYTHONPATH)."""
    other = args.compare.resolve()
    script = other / "benchmarks" / "build.py"
    if not script.is_file():
        sys.exit(f"error: {script}: no benchmark script in the --compare checkout")
    env = {**os.environ, "PYTHONPATH": str(other)}
    cmd = [sys.executable, str(script), "--census", str(args.census), "--n", str(args.n), "--repeat",
           str(args.repeat), "--render-rows", str(args.render_rows), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=other)
    if r.returncode != 0:
        sys.exit(f"error: baseline benchmark failed: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _print_comparison(old: dict, new: dict, other: Path) -> None:
    print(f"side by side (old = {other}, new = this checkout; ratio = new/old time, ≤ 1.5 is the target):")
    for s, us in new["render_us_per_row"].items():
        o = old["render_us_per_row"].get(s)
        if o:
            print(f"  render {s:<9}: old {o:7.1f} µs, new {us:7.1f} µs per persona, ratio {us / o:.2f}")
    o, n = old["cpu_seconds_per_run"], new["cpu_seconds_per_run"]
    print(f"  whole build CPU s: old {o:.2f}, new {n:.2f}, ratio {n / o:.2f}; personas/s best: old "
          f"{old['personas_per_s_best']:,}, new {new['personas_per_s_best']:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--census", type=Path, default=DEFAULT_CENSUS)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--render-rows", type=int, default=20_000, help="rows timed per style (in-process)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", type=Path, default=None, help="another checkout to measure side by side")
    args = ap.parse_args()
    baseline = _baseline(args) if args.compare else None
    if not args.census.is_file():
        sys.exit(f"error: {args.census}: census file not found")
    with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
        load_before = os.getloadavg()[0]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # a --compare baseline's children came before
        times = [run_build(args.census, args.n, Path(tmp) / f"lib{i}", []) for i in range(args.repeat)]
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = ru.ru_maxrss / 1024  # KiB on Linux
        cpu_per_run = (ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime) / args.repeat
        import polars as pl

        from personagen import Library
        from personagen.personas.render import STYLES, render_cost

        lib = Library.open(Path(tmp) / "lib0")
        stages = lib.manifest["history"][-1].get("stage_seconds", {})
        df = lib.personas().drop([c for c in lib.personas().columns if c.startswith("text_")])
        df = df.head(args.render_rows)
        # best of 3 per style: the in-process figure is what --compare sets side by side
        render = {s: min((render_cost(df, s) for _ in range(3)), key=lambda r: r["seconds"]) for s in STYLES}
        identical = all((Path(tmp) / f"lib{i}" / "personas.parquet").read_bytes() ==
                        (Path(tmp) / "lib0" / "personas.parquet").read_bytes() for i in range(args.repeat))
        del pl
    best, med = min(times), statistics.median(times)
    res = {
        "census": str(args.census), "n": args.n, "repeat": args.repeat,
        "wall_seconds": [round(t, 3) for t in times],
        "personas_per_s_best": round(args.n / best), "personas_per_s_median": round(args.n / med),
        "peak_rss_mb": round(peak_mb, 1), "cpu_seconds_per_run": round(cpu_per_run, 3),
        "personas_per_cpu_s": round(args.n / cpu_per_run), "load_average_1min": round(load_before, 2),
        "cpu_count": os.cpu_count(), "in_process_stage_seconds": stages,
        "render_us_per_row": {s: round(r["us_per_row"], 2) for s, r in render.items()},
        "render_rows_per_s": {s: round(r["rows_per_s"]) for s, r in render.items()},
        "bit_identical_reruns": identical, "target_personas_per_s": 20_000,
    }
    print(f"personagen build -n {args.n} ({args.census.name}), whole process x{args.repeat}: "
          f"{', '.join(f'{t:.2f}s' for t in times)}")
    print(f"  personas/s: best {res['personas_per_s_best']:,}, median {res['personas_per_s_median']:,} "
          f"(target ≥ 20,000)")
    print(f"  CPU time per build: {cpu_per_run:.2f}s -> {res['personas_per_cpu_s']:,} personas per CPU-second "
          f"(load average before: {load_before:.1f} on {os.cpu_count()} cores)")
    print(f"  peak RSS of the build process: {res['peak_rss_mb']:.0f} MB")
    print(f"  in-process stages (s): {stages}")
    for s in render:
        print(f"  render {s:<9}: {res['render_us_per_row'][s]:7.1f} µs/persona "
              f"({res['render_rows_per_s'][s]:,}/s)")
    print(f"  reruns bit-identical: {identical}")
    if baseline is not None:
        _print_comparison(baseline, res, args.compare)
        res["baseline"] = baseline
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
