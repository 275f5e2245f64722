"""The core path from the repository alone (no ../shared/data): synthetic PUMS rows and a synthetic OpinionQA
wave (tests/data/make_fixtures.py) -> build -> surveys import -> elicit (loopback server) -> calibrate -> publish,
each through the real CLI. About 10 s of CPU on an idle machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
from openai_echo import EchoServer

REPO = Path(__file__).resolve().parents[1]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PERSONAGEN_API_KEY")}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True, cwd=cwd,
                       env=env, timeout=180)
    assert r.returncode == 0, (args, r.stderr)
    return r


def test_build_elicit_calibrate_publish_from_synthetic_fixtures(tmp_path: Path, synthetic: dict[str, Path]) -> None:
    _cli(tmp_path, "build", "-o", "L", "--census", str(synthetic["pums"]), "-n", "20", "--seed", "1")
    _cli(tmp_path, "surveys", "import", "opinionqa", str(synthetic["wave"]), "-o", "S.parquet")
    with EchoServer() as srv:
        r = _cli(tmp_path, "elicit", "L", "--survey", "S.parquet", "--backend", "openai", "--base-url",
                 srv.base_url, "--model", "m", "--no-progress")
        assert srv.total == 20 * 8 and "160 answers" in r.stdout, r.stdout
    _cli(tmp_path, "calibrate", "L", "--survey", "S.parquet", "--name", "c")
    _cli(tmp_path, "publish", "L", "--calibration", "c", "--out", "P")
    personas = pl.read_parquet(next((tmp_path / "P" / "data" / "personas").glob("*.parquet")))
    assert personas.height == 20 and abs(personas["weight"].sum() - 1) < 1e-6
    assert set(personas["state"]) == {"Vermont"} and personas["age"].max() <= 99
