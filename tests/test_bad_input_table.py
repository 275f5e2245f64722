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


MONEY_CASES: dict[str, tuple[str, list[str]]] = {  # (price table written to prices.yaml, extra elicit options)
    "--prices with a NaN price": ("models:\n  m: {input: .nan, output: 1.0}\n", []),
    "--prices with an infinite price": ("models:\n  m: {input: 1.0, output: .inf}\n", []),
    "--prices with a negative price": ("models:\n  m: {input: -1.0, output: 1.0}\n", []),
    "--timeout 0": ("models: {}\n", ["--timeout", "0"]),
    "--time-limit nan": ("models: {}\n", ["--time-limit", "nan"]),
}


@pytest.mark.parametrize("case", list(MONEY_CASES))
def test_bad_money_input_one_line_exit_2_before_any_call(work: Path, tmp_path: Path, case: str) -> None:
    """Prices and limits are checked before any call: a NaN, infinite or negative price would lose paid answers
    or make costs negative."""
    table, extra = MONEY_CASES[case]
    (tmp_path / "prices.yaml").write_text(table)
    before = _snapshot(work)
    with EchoServer() as srv:
        r = _cli(work, "elicit", "LIB", "--survey", "S.parquet", "--backend", "openai", "--base-url", srv.base_url,
                 "--model", "m", "--prices", str(tmp_path / "prices.yaml"), *extra)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert srv.total == 0 and _snapshot(work) == before


# ---- issue 22: invalid data reaching a library (each case failed on main: exit 1 with an internal exception's
# line, or exit 0 having accepted it) -------------------------------------------------------------------------
def _panel(folder: Path, prob: float | str) -> None:
    """A hand-made exported panel: 2 personas, one 2-option question answered with `prob` on each option."""
    (folder / "data" / "personas").mkdir(parents=True)
    (folder / "data" / "responses").mkdir()
    pl.DataFrame({"persona_id": ["a", "b"], "weight": [0.5, 0.5]}).write_parquet(folder / "data/personas/x.parquet")
    pl.DataFrame({"persona_id": ["a", "a", "b", "b"], "survey_id": "S", "qid": "q0", "option": ["Yes", "No"] * 2,
                  "prob": [prob] * 4}).write_parquet(folder / "data/responses/x.parquet")
    (folder / "personagen.json").write_text('{"format": "personagen-panel"}')


