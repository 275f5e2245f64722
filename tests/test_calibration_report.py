"""The calibration report: one type written by write_report, read (validated, upgraded) by read_report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from personagen import Library
from personagen.calibration_report import (
    SCHEMA_VERSION,
    CalibrationReport,
    ReplicateInfo,
    read_report,
    write_report,
)
from personagen.cli import main
from personagen.errors import BadInput

CI = {"value": 0.012, "ci_low": 0.008, "ci_high": 0.017, "n_questions": 7}


def _v0(**over: object) -> dict:
    """A report.json as personagen wrote it before schema_version existed (the keys of that dict)."""
    rep = {"name": "main", "method": "simplex", "survey_id": "opinionqa_W26", "group": "overall",
           "created": "2025-01-01T00:00:00+00:00", "lam": 0.1, "alpha": None, "n_personas": 3, "nonzeros": 3,
           "ess": 2.6, "ess_uniform": 3.0, "negative_weights": 0, "max_weight": 0.5, "solver": "active-set",
           "solver_seconds": 0.01, "n_iter": 4, "objective": 0.002, "pull": "l2", "base": "uniform",
           "block_weighting": False, "seed": 0, "split_seed": None, "max_agents": None, "model": "m",
           "mode": "logprobs", "n_questions": {"train": 10, "valid": 2, "test": 3}, "dropped_personas": 0,
           "questions_not_elicited": 0, "metrics": {s: {"mse": CI} for s in ("train", "valid", "test")},
           "baselines": {"uniform_average": {"test": {"mse": CI}}}, "cv": {"param": "lam", "grid": [0, 0.1]},
           "census_margins": None, "notes": ["a note"], "seconds_total": 0.5,
           "replicates": {"r": 40, "method": "bootstrap", "seed": 0, "seconds": 1.0, "variance": "1/(R-1)",
                          "penalty": "fixed"}, "personas_built": 5, "personas_asked": 3,
           "caveats": ["effective sample size 2.6 of 3 personas fitted"], "survey_path": "/home/x/s.parquet"}
    rep.update(over)
    return rep


def _library(tmp_path: Path, report: str) -> Library:
    lib = Library.init(tmp_path / "lib", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": ["p0", "p1", "p2"], "source": ["census"] * 3}))
    d = lib.calibration_dir("main")
    d.mkdir(parents=True)
    pl.DataFrame({"persona_id": ["p0", "p1", "p2"], "weight": [0.2, 0.3, 0.5]}).write_parquet(d / "weights.parquet")
    (d / "report.json").write_text(report)
    return lib


def test_written_report_reads_back_equal(tmp_path: Path) -> None:
    rep = CalibrationReport.from_dict(_v0(), "fixture")
    rep = CalibrationReport(**{**rep.__dict__, "replicates": ReplicateInfo(40, "bootstrap", 0, 1.0, "v", "fixed")})
    write_report(tmp_path, rep)
    back = read_report(tmp_path / "report.json")
    assert back == rep and back.schema_version == SCHEMA_VERSION
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["schema_version"] == SCHEMA_VERSION and "survey_path" not in saved
    md = (tmp_path / "report.md").read_text()  # rendered from the same object
    assert "# Calibration `main`" in md and "| test |" in md and "warning: effective sample size 2.6" in md


def test_schema_0_report_reads_and_upgrades(tmp_path: Path) -> None:
    d = tmp_path / "old"
    d.mkdir()
    old = _v0()
    del old["name"], old["replicates"]
    (d / "report.json").write_text(json.dumps(old))
    rep = read_report(d / "report.json")
    assert rep.schema_version == SCHEMA_VERSION and rep.name == "old"  # the folder's name
    assert rep.replicates is None and rep.splits_used == ("train", "valid", "test")
    assert rep.metric("test") == 0.012 and rep.metric("test", baseline="uniform_average") == 0.012
    assert rep.caveats == ("effective sample size 2.6 of 3 personas fitted",) and rep.n_asked == 3
    # a pulled panel's report that carried only its name: the weights give the figures, Kish's ESS by hand
    (d / "report.json").write_text(json.dumps({"name": "p", "pulled_from": {"kind": "folder"}}))
    w = np.array([0.2, 0.3, 0.5])
    rep = read_report(d / "report.json", weights=w)
    assert rep.method == "unknown" and rep.n_personas == 3 and rep.nonzeros == 3
    assert rep.ess == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-12)


@pytest.mark.parametrize(("report", "field"), [
    (json.dumps(_v0(ess="high")), "'ess'"),
    (json.dumps(_v0(n_questions={"training": 3})), "'n_questions'"),
    (json.dumps(_v0(metrics={"heldout": {"mse": CI}})), "'metrics'"),
    (json.dumps(_v0(replicates={"r": "forty"})), "'replicates.r'"),
    (json.dumps(_v0(caveats="one string")), "'caveats'"),
    (json.dumps({**_v0(), "schema_version": 99}), "'schema_version'"),
    (json.dumps({k: v for k, v in _v0().items() if k != "method"} | {"schema_version": 1}), "'method'"),
])
def test_corrupted_report_exits_2_naming_file_and_field(tmp_path: Path, capsys, report: str, field: str
                                                        ) -> None:  # noqa: ANN001
    lib = _library(tmp_path, report)
    with pytest.raises(SystemExit) as e:
        main(["sample-panel", str(lib.path), "-n", "5"])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert str(lib.calibration_dir("main") / "report.json") in err and field in err
    with pytest.raises(BadInput, match=field):
        read_report(lib.calibration_dir("main") / "report.json")


def test_report_validates_when_built() -> None:
    with pytest.raises(BadInput, match="'nonzeros'"):
        CalibrationReport(name="x", method="simplex", n_personas=3, nonzeros=-1, ess=2.0)


def test_dict_access_still_reads_with_a_deprecation_warning() -> None:
    rep = CalibrationReport.from_dict(_v0(), "fixture")
    with pytest.warns(DeprecationWarning, match=r"report\.ess"):
        assert rep["ess"] == rep.ess == 2.6
