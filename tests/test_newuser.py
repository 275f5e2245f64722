"""What a new user trips on: a fast `--help`, progress when output is not a terminal, files that respect
the umask, an honest dry run for unpriced models, and outputs that say what happened."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import polars as pl
from openai_echo import EchoServer

from personagen.library import Library
from personagen.surveys import Survey

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("cvxpy", "scipy", "matplotlib", "openai", "polars", "numpy", "torch", "ray", "huggingface_hub",
         "transformers", "pyarrow", "jinja2")


def _env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PERSONAGEN_API_KEY")}
    e["PYTHONPATH"] = str(REPO)
    e.update(extra)
    return e


def _lib(tmp_path: Path, n: int = 6, nq: int = 4) -> tuple[Library, Path]:
    lib = Library.init(tmp_path / "lib", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [f"p{i}" for i in range(n)], "source": ["census"] * n,
                                     "text_narrative": [f"I am person {i}." for i in range(n)]}))
    qs = [{"qid": f"q{j}", "question": f"Q{j}?", "options": ["Yes", "No"],
           "targets": {"overall": {"Yes": 0.5, "No": 0.5}}} for j in range(nq)]
    return lib, Survey.from_records("S", qs).save(tmp_path / "s.parquet")


def test_help_imports_no_heavy_module() -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "personagen.cli", "--help"], capture_output=True,
                       text=True, env=_env(), timeout=60)
    assert r.returncode == 0
    mods = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in mods if m.split(".")[0] in HEAVY}, sorted(m for m in mods if m.split(".")[0] in HEAVY)
    from personagen import commands

    for name in commands.COMMANDS:  # every listed command exists, with its help line
        assert name in r.stdout and commands.HELP[name] in " ".join(r.stdout.split())
        assert commands.load(name) is not None


def test_progress_lines_without_terminal_and_umask(tmp_path: Path) -> None:
    lib, survey = _lib(tmp_path)
    with EchoServer(delay_s=0.03) as srv:
        cmd = [sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey", str(survey),
               "--backend", "openai", "--base-url", srv.base_url, "--model", "m", "--concurrency", "1"]
        r = subprocess.run(["sh", "-c", 'umask 027 && exec "$@"', "sh", *cmd], capture_output=True, text=True,
                           env=_env(PERSONAGEN_PROGRESS_S="0.1"), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("elicit logprobs: ")]
    assert len(lines) >= 2 and lines[-1].startswith("elicit logprobs: 24/24 req (100%)"), r.stderr
    assert "24 answers (persona x question) written as 48 option rows" in r.stdout
    for f in ("responses.parquet", "manifest.json", "llm.sqlite"):
        assert stat.S_IMODE((lib.path / f).stat().st_mode) == 0o640, f  # 0o666 & ~0o027, as open() would


def test_dry_run_unpriced_model_and_no_key(tmp_path: Path) -> None:
    lib, survey = _lib(tmp_path, n=2, nq=2)
    r = subprocess.run([sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey", str(survey),
                        "--backend", "openai", "--base-url", "https://api.example.invalid/v1", "--model",
                        "brand-new-model", "--dry-run"], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "cost unknown" in r.stdout and "--prices" in r.stdout and "$0.0000" not in r.stdout
    assert "warning: no API key set" in r.stderr


def test_sample_panel_without_out_says_nothing_was_written(tmp_path: Path) -> None:
    lib, _ = _lib(tmp_path, n=3)
    d = lib.calibration_dir("main")
    d.mkdir(parents=True)
    pl.DataFrame({"persona_id": ["p0", "p1", "p2"], "weight": [0.2, 0.3, 0.5]}).write_parquet(d / "weights.parquet")
    (d / "report.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "personagen.cli", "sample-panel", str(lib.path), "-n", "10"],
                       capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "sampled 10 draws" in r.stdout and "nothing written" in r.stdout and "-o FILE.parquet" in r.stdout


def test_sample_mode_uses_n_where_supported_else_per_sample_calls(tmp_path: Path) -> None:
    lib, survey = _lib(tmp_path, n=3, nq=2)  # 6 answers of 5 samples each
    base = [sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey", str(survey), "--backend",
            "openai", "--model", "m", "--mode", "sample", "--samples", "5", "--no-progress", "--concurrency", "1"]
    with EchoServer() as srv:
        r = subprocess.run([*base, "--base-url", srv.base_url], capture_output=True, text=True, env=_env(),
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert srv.total == 6 and srv.n_values == [5] * 6  # one call per answer: the prompt is paid once
    resp = Library.open(lib.path).responses()
    # the server alternates A/B over the 5 choices: A, B, A, B, A -> Yes 3/5, No 2/5
    assert sorted(resp.filter(pl.col("qid") == "q0")["prob"].to_list()) == [0.4, 0.4, 0.4, 0.6, 0.6, 0.6]

    lib2, survey2 = _lib(tmp_path / "b", n=3, nq=2)
    base2 = [*base[:4], str(lib2.path), "--survey", str(survey2), *base[7:]]
    with EchoServer(support_n=False) as srv:  # like the bundled llama.cpp server: n > 1 is rejected
        r = subprocess.run([*base2, "--base-url", srv.base_url], capture_output=True, text=True, env=_env(),
                           timeout=120)
        assert r.returncode == 0, r.stderr
        rejected = srv.n_values.count(5)
        assert rejected == 1 and srv.n_values.count(1) == 30  # learnt once, then 5 seeded calls per answer
        qs = [{"qid": "new", "question": "New?", "options": ["Yes", "No"], "targets": {"overall": {"Yes": 1.0}}}]
        s3 = Survey.from_records("S3", qs).save(tmp_path / "s3.parquet")
        r = subprocess.run([*base2[:6], str(s3), *base2[7:], "--base-url", srv.base_url], capture_output=True,
                           text=True, env=_env(), timeout=120)
        assert r.returncode == 0, r.stderr
        assert srv.n_values.count(5) == 1 and srv.n_values.count(1) == 45  # remembered across runs (llm.sqlite)
    assert Library.open(lib2.path).responses()["valid"].all()


def test_library_path_with_hash_and_question_mark(tmp_path: Path) -> None:
    """The cache is opened read-only through a file: URI built by Path.as_uri() ('#', '?' stay in the path)."""
    weird = tmp_path / "we#ird?dir"
    weird.mkdir()
    lib, survey = _lib(weird, n=2, nq=2)
    with EchoServer() as srv:
        base = [sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey", str(survey),
                "--backend", "openai", "--base-url", srv.base_url, "--model", "m", "--no-progress"]
        r = subprocess.run(base, capture_output=True, text=True, env=_env(), timeout=120)
        assert r.returncode == 0 and srv.total == 4, r.stderr
        r = subprocess.run([*base, "--fresh", "--dry-run"], capture_output=True, text=True, env=_env(), timeout=60)
        assert r.returncode == 0
        lib.responses_path.unlink()  # answers gone, cache kept: a dry run sees 4 cached calls, a rerun sends none
        r = subprocess.run([*base, "--dry-run"], capture_output=True, text=True, env=_env(), timeout=60)
        assert r.returncode == 0 and "0 calls (4 cached)" in r.stdout, r.stdout + r.stderr
        r = subprocess.run(base, capture_output=True, text=True, env=_env(), timeout=60)
        assert r.returncode == 0 and srv.total == 4
    assert not (tmp_path / "we").exists() and sorted(p.name for p in weird.iterdir()) == ["lib", "s.parquet"]


def test_publish_counts_answers_as_elicit_does(tmp_path: Path) -> None:
    from test_publish import N
    from test_publish import make_library as make_published_library

    lib = make_published_library(tmp_path / "lib")  # N personas x 2 questions, 2 option rows each
    r = subprocess.run([sys.executable, "-m", "personagen.cli", "publish", str(lib.path), "--out",
                        str(tmp_path / "panel")], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{N} personas, {2 * N} answers (persona x question) as {4 * N} option rows" in r.stdout, r.stdout
