"""`personagen build`: offline build from the Vermont PUMS file, bit-identical reruns, bad input leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from personagen.cli import main


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "PERSONAGEN_CENSUS_URL": "http://127.0.0.1:9/offline", **(env or {})}
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True, env=e,
                          timeout=300)


@pytest.fixture(scope="module")
def two_builds(vt_pums: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("build")
    a, b = d / "a", d / "b"
    r1 = _cli("build", "-o", str(a), "--census", str(vt_pums), "-n", "5000", "--seed", "1", "--json")
    assert r1.returncode == 0, r1.stderr
    r2 = _cli("build", "-o", str(b), "--census", str(vt_pums), "-n", "5000", "--seed", "1")
    assert r2.returncode == 0, r2.stderr
    return a, b, json.loads(r1.stdout.strip().splitlines()[-1])


def test_build_offline_is_bit_identical(two_builds: tuple[Path, Path, dict]) -> None:
    a, b, res = two_builds
    assert (a / "personas.parquet").read_bytes() == (b / "personas.parquet").read_bytes()
    assert res["n"] == 5000 and res["census"]["year"] == 2018 and res["census"]["state"] == "VT"
    # 5,000 of Vermont's 5,379 adult records cannot be a self-weighting distinct draw: with replacement
    assert res["config"]["sampling"] == "pwgtp-pps-with-replacement" and res["config"]["sampling_chosen"] == "default"
    assert res["unique_records"] < 5000


def test_persona_columns_and_weights(two_builds: tuple[Path, Path, dict], vt_pums: Path) -> None:
    a, _, res = two_builds
    df = pl.read_parquet(a / "personas.parquet")
    lead = ["persona_id", "source", "mode", "enriched", "weight_census", "pwgtp", "serialno", "state",
            "state_code", "puma", "age", "age_band", "sex", "race", "hispanic", "ancestry", "language",
            "english_ability", "education", "employment", "class_of_worker", "industry", "occupation", "income",
            "income_band", "marital_status", "birthplace", "citizenship", "nativity", "veteran", "disability",
            "dis_cognitive", "dis_vision", "dis_hearing", "dis_ambulatory", "dis_selfcare", "dis_independent",
            "health_insurance", "fertility"]
    assert df.columns[:len(lead)] == lead
    assert "text_narrative" in df.columns and "big5_openness" in df.columns
    assert df["persona_id"].n_unique() == 5000 and df["persona_id"].dtype == pl.String
    assert df["source"].unique().to_list() == ["census"] and not df["enriched"].any()
    assert abs(df["weight_census"].sum() - 1.0) < 1e-9
    assert (df["weight_census"] * df["pwgtp"].sum() - df["pwgtp"]).abs().max() < 1e-6
    assert df["age"].min() >= 18 and df["income"].dtype == pl.Int64
    assert df["text_narrative"].str.starts_with("You are a").all()
    mf = json.loads((a / "manifest.json").read_text())
    assert mf["seed"] == 1 and mf["census"]["path"] == str(vt_pums.resolve())
    assert len(mf["census"]["sha256"]) == 64 and mf["history"][-1]["stage"] == "build"
    assert set(mf["history"][-1]["rules_removed"]) >= {"occupation_under_16", "fertility_male"}


def test_different_seed_and_without_replacement(vt_pums: Path, tmp_path: Path) -> None:
    from personagen import build

    lib = build(str(tmp_path / "w"), census=str(vt_pums), n=300, seed=2, replace=False, styles=("qa", "bio"))
    df = lib.personas()
    assert df.select(pl.struct("serialno", "persona_id")).height == 300
    assert df["serialno"].n_unique() <= 300 and df["persona_id"].str.ends_with("-0").all()
    assert {"text_qa", "text_bio"} <= set(df.columns) and "text_narrative" not in df.columns
    assert lib.manifest["config"]["sampling"] == "pareto-pips-without-replacement"


def test_distinct_people_by_default_and_with_replacement_on_request(vt_pums: Path, tmp_path: Path) -> None:
    r = _cli("build", "-o", str(tmp_path / "d"), "--census", str(vt_pums), "-n", "400", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["unique_records"] == 400 and res["config"]["sampling"] == "pareto-pips-without-replacement"
    assert "400 distinct records, distinct people" in r.stderr
    r = _cli("build", "-o", str(tmp_path / "r"), "--census", str(vt_pums), "-n", "400", "--seed", "3",
             "--with-replacement", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["config"]["sampling"] == "pwgtp-pps-with-replacement" and res["config"]["replace"] is True
    assert res["config"]["sampling_chosen"] == "requested" and res["unique_records"] < 400


def _bad(args: list[str], parent: Path, capsys: pytest.CaptureFixture) -> str:
    before = sorted(os.listdir(parent))
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert sorted(os.listdir(parent)) == before  # no library, no temp dirs left
    return err


def test_bad_input_exits_2_and_leaves_nothing(vt_pums: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "LIB")
    base = ["build", "-o", out, "-n", "20"]
    assert "nope.csv.gz" in _bad(base + ["--census", str(tmp_path / "nope.csv.gz")], tmp_path, capsys)
    nopw = tmp_path / "nopw.csv"
    pl.DataFrame({"SERIALNO": ["2018HU1"], "AGEP": [30], "ST": [50]}).write_csv(nopw)
    assert "PWGTP" in _bad(base + ["--census", str(nopw)], tmp_path, capsys)
    assert "--state QQ" in _bad(base + ["--state", "QQ"], tmp_path, capsys)
    assert "-n 0" in _bad(["build", "-o", out, "-n", "0", "--census", str(vt_pums)], tmp_path, capsys)
    assert "-n -3" in _bad(["build", "-o", out, "-n", "-3", "--census", str(vt_pums)], tmp_path, capsys)
    assert "--style" in _bad(base + ["--census", str(vt_pums), "--style", "sonnet"], tmp_path, capsys)
    assert "year 2020 is not supported" in _bad(base + ["--state", "VT", "--year", "2020"], tmp_path, capsys)
    assert "without replacement" in _bad(["build", "-o", out, "-n", "999999", "--without-replacement",
                                          "--census", str(vt_pums)], tmp_path, capsys)
    assert "--census" in _bad(["build", "-o", out], tmp_path, capsys)
    # unwritable output: the parent is a file
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "not an existing directory" in _bad(["build", "-o", str(blocker / "LIB"), "-n", "5", "--census",
                                                str(vt_pums)], tmp_path, capsys)
    # existing non-empty output
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert "not empty" in _bad(["build", "-o", str(full), "-n", "5", "--census", str(vt_pums)], tmp_path, capsys)
    assert (full / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only-mode directory")
def test_unwritable_parent(vt_pums: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert "not writable" in _bad(["build", "-o", str(ro / "LIB"), "-n", "5", "--census", str(vt_pums)],
                                      ro, capsys)
    finally:
        ro.chmod(0o755)


def test_failure_inside_build_removes_staged_dir(vt_pums: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import personagen.priors

    def boom(df: pl.DataFrame, seed: int) -> pl.DataFrame:
        raise RuntimeError("priors failed")

    monkeypatch.setattr(personagen.priors, "add_priors", boom)
    from personagen.pipeline import build_library

    with pytest.raises(RuntimeError):
        build_library(tmp_path / "LIB", census=vt_pums, n=10)
    assert os.listdir(tmp_path) == []


def test_batched_build_equals_one_batch(two_builds: tuple[Path, Path, dict], vt_pums: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Personas are decoded, rendered and written in batches (one parquet row group each); the batch size changes
    nothing in the rows."""
    import pyarrow.parquet as pq

    from personagen import pipeline

    a, _, _ = two_builds
    assert pq.ParquetFile(a / "personas.parquet").metadata.num_row_groups == 1  # 5000 < one batch
    monkeypatch.setattr(pipeline, "RENDER_BATCH", 1234)
    pipeline.build_library(tmp_path / "small", vt_pums, n=5000, seed=1)
    assert pq.ParquetFile(tmp_path / "small" / "personas.parquet").metadata.num_row_groups == 5
    assert pl.read_parquet(tmp_path / "small" / "personas.parquet").equals(pl.read_parquet(a / "personas.parquet"))
