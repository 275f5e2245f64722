"""`personagen describe`: pool vs PWGTP-weighted census, TVD per attribute, JSON and PNG output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from personagen.census import describe_library
from personagen.cli import main
from personagen.metrics import tvd


@pytest.fixture(scope="module")
def vt_lib(vt_pums: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from personagen import build

    out = tmp_path_factory.mktemp("describe") / "lib"
    build(str(out), census=str(vt_pums), n=5000, seed=1)
    return out


def test_tvd() -> None:
    assert tvd({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0
    assert tvd({"a": 1.0}, {"b": 1.0}) == 1
    assert abs(tvd({"a": 0.6, "b": 0.4}, {"a": 0.5, "b": 0.3, "c": 0.2}) - 0.2) < 1e-12


def test_pool_matches_weighted_census(vt_lib: Path) -> None:
    res = describe_library(vt_lib)
    att = res["attributes"]
    for a in ("age_band", "sex", "race", "education", "employment"):
        assert att[a]["tvd"] < 0.03, (a, att[a]["tvd"])
    assert res["n_personas"] == 5000 and 500_000 < res["census_population"] < 626_299
    assert abs(sum(att["sex"]["census"].values()) - 1) < 1e-9 and set(att["sex"]["pool"]) == {"Male", "Female"}


def test_describe_cli_json_and_plot(vt_lib: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    png = tmp_path / "cmp.png"
    with pytest.raises(SystemExit) as e:
        main(["describe", str(vt_lib), "--plot", str(png), "--json"])
    assert e.value.code == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"age_band", "sex", "race", "education", "employment", "income_band", "health_insurance"} <= \
        set(res["attributes"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    with pytest.raises(SystemExit) as e:
        main(["describe", str(vt_lib)])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "age_band" in text and "TVD" in text


def test_describe_census_override_and_missing(vt_lib: Path, vt_pums: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    moved = tmp_path / "lib"
    shutil.copytree(vt_lib, moved)
    mf = json.loads((moved / "manifest.json").read_text())
    mf["census"]["path"] = str(tmp_path / "gone.csv.gz")
    (moved / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(SystemExit) as e:
        main(["describe", str(moved)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "gone.csv.gz" in err and "--census" in err
    assert describe_library(moved, census=vt_pums)["attributes"]["sex"]["tvd"] < 0.03
    with pytest.raises(SystemExit) as e:
        main(["describe", str(tmp_path / "nolib")])
    assert e.value.code == 2


def test_plot_ticks_and_small_categories() -> None:
    from personagen.census.describe import _panel, percent_decimals

    # tick shares -> percentages: steps of 2.5 % need one decimal ("2.5%", not "2%"/"3%"), 5 % steps none
    assert percent_decimals([0.0, 0.025, 0.05, 0.075]) == 1
    assert percent_decimals([0.0, 0.05, 0.1]) == 0 and percent_decimals([0.0, 0.0025]) == 2
    d = {"tvd": 0.1, "census": {"A": 0.9, "B": 0.08, "c1": 0.006, "c2": 0.004, "c3": 0.01},
         "pool": {"A": 0.88, "B": 0.1, "c1": 0.02, "c2": 0.0}}
    name, _, cats, pool, cen = _panel("x", d, {}, top=10)
    # c1 is small in the census but 2 % in the pool and c3 is 1 %: kept; c2 is the only small one: kept as is
    assert cats == ["A", "B", "c3", "c1", "c2"]
    assert abs(sum(pool) - 1.0) < 1e-9 and abs(sum(cen) - 1.0) < 1e-9
    d["census"].update({"c4": 0.0, "c5": 0.0})
    cats = _panel("x", d, {}, top=10)[2]
    assert cats[-1] == "other (3 categories)" and "c1" in cats
