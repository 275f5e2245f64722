"""`personagen describe LIB --calibration NAME`: a 400-persona pool drawn from the real Vermont PUMS, reweighted
to census margins; ESS, design effect, TVD and ASMD checked against their definitions computed here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_calibrate_library import make_library, run_cli

from personagen import CalibrateOptions, DescribeOptions


@pytest.fixture(scope="module")
def vt(tmp_path_factory, vt_pums: Path):  # noqa: ANN001, ANN201
    from personagen.census import load_population

    pool = load_population(vt_pums).sample(n=400, seed=3).with_row_index("i").with_columns(
        pl.format("vt{}", pl.col("i")).alias("persona_id")).drop("i")
    lib = make_library(tmp_path_factory.mktemp("vtd") / "lib", None,
                       census={"path": str(vt_pums), "state": "Vermont", "state_code": "50"}, personas=pool)
    lib.calibrate(None, CalibrateOptions(census_margins="age_band,sex", name="m", replicates=0, n_boot=10))
    return lib


def test_describe_calibration_json_and_plot(vt, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    png = tmp_path / "d.png"
    code, out, err = run_cli(["describe", str(vt.path), "--calibration", "m", "--plot", str(png), "--json"], capsys)
    assert code == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    w = pl.read_parquet(vt.calibration_dir("m") / "weights.parquet")["weight"].to_numpy()
    assert res["ess"] == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-12)
    assert res["design_effect"] == pytest.approx(len(w) / res["ess"])
    a = res["attributes"]["age_band"]
    assert a["tvd_after"] < a["tvd_before"]
    p, c = a["weighted"], a["census"]
    assert a["tvd_after"] == pytest.approx(0.5 * sum(abs(p.get(k, 0) - c.get(k, 0)) for k in set(p) | set(c)))
    hand = np.mean([abs(p.get(k, 0) - v) / math.sqrt(v * (1 - v)) for k, v in c.items() if 0 < v < 1])
    assert a["asmd_after"] == pytest.approx(hand)
    pers = vt.personas().select("persona_id", "age_band")
    ww = pl.read_parquet(vt.calibration_dir("m") / "weights.parquet").join(pers, on="persona_id")
    share = ww.filter(pl.col("age_band") == "18-24")["weight"].sum()
    assert p.get("18-24", 0.0) == pytest.approx(share)
    assert {"pool", "weighted", "census"} <= set(res["attributes"]["education"])
    assert png.stat().st_size > 10_000
    assert vt.describe(DescribeOptions(calibration="m"))["design_effect"] == pytest.approx(res["design_effect"])
