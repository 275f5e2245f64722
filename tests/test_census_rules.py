"""Consistency rules (census/rules.yaml): each contradicting record is removed and counted under its rule."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from personagen.census.codebook import rules
from personagen.census.read import read_raw


@pytest.fixture(scope="module")
def planted(vt_pums: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 real Vermont records with known contradictions planted in the first rows."""
    df = pl.read_csv(gzip.decompress(vt_pums.read_bytes()), infer_schema=False).head(400)
    adults = df.filter(pl.col("AGEP").cast(pl.Int64).is_between(30, 45) & (pl.col("SEX") == "1")
                       & pl.col("OCCP").is_not_null())
    keys = adults["SERIALNO"].head(6).to_list()

    def plant(i: int, **vals: str | None) -> pl.Expr:
        return pl.col("SERIALNO") == keys[i], vals

    edits = [plant(0, AGEP="12", COW=None, ESR=None, PINCP=None, MIL=None, SCHL="09"),   # occupation under 16
             plant(1, FER="1"),                                                          # male gave birth
             plant(2, AGEP="19", SCHL="24", MIL="4"),                                    # doctorate at 19
             plant(3, PWGTP="0"),                                                        # zero weight
             plant(4, OCCP=None, ESR="1"),                                               # employed, no occupation
             plant(5, AGEP="10", OCCP=None, COW=None, ESR=None, MIL=None, SCHL="07")]    # income at 10
    for cond, vals in edits:
        df = df.with_columns([pl.when(cond).then(pl.lit(v, dtype=pl.String)).otherwise(pl.col(c)).alias(c)
                              for c, v in vals.items()])
    path = tmp_path_factory.mktemp("rules") / "psam_p50.csv"
    df.write_csv(path)
    return path


def test_rules_remove_and_count(planted: Path) -> None:
    raw = read_raw(planted, min_age=0)
    c = raw.rule_counts
    assert list(c) == [r["id"] for r in rules()]
    assert c["occupation_under_16"] == 1 and c["fertility_male"] == 1 and c["graduate_degree_under_20"] == 1
    assert c["nonpositive_weight"] == 1 and c["employed_without_occupation"] == 1 and c["income_under_15"] == 1
    assert sum(c.values()) == 6 and raw.df.height == raw.records_read - 6 == 394
    # min-age filtering happens first: under-16 records never reach the rules
    adult = read_raw(planted, min_age=18).rule_counts
    assert adult["occupation_under_16"] == 0 and adult["income_under_15"] == 0


def test_rules_report_in_manifest_and_output(planted: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    from personagen.cli import main

    out = tmp_path / "lib"
    with pytest.raises(SystemExit) as e:
        main(["build", "-o", str(out), "--census", str(planted), "-n", "40", "--min-age", "0", "--json"])
    assert e.value.code == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out.strip().splitlines()[-1])
    assert res["rules_removed"]["fertility_male"] == 1 and sum(res["rules_removed"].values()) == 6
    assert "fertility_male=1" in captured.err
    mf = json.loads((out / "manifest.json").read_text())
    assert mf["history"][-1]["rules_removed"] == res["rules_removed"]
