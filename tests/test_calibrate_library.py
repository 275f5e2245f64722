"""calibrate_library / `personagen calibrate`: a synthetic library calibrated to a real OpinionQA wave.

The library is built directly (no LLM): 60 personas in two camps whose answers are Dirichlet draws around two
'poles' A_q, B_q with the real overall distribution T_q = (A_q + B_q)/2. The pool over-represents camp A
(45 vs 15), so equal weights are biased on every question and a calibration fitted on the train questions
should carry over to the held-out test questions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import opinionqa_wave

from personagen import CalibrateOptions, Library
from personagen.calibration_report import read_report
from personagen.cli import main

WAVE = "American_Trends_Panel_W26"


@pytest.fixture(scope="module")
def survey(shared_data: Path):  # noqa: ANN201
    return opinionqa_wave(shared_data, WAVE)


def _responses(survey, pids: list[str], camp: np.ndarray, seed: int) -> pl.DataFrame:  # noqa: ANN001
    rng = np.random.default_rng(seed)
    dist = survey.distributions("overall")
    rows = []
    for q in survey.qids:
        t = np.array([dist[q][o] for o in survey.options(q)])
        d = rng.dirichlet(np.full(t.size, 1.0))
        step = min(0.9 * np.min(np.where(d - t > 0, t / np.maximum(d - t, 1e-12), np.inf)),
                   0.9 * np.min(np.where(t - d > 0, t / np.maximum(t - d, 1e-12), np.inf)), 1.0)
        poles = (t + step * (d - t), t - step * (d - t))  # both valid distributions averaging to t
        for pid, c in zip(pids, camp):
            p = rng.dirichlet(60 * poles[c] + 0.05)
            for o, v in zip(survey.options(q), p):
                rows.append((pid, survey.survey_id, q, o, float(v), "logprobs", "fake-llm", 1, True))
    return pl.DataFrame(rows, schema=["persona_id", "survey_id", "qid", "option", "prob", "mode", "model", "n",
                                      "valid"], orient="row")


def make_library(path: Path, survey, *, n: int = 60, seed: int = 0, census: dict | None = None,  # noqa: ANN001
                 personas: pl.DataFrame | None = None) -> Library:
    lib = Library.init(path, seed=seed, census=census)
    if personas is None:
        pids = [f"p{i:03d}" for i in range(n)]
        personas = pl.DataFrame({"persona_id": pids, "source": ["census"] * n,
                                 "weight_census": [1.0 / n] * n})
    lib.write_personas(personas)
    if survey is not None:
        pids = personas["persona_id"].to_list()
        camp = (np.arange(len(pids)) >= 3 * len(pids) // 4).astype(int)
        lib.append_responses(_responses(survey, pids, camp, seed))
    return lib


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:  # noqa: ANN001
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, survey):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("cal")
    sp = survey.save(root / "w26.parquet")
    lib = make_library(root / "lib", survey)
    return lib, sp


def test_calibrate_cli_overall(calibrated, capsys) -> None:  # noqa: ANN001
    lib, sp = calibrated
    code, out, err = run_cli(["calibrate", str(lib.path), "--survey", str(sp), "--name", "w26", "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out.strip().splitlines()[-1])
    d = lib.calibration_dir("w26")
    for f in ("weights.parquet", "report.json", "report.md", "predicted_vs_target.png", "cv_curve.png"):
        assert (d / f).is_file(), f
    w = pl.read_parquet(d / "weights.parquet")
    assert w.columns[:3] == ["persona_id", "weight", "asked"] and w.height == 60 and w["asked"].all()
    reps = [c for c in w.columns if c.startswith("rep_")]
    from personagen.calibrate import DEFAULT_REPLICATES

    assert reps == [f"rep_{b}" for b in range(1, DEFAULT_REPLICATES + 1)]
    for c in reps[:5]:
        assert w[c].sum() == pytest.approx(1.0, abs=1e-9) and w[c].min() >= 0
    assert w["weight"].sum() == pytest.approx(1.0, abs=1e-9)
    assert w["weight"].min() >= 0
    saved = json.loads((d / "report.json").read_text())
    for k in ("name", "method", "survey_id", "group", "created", "lam", "alpha", "n_personas", "nonzeros", "ess",
              "negative_weights", "solver", "solver_seconds", "metrics", "baselines"):
        assert k in saved, k
    assert saved["survey_id"] == "opinionqa_W26" and saved["group"] == "overall" and saved["method"] == "simplex"
    for s in ("train", "valid", "test"):
        assert {"mse", "one_minus_jsd"} <= set(saved["metrics"][s])
        m = saved["metrics"][s]["mse"]
        assert m["ci_low"] <= m["value"] <= m["ci_high"]
        assert s in saved["baselines"]["uniform_average"] and s in saved["baselines"]["uniform_distribution"]
    test_mse = saved["metrics"]["test"]["mse"]["value"]
    assert test_mse <= saved["baselines"]["uniform_average"]["test"]["mse"]["value"] * 1.0001
    assert test_mse <= saved["baselines"]["uniform_distribution"]["test"]["mse"]["value"]
    assert saved["metrics"]["test"]["one_minus_jsd"]["value"] >= \
        saved["baselines"]["uniform_average"]["test"]["one_minus_jsd"]["value"] - 1e-9
    assert 1 <= saved["ess"] <= 60 and saved["negative_weights"] == 0
    assert rep["nonzeros"] == saved["nonzeros"]
    assert saved["schema_version"] == 1 and read_report(d / "report.json").to_dict() == saved  # round trip
    md = (d / "report.md").read_text()
    assert "| test |" in md and "equal weights" in md
    assert Library.open(lib.path).manifest["history"][-1]["stage"] == "calibrate"


def test_calibrate_api_methods(calibrated) -> None:  # noqa: ANN001
    lib, sp = calibrated
    from personagen.surveys import load

    s = load(sp)
    for method in ("sparse", "rake", "p2p-lasso"):
        cal = lib.calibrate(s, CalibrateOptions(method=method, write=False, n_boot=50, replicates=5))  # each method's refit path
        w = cal.weights["weight"].to_numpy()
        assert w.sum() == pytest.approx(1.0, abs=1e-6), method
        assert cal.report.metric("test", "mse") is not None
        if method != "p2p-lasso":
            assert w.min() >= -1e-12
        else:  # P2P stage 2 (paper 000, §3.1): fitted on the train + valid questions, scored on test
            sp_ = cal.prepared.splits
            assert set(cal.prepared.train.qids) == set(sp_["train"]) | set(sp_["valid"]) and sp_["valid"]
            assert any("train + valid" in n for n in cal.report.notes)
    cal = lib.calibrate(s, CalibrateOptions(block_weighting=True, pull="kl", max_agents=10, write=False, n_boot=50,
                                            replicates=5))
    assert cal.weights.select("rep_1").to_series().sum() == pytest.approx(1.0)
    assert cal.report.nonzeros <= 10
    cvr = lib.calibrate(s, CalibrateOptions(write=False, n_boot=20, replicates=3, replicate_penalty="cv"))
    assert "cross-validation" in cvr.report.replicates.penalty and "rep_3" in cvr.weights.columns
    sub = lib.calibrate(s, CalibrateOptions(group="Northeast", write=False, n_boot=50, replicates=0))
    assert sub.report.group == "Northeast"
    cen = lib.calibrate(s, CalibrateOptions(base="census", write=False, n_boot=50, replicates=0))
    assert cen.report.base == "census" and "census_base" in cen.report.baselines


def _bad(tmp_path: Path, survey, capsys, mutate, args_extra=(), survey_path=None):  # noqa: ANN001, ANN201
    lib = make_library(tmp_path / "lib", survey)
    if mutate is not None:
        df = mutate(lib.responses())
        from personagen.store import atomic_write_parquet

        atomic_write_parquet(lib.responses_path, df)
    sp = survey_path or survey.save(tmp_path / "s.parquet")
    code, out, err = run_cli(["calibrate", str(lib.path), "--survey", str(sp), *args_extra], capsys)
    cal = lib.path / "calibrations"
    assert not cal.exists() or not any(cal.iterdir()), "nothing may be written on bad input"
    assert code == 2, (code, err)
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    return err


def test_bad_missing_answers(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    q = survey.split_qids("train")[0]
    err = _bad(tmp_path, survey, capsys,
               lambda df: df.filter(~((pl.col("persona_id") == "p003") & (pl.col("qid") == q))))
    assert "1 of 60 personas lack answers" in err and "--drop-incomplete" in err


def test_drop_incomplete(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    lib = make_library(tmp_path / "lib", survey)
    q = survey.split_qids("train")[0]
    from personagen.store import atomic_write_parquet

    atomic_write_parquet(lib.responses_path, lib.responses().filter(
        ~((pl.col("persona_id") == "p003") & (pl.col("qid") == q))))
    with pytest.warns(UserWarning, match="lack answers"):
        cal = lib.calibrate(survey, CalibrateOptions(drop_incomplete=True, write=False, n_boot=20))
    asked = dict(zip(cal.weights["persona_id"].to_list(), cal.weights["asked"].to_list()))
    assert cal.weights.height == 60 and asked["p003"] is False and sum(asked.values()) == 59
    assert cal.weights.filter(~pl.col("asked"))["weight"].sum() == 0


def test_bad_survey_mismatch(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    err = _bad(tmp_path, survey, capsys, lambda df: df.with_columns(pl.lit("other_wave").alias("survey_id")))
    assert "no responses for survey 'opinionqa_W26'" in err
    err = _bad(tmp_path / "b", survey, capsys, lambda df: df.with_columns((pl.lit("X_") + pl.col("qid")).alias("qid")))
    assert "no question" in err or "no overlap" in err


def test_bad_options_do_not_sum(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    err = _bad(tmp_path, survey, capsys, lambda df: df.with_columns(
        pl.when(pl.col("persona_id") == "p007").then(pl.col("prob") * 0.5).otherwise(pl.col("prob")).alias("prob")))
    assert "sum to" in err and "p007" in err


def test_bad_nan_target(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    f = survey.frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(float("nan"))
                                  .otherwise(pl.col("share")).alias("share"))
    (tmp_path / "s").mkdir()
    sp = tmp_path / "s" / "nan.parquet"
    f.write_parquet(sp)
    err = _bad(tmp_path, survey, capsys, None, survey_path=sp)
    assert "NaN" in err


def test_bad_empty_split(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    f = survey.frame.with_columns(pl.when(pl.col("split") == "test").then(pl.lit("valid"))
                                  .otherwise(pl.col("split")).alias("split"))
    from personagen.surveys import Survey

    (tmp_path / "s").mkdir()
    sp = Survey(f).save(tmp_path / "s" / "notest.parquet")
    err = _bad(tmp_path, survey, capsys, None, survey_path=sp)
    assert "test split" in err


def test_bad_unknown_group(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    err = _bad(tmp_path, survey, capsys, None, args_extra=("--target", "Atlantis"))
    assert "Atlantis" in err


def test_bad_ambiguous_model(tmp_path: Path, survey, capsys) -> None:  # noqa: ANN001
    err = _bad(tmp_path, survey, capsys, lambda df: pl.concat([df, df.with_columns(pl.lit("other").alias("model"))]))
    assert "--model" in err


@pytest.fixture(scope="module")
def vt_library(tmp_path_factory, vt_pums: Path):  # noqa: ANN001, ANN201
    from personagen.census import load_population

    pop = load_population(vt_pums)
    pool = pop.sample(n=400, seed=3).with_row_index("i").with_columns(
        pl.format("vt{}", pl.col("i")).alias("persona_id")).drop("i")
    root = tmp_path_factory.mktemp("vt")
    lib = make_library(root / "lib", None, census={"path": str(vt_pums), "state": "Vermont", "state_code": "50"},
                       personas=pool)
    return lib


def test_census_margins_reduce_tvd(vt_library, capsys) -> None:  # noqa: ANN001
    code, out, err = run_cli(["calibrate", str(vt_library.path), "--census-margins", "age_band,sex,education",
                              "--name", "margins", "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out.strip().splitlines()[-1])
    before, after = rep["margins_tvd"]["before"], rep["margins_tvd"]["after"]
    assert set(before) == {"age_band", "sex", "education"}
    assert sum(after.values()) < 0.5 * sum(before.values())
    for v in before:
        assert after[v] <= before[v] + 1e-9
    w = pl.read_parquet(vt_library.calibration_dir("margins") / "weights.parquet")
    assert w["weight"].sum() == pytest.approx(1.0) and w["weight"].min() >= 0


def test_census_margins_bad_variable(vt_library, capsys) -> None:  # noqa: ANN001
    code, _, err = run_cli(["calibrate", str(vt_library.path), "--census-margins", "age_band,shoe_size"], capsys)
    assert code == 2 and "shoe_size" in err


def test_survey_with_census_margin_constraints(tmp_path: Path, survey, vt_pums: Path) -> None:  # noqa: ANN001
    from personagen.census import load_population

    pool = load_population(vt_pums).sample(n=120, seed=5).with_row_index("i").with_columns(
        pl.format("vt{}", pl.col("i")).alias("persona_id")).drop("i")
    lib = make_library(tmp_path / "lib", survey, census={"path": str(vt_pums), "state": "Vermont"}, personas=pool)
    cal = lib.calibrate(survey, CalibrateOptions(census_margins="age_band,sex", name="both", n_boot=50, replicates=5))
    rep = cal.report
    assert rep.census_margins == ("age_band", "sex")
    after = rep.margins_tvd["after"]
    assert after["sex"] <= 0.01 + 1e-6 and after["age_band"] <= 0.5 * 7 * 0.01 + 1e-6  # ±0.01 per category
    assert (lib.calibration_dir("both") / "report.md").read_text().count("| age_band |") == 1
