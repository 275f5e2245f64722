"""Table-driven bad input: every case runs the real CLI in a subprocess and must end with exit 2, exactly one
line on stderr, no traceback, and the library (and the whole work folder) byte-identical before and after."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from openai_echo import EchoServer

from personagen.library import Library
from personagen.surveys import Survey

REPO = Path(__file__).resolve().parents[1]


def _cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PERSONAGEN_API_KEY")}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=120)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LIB (personas + responses), S.parquet, damaged variants of each, a bad template folder."""
    w = tmp_path_factory.mktemp("bad")
    lib = Library.init(w / "LIB", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": ["a", "b", "c"], "source": ["census"] * 3,
                                     "age": [30, 40, 50], "text_narrative": ["I am A.", "I am B.", "I am C."]}))
    qs = [{"qid": f"q{j}", "question": f"Q{j}?", "options": ["Yes", "No"],
           "targets": {"overall": {"Yes": 0.6, "No": 0.4}}} for j in range(6)]
    Survey.from_records("S", qs).save(w / "S.parquet")
    lib.append_responses(pl.DataFrame([{"persona_id": p, "survey_id": "S", "qid": f"q{j}", "option": o,
                                        "prob": 0.5, "mode": "logprobs", "model": "m", "n": 1, "valid": True}
                                       for p in "abc" for j in range(6) for o in ("Yes", "No")]))
    for name, mutate in {
        "LIB_list": lambda d: (d / "manifest.json").write_text("[]"),
        "LIB_trunc_personas": lambda d: (d / "personas.parquet").write_bytes(
            (d / "personas.parquet").read_bytes()[:200]),
        "LIB_trunc_responses": lambda d: (d / "responses.parquet").write_bytes(
            (d / "responses.parquet").read_bytes()[:150]),
        "LIB_bad_sqlite": lambda d: (d / "llm.sqlite").write_bytes(b"this is not a database" * 100),
        "LIB_dir_sqlite": lambda d: (d / "llm.sqlite").mkdir(),
    }.items():
        shutil.copytree(w / "LIB", w / name)
        mutate(w / name)
    s = pl.read_parquet(w / "S.parquet")
    s.with_columns(pl.col("option_index").cast(pl.String)).write_parquet(w / "S_str.parquet")
    s.with_columns(pl.lit(None, dtype=pl.String).alias("survey_id")).write_parquet(w / "S_null.parquet")
    raw = gzip.compress(b"SERIALNO,AGEP,PWGTP,ST\n" + b"2018HU1,30,10,50\n" * 5000)
    (w / "trunc.csv.gz").write_bytes(raw[: len(raw) // 2])
    (w / "tpl" / "elicit").mkdir(parents=True)
    (w / "tpl" / "elicit" / "system.j2").write_text("You are {{ persona }} from {{ hometown }}.")
    (w / "t.csv").write_text("y\n1\n2\n3\n4\n")
    (w / "p.csv").write_text("prompt\nShould the city raise taxes for parks?\nIs remote work good for families?\n")
    return w


OPENAI = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
CASES: dict[str, list[str]] = {
    "manifest holds []": ["describe", "LIB_list"],
    "truncated personas.parquet": ["describe", "LIB_trunc_personas"],
    "truncated personas.parquet (elicit)": ["elicit", "LIB_trunc_personas", "--survey", "S.parquet", "--dry-run",
                                            *OPENAI],
    "truncated responses.parquet": ["calibrate", "LIB_trunc_responses", "--survey", "S.parquet"],
    "truncated csv.gz": ["build", "-o", "OUT", "--census", "trunc.csv.gz", "-n", "5"],
    "survey option_index is text": ["surveys", "show", "S_str.parquet"],
    "survey option_index is text (elicit)": ["elicit", "LIB", "--survey", "S_str.parquet", "--dry-run", *OPENAI],
    "survey_id null": ["elicit", "LIB", "--survey", "S_null.parquet", "--dry-run", *OPENAI],
    "damaged llm.sqlite": ["elicit", "LIB_bad_sqlite", "--survey", "S.parquet", "--dry-run", *OPENAI],
    "llm.sqlite is a directory": ["elicit", "LIB_dir_sqlite", "--survey", "S.parquet", "--dry-run", *OPENAI],
    "base url [::1": ["elicit", "LIB", "--survey", "S.parquet", "--backend", "openai", "--base-url", "http://[::1",
                      "--model", "m"],
    "template undefined variable": ["elicit", "LIB", "--survey", "S.parquet", "--templates", "tpl", "--dry-run",
                                    *OPENAI],
    "build -n 1e12": ["build", "-o", "OUT", "--census", "trunc.csv.gz", "-n", "1000000000000"],
    "sample-panel -n 1e11": ["sample-panel", "LIB", "-n", "1e11"],
    "samples 1e8 dry-run": ["elicit", "LIB", "--survey", "S.parquet", "--mode", "sample", "--samples", "1e8",
                            "--dry-run", *OPENAI],
    "samples 100000000 dry-run": ["elicit", "LIB", "--survey", "S.parquet", "--mode", "sample", "--samples",
                                  "100000000", "--dry-run", *OPENAI],
    "endow --per-call 0": ["endow", "LIB", "--survey", "S.parquet", "--budget", "4", "--per-call", "0"],
    "mixture --range 5 1": ["mixture", "--target", "t.csv", "--out", "M", "--range", "5", "1"],
    "describe --plot out.txt": ["describe", "LIB", "--plot", "out.txt"],
    "--max-requests 0": ["elicit", "LIB", "--survey", "S.parquet", "--max-requests", "0", *OPENAI],
    "--max-tokens -5": ["elicit", "LIB", "--survey", "S.parquet", "--max-tokens", "-5", *OPENAI],
    "--temperature nan": ["elicit", "LIB", "--survey", "S.parquet", "--temperature", "nan", *OPENAI],
    "--temperature -1": ["elicit", "LIB", "--survey", "S.parquet", "--temperature", "-1", *OPENAI],
    "--initial-per-mode 0": ["endow", "LIB", "--survey", "S.parquet", "--budget", "4", "--initial-per-mode", "0"],
    "--lowest-k -1": ["endow", "LIB", "--survey", "S.parquet", "--budget", "4", "--lowest-k", "-1"],
    "--step-size 0": ["endow", "LIB", "--survey", "S.parquet", "--budget", "4", "--step-size", "0"],
    "--dedup-threshold nan": ["enrich", "LIB", "--dedup-threshold", "nan"],
    "--dedup-threshold 0": ["enrich", "LIB", "--dedup-threshold", "0"],
    "mixture --name ../../x": ["mixture", "--target", "t.csv", "--out", "M", "--name", "../../x"],
    "calibrate --name ../x": ["calibrate", "LIB", "--survey", "S.parquet", "--name", "../x"],
    "publish --calibration ../x": ["publish", "LIB", "--out", "P", "--calibration", "../x"],
    "calibrate --folds 1": ["calibrate", "LIB", "--survey", "S.parquet", "--folds", "1"],
    "calibrate --lam-search bogus": ["calibrate", "LIB", "--survey", "S.parquet", "--lam-search", "bogus"],
    "build --seed -1": ["build", "-o", "OUT", "--census", "trunc.csv.gz", "--seed", "-1"],
    "surveys import missing": ["surveys", "import", "generic", "nope.csv", "-o", "X.parquet"],
    "surveys import --survey-id ../x": ["surveys", "import", "generic", "t.csv", "-o", "X.parquet", "--survey-id", "../x"],
    "serve-local --port 70000": ["serve-local", "--port", "70000"],
    "bench solver --agents 1e9": ["bench", "solver", "--agents", "1000000000"],
    "bench simulate --agents 1e12": ["bench", "simulate", "--agents", "1000000000000"],
    "bench census truncated": ["bench", "census", "--census", "trunc.csv.gz"],
    "pull ../x": ["pull", "../x", "-o", "PL"],
    "pull manifest []": ["pull", "LIB_list", "-o", "PL"],
    "prefs --prompts missing": ["prefs", "LIB", "--prompts", "nope.jsonl", *OPENAI],
    "prefs --per-persona 1e12": ["prefs", "LIB", "--prompts", "p.csv", "--per-persona", "1000000000000",
                                 "--dry-run", *OPENAI],
    "prefs --heldout-fraction nan": ["prefs", "LIB", "--prompts", "p.csv", "--heldout-fraction", "nan", *OPENAI],
    "prefs nothing survives the filter": ["prefs", "LIB", "--prompts", "t.csv", "--prompt-column", "y",
                                          "--dry-run", *OPENAI],
    "prefs-eval --limit 0": ["prefs-eval", "LIB", "--limit", "0", *OPENAI],
    "prefs-eval --second-temperature nan": ["prefs-eval", "LIB", "--second-temperature", "nan", *OPENAI],
    "prefs-eval without pairs": ["prefs-eval", "LIB", *OPENAI],
    "finetune --threads 0": ["finetune", "--train", "S.parquet", "--out", "FT", "--threads", "0"],
    "finetune --lr nan": ["finetune", "--train", "S.parquet", "--out", "FT", "--lr", "nan"],
    "finetune --train text option_index": ["finetune", "--train", "S_str.parquet", "--out", "FT"],
    "reproduce subpop --reps 1e12": ["reproduce", "subpop", "--train", "S.parquet", "--eval", "S.parquet",
                                     "--reps", "1000000000000", "--out", "RS"],
    "reproduce subpop unusable --eval": ["reproduce", "subpop", "--train", "S.parquet", "--eval", "S.parquet",
                                         "--out", "RS"],
    "reproduce p2p --budget 1e12": ["reproduce", "p2p", "LIB", "--budget", "1000000000000", "--dry-run",
                                    "--out", "RP", *OPENAI],
    "reproduce p2p not a wave": ["reproduce", "p2p", "LIB", "--dry-run", "--out", "RP", *OPENAI],
    "reproduce promptmix --draws -1": ["reproduce", "promptmix", "--target", "big5", "--data", "t.csv",
                                       "--draws", "-1", "--out", "RM", *OPENAI],
    "estimate --level 2": ["estimate", "LIB", "--survey", "S.parquet", "--level", "2"],
    "estimate without a calibration": ["estimate", "LIB", "--survey", "S.parquet"],
}


def test_the_table_covers_every_command() -> None:
    """Each command listed by `personagen --help` has at least one bad-input case here."""
    from personagen.commands import COMMANDS

    assert set(COMMANDS) <= {args[0] for args in CASES.values()}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_exit_2_nothing_written(work: Path, case: str) -> None:
    before = _snapshot(work)
    r = _cli(work, *CASES[case])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (case, r.returncode, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, (case, r.stderr)
    assert _snapshot(work) == before, case


@pytest.mark.parametrize("cmd", [["elicit", "LIB", "--survey", "S.parquet"],
                                 ["endow", "LIB", "--survey", "S.parquet", "--budget", "4"],
                                 ["mixture", "--target", "t.csv", "--out", "M"],
                                 ["enrich", "LIB"],
                                 ["prefs", "LIB", "--prompts", "p.csv"]])
def test_unknown_model_touches_nothing(work: Path, cmd: list[str]) -> None:
    """A model the server does not serve: no llm.sqlite, no history entry, no endow/ or new library left."""
    before = _snapshot(work)
    with EchoServer(model="served") as srv:
        r = _cli(work, *cmd, "--backend", "openai", "--base-url", srv.base_url, "--model", "not-served")
    assert r.returncode == 2 and "not-served" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _snapshot(work) == before


def test_debug_shows_the_traceback(work: Path) -> None:
    r = _cli(work, "--debug", "describe", "LIB_list")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_stale_partial_and_temp_of_dead_process_are_cleaned(work: Path, tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".P.pid{dead}.abc.partial"
    (stale / "data").mkdir(parents=True)
    live = tmp_path / f".P.pid{os.getpid()}.xyz.partial"  # a live run's folder is left alone
    live.mkdir()
    r = _cli(work, "publish", "LIB", "--out", str(tmp_path / "P"), "--calibration", "nope")
    assert r.returncode == 2  # refused (no such calibration) before staging
    r = _cli(tmp_path, "build", "-o", "P", "--census", str(work / "trunc.csv.gz"), "-n", "5")
    assert not stale.exists() and live.exists()


def _small_disk() -> None:
    """In the child: files may grow to 60 kB only, and a write past that fails with EFBIG (as on a full disk)
    instead of killing the process."""
    import resource
    import signal

    resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_full_disk_one_line_and_nothing_left(work: Path, tmp_path: Path, vt_pums: Path) -> None:
    e = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "personagen.cli", "build", "-o", "BIG", "--census", str(vt_pums),
                        "-n", "300"], capture_output=True, text=True, cwd=tmp_path, env=e, timeout=300,
                       preexec_fn=_small_disk)
    assert r.returncode == 1 and "free some space" in r.stderr and "BIG/" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []

    lib = Library.init(tmp_path / "lib", seed=0)  # a cache that cannot grow: no call is paid, nothing recorded
    lib.write_personas(pl.DataFrame({"persona_id": [f"p{i}" for i in range(30)], "source": ["census"] * 30,
                                     "text_narrative": [f"I am person {i}. " * 20 for i in range(30)]}))
    before = _snapshot(tmp_path)
    with EchoServer() as srv:
        r = subprocess.run([sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey",
                            str(work / "S.parquet"), "--backend", "openai", "--base-url", srv.base_url, "--model",
                            "m", "--no-progress"], capture_output=True, text=True, env=e, timeout=300,
                           preexec_fn=_small_disk)
        assert srv.total == 0
    assert r.returncode == 1 and "free some space" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    after = {k: v for k, v in _snapshot(tmp_path).items() if k != "lib/.lock"}  # the library's lock file
    assert after == before