@pytest.fixture(scope="module")
def work22(work: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Damaged libraries, panels and census files of issue 22, next to a copy of `work`'s LIB and S.parquet."""
    import json
    import zipfile

    w = tmp_path_factory.mktemp("bad22")
    shutil.copytree(work / "LIB", w / "LIB")
    shutil.copy(work / "S.parquet", w / "S.parquet")
    mf = json.loads((w / "LIB" / "manifest.json").read_text())
    personas = pl.read_parquet(w / "LIB" / "personas.parquet")
    responses = pl.read_parquet(w / "LIB" / "responses.parquet")
    cal = {"calibrations/c/weights.parquet": pl.DataFrame({"persona_id": ["a", "b", "c"], "weight": [0.2, 0.3, 0.5]})}
    variants = {
        "L_nested": {"manifest.json": '{"schema_version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"},
        "L_census_int": {"manifest.json": json.dumps({**mf, "census": 5})},
        "L_census_path_int": {"manifest.json": json.dumps({**mf, "census": {"path": 5}})},
        "L_history_int": {"manifest.json": json.dumps({**mf, "history": [5]}), **cal},
        "L_no_persona_id": {"personas.parquet": personas.drop("persona_id")},
        "L_dup_ids": {"personas.parquet": personas.with_columns(pl.Series("persona_id", ["a", "a", "c"]))},
        "L_no_prob": {"responses.parquet": responses.drop("prob")},
        "L_text_prob": {"responses.parquet": responses.with_columns(pl.col("prob").cast(pl.String))},
        "L_cal_file": {"calibrations": "not a folder"},
        "L_report_list": {**cal, "calibrations/c/report.json": "[]"},
        "L_report_nested": {**cal, "calibrations/c/report.json": "[" * 100_000 + "]" * 100_000},
    }
    for name, files in variants.items():
        shutil.copytree(w / "LIB", w / name)
        for rel, content in files.items():
            (w / name / rel).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, pl.DataFrame):
                content.write_parquet(w / name / rel)
            else:
                (w / name / rel).write_text(content)
    (w / "t.csv").write_text("y\n1\n2\n3\n4\n")
    head = "SERIALNO,SPORDER,ST,PWGTP,AGEP,SEX\n"
    (w / "age250.csv").write_text(head + "".join(f"2021HU{i:07d},1,50,10,{40 + i},2\n" for i in range(20))
                                  + "2021HU0000099,1,50,10,250,2\n")
    body = (head + "".join(f"2021HU{i:07d},1,50,10,{40 + i},2\n" for i in range(20))).encode()
    with zipfile.ZipFile(w / "csv_pvt.zip", "w") as zf:
        zf.writestr("psam_p50.csv", body)
        zf.writestr("copy/psam_p50.csv", body)
    with zipfile.ZipFile(w / "csv_pvt2.zip", "w") as zf:
        zf.writestr("psam_p50.csv", body)
        zf.writestr("psam_p50b.csv", body)
    for name, prob in {"PAN_sum2": 1.0, "PAN_neg": -0.5}.items():
        _panel(w / name, prob)
    _panel(w / "PAN_nested", 0.5)
    _panel(w / "PAN_future", 0.5)
    (w / "PAN_future" / "personagen.json").write_text('{"format": "personagen-panel", "format_version": 99}')
    (w / "PAN_nested" / "personagen.json").write_text("[" * 100_000 + "]" * 100_000)
    return w


CASES_22: dict[str, list[str]] = {
    "manifest nested 100000 deep (RecursionError)": ["describe", "L_nested"],
    "manifest census is a number (AttributeError)": ["describe", "L_census_int"],
    "manifest census.path is a number (TypeError)": ["describe", "L_census_path_int"],
    "manifest history entry is a number (AttributeError)": ["publish", "L_history_int", "--out", "P_hist"],
    "personas lack persona_id (ColumnNotFoundError)": ["calibrate", "L_no_persona_id", "--survey", "S.parquet"],
    "duplicate persona ids (calibrate wrote weights)": ["calibrate", "L_dup_ids", "--survey", "S.parquet"],
    "responses lack prob (ColumnNotFoundError)": ["calibrate", "L_no_prob", "--survey", "S.parquet"],
    "responses prob is text (InvalidOperationError)": ["calibrate", "L_text_prob", "--survey", "S.parquet"],
    "calibrations is a file (FileExistsError)": ["calibrate", "L_cal_file", "--survey", "S.parquet"],
    "calibration report.json is a list (AttributeError)": ["publish", "L_report_list", "--out", "P_report"],
    "calibration report.json nested (RecursionError)": ["sample-panel", "L_report_nested", "-n", "2"],
    "mixture --out under a file (NotADirectoryError)": ["mixture", "--target", "t.csv", "--out", "t.csv/M"],
    "census AGEP 250": ["build", "-o", "OUT_age", "--census", "age250.csv", "-n", "5"],
    "zip holds the person file twice (same name)": ["build", "-o", "OUT_zip", "--census", "csv_pvt.zip", "-n", "5"],
    "zip holds the person file twice (same bytes)": ["build", "-o", "OUT_zip2", "--census", "csv_pvt2.zip", "-n",
                                                     "5"],
    "pull: probabilities sum to 2": ["pull", "PAN_sum2", "-o", "PL_sum2"],
    "pull: negative probability": ["pull", "PAN_neg", "-o", "PL_neg"],
    "pull: personagen.json nested (RecursionError)": ["pull", "PAN_nested", "-o", "PL_nested"],
    "pull: panel format_version newer than this personagen": ["pull", "PAN_future", "-o", "PL_future"],
}


@pytest.mark.parametrize("case", list(CASES_22))
def test_bad_input_22_one_line_exit_2_nothing_written(work22: Path, case: str) -> None:
    before = _snapshot(work22)
    r = _cli(work22, *CASES_22[case])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (case, r.returncode, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr and "--debug" not in r.stderr, (case, r.stderr)
    assert _snapshot(work22) == before, case


# ---- issue 22: invalid survey files refused at import (exit 2, one line naming the file and the field) ---------
SURVEY_CASES = {  # file: (content, message); more variants run in-process in test_surveys.py
    "ragged.csv": ("qid,question,option,share\na,Q?,Yes,0.5\na,Q?,No,0.5,extra\n",
                   "ragged.csv:3: row has 5 fields, the header has 4"),
    "empty_label.yaml": ("questions:\n - {qid: a, question: q, options: [Yes, ''], targets: {overall: [0.5, 0.5]}}\n",
                         "option 2 has an empty label"),
    "yes_space.yaml": ("questions:\n - {qid: a, question: q, options: [Yes, 'Yes ', No], "
                       "targets: {overall: [0.2, 0.3, 0.5]}}\n", "'Yes' and 'Yes ' differ only in spaces or case"),
}


def test_bad_survey_file_one_line_exit_2(tmp_path: Path) -> None:
    for name, (body, _) in SURVEY_CASES.items():
        (tmp_path / name).write_text(body)
    before = _snapshot(tmp_path)
    for name, (_, msg) in SURVEY_CASES.items():
        r = _cli(tmp_path, "surveys", "import", "generic", name, "-o", "X.parquet")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and name in lines[0] and msg in lines[0], (name, r.stderr)
    assert _snapshot(tmp_path) == before
