"""Mutation score of personagen modules against their own tests (mutmut), equivalent mutants subtracted.

Usage: python scripts/mutation.py personagen/metrics/core.py [MODULE ...] [--tests MODULE=tests/a.py,tests/b.py]

Each module runs in its own mutmut session inside a scratch copy of the checkout (mutmut rewrites the code it
mutates under mutants/; the checkout stays untouched). The scratch copy has a `shared` link to ../shared so the
tests that read the real data run, not skip. Survivors listed in tests/mutation_equivalent.txt (keyed by the
changed line, so renumbering does not matter) are counted as equivalent, not as survivors. Not part of CI: slow.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = REPO / "tests" / "mutation_equivalent.txt"
# A module's own tests: the test files that exercise it (STYLE.md: one test file per module it exercises).
OWN_TESTS: dict[str, list[str]] = {
    "personagen/metrics/core.py": ["tests/test_metrics.py"],
    "personagen/elicit/matching.py": ["tests/test_elicit_matching.py"],
    "personagen/endow/tracker.py": ["tests/test_tracker.py"],
    "personagen/calibrate/rake.py": ["tests/test_calibrate_rake.py"],
    "personagen/calibrate/simplex.py": ["tests/test_calibrate_simplex.py"],
}
PRELOAD = ["numpy", "scipy", "scipy.stats", "scipy.optimize", "scipy.spatial.distance", "scipy.linalg", "pytest",
           "yaml", "jinja2"]
KILLED = {"killed", "timeout", "segfault", "type check caught"}


def mutmut_bin() -> str:
    exe = Path(sys.executable).with_name("mutmut")
    return str(exe) if exe.exists() else "mutmut"


def scratch_copy(dest: Path) -> Path:
    """Copy the tracked (and new, unignored) files of the checkout into dest/w, with dest/w/shared -> ../shared."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    work = dest / "w"
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / f)
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (work / "shared").symlink_to(shared.resolve())
    return work


def configure(work: Path, module: str, tests: list[str]) -> None:
    """Append the session's [tool.mutmut] table: mutate `module` only, run `tests` only."""
    def toml_list(xs: list[str]) -> str:
        return "[" + ", ".join(f'"{x}"' for x in xs) + "]"
    # fork-safe heavy imports, loaded once by the fork server (never polars: its thread pool dies in a fork)
    (work / "mutation-preload.txt").write_text("\n".join(PRELOAD) + "\n", encoding="utf-8")
    with open(work / "pyproject.toml", "a", encoding="utf-8") as fh:
        fh.write("\n[tool.mutmut]\n"
                 'source_paths = ["personagen"]\n'
                 f"only_mutate = {toml_list([module])}\n"
                 f'also_copy = ["templates", "census", "datasets", "shared"]\n'
                 f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
                 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
                 "use_git_change_detection = false\n"
                 # fork from a server that has imported nothing of ours: polars' and BLAS's thread pools do not
                 # survive a fork, and a test that touches them in a forked child hangs (a false "timeout")
                 'process_isolation = "forkserver"\n'
                 'forkserver_warmup = "collect"\n'
                 'preload_modules_file = "mutation-preload.txt"\n'
                 "timeout_constant = 5.0\n")


def mutant_key(work: Path, name: str) -> str:
    """'function: -old line | +new line' for a mutant, from `mutmut show` (stable across renumbering)."""
    out = subprocess.run([mutmut_bin(), "show", name], cwd=work, capture_output=True, text=True).stdout
    minus = [ln[1:].strip() for ln in out.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:].strip() for ln in out.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    func = re.sub(r"__mutmut_\d+$", "", name.rsplit(".", 1)[-1]).removeprefix("x_").replace("ǁ", ".")
    return f"{func}: -{' / '.join(minus)} | +{' / '.join(plus)}"


def load_equivalents() -> dict[str, str]:
    """Equivalent-mutant keys -> reason, from tests/mutation_equivalent.txt ('KEY  ## reason' per line)."""
    eq: dict[str, str] = {}
    if EQUIVALENT_FILE.is_file():
        for line in EQUIVALENT_FILE.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, reason = line.partition("  ## ")
                eq[key.strip()] = reason.strip()
    return eq


def run_module(module: str, tests: list[str], keep: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pg-mutation-"))
    try:
        work = scratch_copy(tmp)
        configure(work, module, tests)
        # mutmut imports the mutated copy from work/mutants; the folder must exist before Python starts, or the
        # import system caches its absence and the stats run silently measures the unmutated install instead
        (work / "mutants").mkdir()
        env = {**os.environ, "PYTHONPATH": str(work / "mutants"), "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}
        with open(work / "mutmut-run.log", "w", encoding="utf-8") as log:
            subprocess.run([mutmut_bin(), "run", "--max-children", str(max(os.cpu_count() or 1, 1))], cwd=work,
                           env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out = subprocess.run([mutmut_bin(), "results", "--all", "true"], cwd=work, env=env,
                             capture_output=True, text=True).stdout
        status: dict[str, str] = {}
        for line in out.splitlines():
            name, _, st = line.strip().rpartition(": ")
            if name:
                status[name] = st.strip()
        eq = load_equivalents()
        survived, equivalent, killed, other = [], [], 0, []
        for name, st in sorted(status.items()):
            if st in KILLED:
                killed += 1
            elif st == "survived" or st == "no tests":
                key = mutant_key(work, name)
                (equivalent if key in eq else survived).append(key)
            else:
                other.append(f"{name}: {st}")
        return {"module": module, "total": len(status), "killed": killed, "survived": survived,
                "equivalent": equivalent, "other": other}
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="+")
    ap.add_argument("--tests", action="append", default=[], help="MODULE=tests/a.py,tests/b.py")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy (to inspect mutants)")
    ap.add_argument("--verbose", action="store_true", help="list every surviving mutant")
    args = ap.parse_args()
    extra = dict(t.split("=", 1) for t in args.tests)
    rows = []
    for module in args.modules:
        tests = extra[module].split(",") if module in extra else OWN_TESTS.get(module)
        if not tests:
            print(f"error: no tests known for {module}; pass --tests {module}=tests/...", file=sys.stderr)
            return 2
        r = run_module(module, tests, args.keep)
        rows.append(r)
        for key in r["survived"] if args.verbose else []:
            print(f"  survived  {key}")
        for o in r["other"]:
            print(f"  {o}")
    print(f"{'module':38} {'mutants':>7} {'killed':>7} {'survived':>8} {'equiv':>6} {'score':>7}")
    for r in rows:
        live = r["total"] - len(r["equivalent"])
        score = r["killed"] / live if live else 1.0
        print(f"{r['module']:38} {r['total']:7d} {r['killed']:7d} {len(r['survived']):8d} "
              f"{len(r['equivalent']):6d} {score:7.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
