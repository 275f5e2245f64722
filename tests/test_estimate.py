"""`personagen estimate` / Library.estimate: weighted shares from a calibrated library of the real OpinionQA W26
wave (synthetic answers, as in test_calibrate_library), checked against a hand recomputation from
responses.parquet + weights.parquet, replicate-weight standard errors against a direct bootstrap, and the
split-conformal prediction interval against its definition."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import opinionqa_wave
from test_calibrate_library import make_library, run_cli

from personagen import CalibrateOptions
from personagen.calibrate import EstimateOptions, conformal_halfwidth, estimate_library, fit_weights
from personagen.calibrate.replicates import bootstrap_variance, half_sample_replicates

WAVE = "American_Trends_Panel_W26"
REGIONS = ("Northeast", "South", "West", "Midwest")


@pytest.fixture(scope="module")
def w26(shared_data: Path):  # noqa: ANN201
    return opinionqa_wave(shared_data, WAVE)


@pytest.fixture(scope="module")
def panel(tmp_path_factory, w26):  # noqa: ANN001, ANN201
    root = tmp_path_factory.mktemp("est")
    n = 60
    personas = pl.DataFrame({"persona_id": [f"p{i:03d}" for i in range(n)], "source": ["census"] * n,
                             "weight_census": [1.0 / n] * n, "region": [REGIONS[i % 4] for i in range(n)]})
    lib = make_library(root / "lib", w26, personas=personas)
    sp = w26.save(root / "w26.parquet")
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a notebook user's backend: calibrate's plots must not switch it
    try:
        cal = lib.calibrate(w26, CalibrateOptions(name="w26", n_boot=20, replicates=200, replicate_penalty="fixed"))
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    return lib, sp, cal


def _hand(lib, by: str | None) -> dict[tuple[str, str, str], float]:  # noqa: ANN001
    """Σ w·prob / Σ w over personas with a valid answer, straight from the two parquet files."""
    r = pl.read_parquet(lib.responses_path).filter(pl.col("valid"))
    w = pl.read_parquet(lib.calibration_dir("w26") / "weights.parquet").select("persona_id", "weight")
    p = pl.read_parquet(lib.personas_path).select("persona_id", "region")
    j = r.join(w, on="persona_id").join(p, on="persona_id")
    key = pl.lit("overall") if by is None else pl.col(by)
    j = j.with_columns(key.alias("g"))
    den = j.select("persona_id", "qid", "g", "weight").unique().group_by("qid", "g").agg(pl.col("weight").sum()
                                                                                         .alias("den"))
    num = j.group_by("qid", "option", "g").agg((pl.col("weight") * pl.col("prob")).sum().alias("num"))
    out = num.join(den, on=["qid", "g"]).with_columns((pl.col("num") / pl.col("den")).alias("e"))
    return {(q, o, g): e for q, o, g, e in out.select("qid", "option", "g", "e").iter_rows()}


def test_estimate_equals_hand_recomputation(panel, w26) -> None:  # noqa: ANN001
    lib, _, _ = panel
    tab = lib.estimate(w26, EstimateOptions(calibration="w26", by=["region"]))
    assert {"qid", "option", "group", "estimate", "se", "lo", "hi", "n", "ess", "target", "split", "plo",
            "phi"} <= set(tab.columns)
    hand = {**_hand(lib, None), **_hand(lib, "region")}
    assert tab.height == len(hand) == len(w26.frame.filter(pl.col("group") == "overall")) * 5
    for q, o, g, e in tab.select("qid", "option", "group", "estimate").iter_rows():
        assert e == pytest.approx(hand[(q, o, g)], abs=1e-9)
    ov = tab.filter(pl.col("group") == "overall")
    dist = w26.distributions("overall")
    for q, o, t, s in ov.select("qid", "option", "target", "split").iter_rows():
        assert t == pytest.approx(dist[q][o]) and s == w26.split_of(q)
    ne = tab.filter(pl.col("group") == "Northeast")
    assert ne["target"].to_list()[0] == pytest.approx(w26.distributions("Northeast")[ne["qid"][0]][ne["option"][0]])
    w = pl.read_parquet(lib.calibration_dir("w26") / "weights.parquet")
    wn = w.join(pl.read_parquet(lib.personas_path).select("persona_id", "region"), on="persona_id")
    wne = wn.filter(pl.col("region") == "Northeast")["weight"].to_numpy()
    assert ne["ess"][0] == pytest.approx(wne.sum() ** 2 / (wne ** 2).sum())
    assert ne["n"][0] == int((wne > 0).sum())
    assert (tab["lo"] <= tab["estimate"] + 1e-12).all() and (tab["estimate"] <= tab["hi"] + 1e-12).all()


def test_replicate_se_matches_direct_half_sampling(panel, w26) -> None:  # noqa: ANN001
    """SE from the stored replicate weights vs half-sampling written out here: draw n/2 personas without
    replacement, refit at the same λ on their columns, predict the shares from those columns (n = 60: no shrink)."""
    lib, _, cal = panel
    prep = cal.prepared
    lam = cal.report.lam
    tab = estimate_library(lib, w26, EstimateOptions(calibration="w26"))
    rng = np.random.default_rng(12345)
    n = prep.train.D.shape[1]
    qs = prep.splits["test"]
    test = prep.design.take(qs)
    boots = []
    for _ in range(200):
        idx = rng.choice(n, n // 2, replace=False)
        wb = fit_weights(prep.train.D[:, idx], prep.r_train, lam=lam).weights
        boots.append(test.D[:, idx] @ wb)
    direct = np.std(np.asarray(boots), axis=0, ddof=1)
    rows = tab.table.filter(pl.col("qid").is_in(qs))
    mine = {(q, o): s for q, o, s in rows.select("qid", "option", "se").iter_rows()}
    se = np.array([mine[(q, o)] for q, o in test.rows])
    assert np.all(se > 0)
    ratio = np.median(se / direct)
    assert 0.8 < ratio < 1.25, ratio  # two independent 200-draw half-samplings of one statistic


def test_half_sample_variance_of_a_mean_by_hand() -> None:
    """The sample mean (refit = equal weights on the drawn personas) at odd n: replicates shrunk by √(m/(n−m))
    make 1/(R−1) Σ(θ_b − θ̄)² estimate S²/n, the textbook variance of a mean (delete-d jackknife, d = n − m)."""
    x = np.array([0.1, 0.9, 0.4, 0.35, 0.8, 0.05, 0.6])
    n = x.size
    reps = half_sample_replicates(n, 6000, 3, lambda idx: np.full(idx.size, 1.0 / idx.size),
                                  full=np.full(n, 1.0 / n))
    assert reps.weights.min() >= 0 and np.allclose(reps.weights.sum(axis=0), 1.0)
    assert np.count_nonzero(reps.weights[:, 0] > 1.0 / n) == n // 2  # the m drawn personas gain weight
    v = bootstrap_variance(x @ reps.weights)
    assert v == pytest.approx(np.var(x, ddof=1) / n, rel=0.06)  # Monte-Carlo SE ~2% at R = 6000


def test_conformal_halfwidth_by_hand() -> None:
    s = np.array([0.05, 0.01, 0.03, 0.02, 0.04])
    assert conformal_halfwidth(s, 0.5) == 0.03  # ⌈6·0.5⌉ = 3rd smallest
    assert conformal_halfwidth(s, 0.8) == 0.05  # ⌈6·0.8⌉ = 5th
    assert conformal_halfwidth(s, 0.9) is None  # ⌈6·0.9⌉ = 6 > 5 scores: no finite interval


def test_prediction_interval_too_few_and_enough_heldout(panel, w26, tmp_path: Path) -> None:  # noqa: ANN001
    lib, _, _ = panel
    est = estimate_library(lib, w26, EstimateOptions(calibration="w26", level=0.9))
    g = est.prediction["groups"]["overall"]
    assert g["heldout_questions"] < 10 and g["halfwidth"] is None and "too few" in g["note"]
    assert est.table["plo"].null_count() == est.table.height
    # the same answers under another survey id: every question is held out from this calibration
    other = w26.frame.with_columns(pl.lit("other_wave").alias("survey_id"))
    from personagen.surveys import Survey

    s2 = Survey(other)
    lib.append_responses(lib.responses().with_columns(pl.lit("other_wave").alias("survey_id")))
    est2 = estimate_library(lib, s2, EstimateOptions(calibration="w26", level=0.9))
    g2 = est2.prediction["groups"]["overall"]
    ov = est2.table.filter(pl.col("group") == "overall")
    err = np.sort((ov["estimate"] - ov["target"]).abs().to_numpy())
    assert g2["heldout_questions"] == len(w26.qids) and g2["heldout_rows"] == err.size
    assert g2["halfwidth"] == pytest.approx(err[math.ceil((err.size + 1) * 0.9) - 1])
    assert (ov["phi"] - ov["plo"]).max() <= 2 * g2["halfwidth"] + 1e-12
    assert 0 <= g2["coverage"] <= 1 and 0 <= g2["sampling_coverage"] <= 1


def test_estimate_cli(panel, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    lib, sp, _ = panel
    out, png = tmp_path / "e.csv", tmp_path / "e.png"
    q = pl.read_parquet(sp)["qid"][0]
    code, o, err = run_cli(["estimate", str(lib.path), "--survey", str(sp), "--calibration", "w26", "--by",
                            "region", "--questions", q, "-o", str(out), "--plot", str(png), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(o.strip().splitlines()[-1])
    assert {r["qid"] for r in doc["rows"]} == {q} and {r["group"] for r in doc["rows"]} == {"overall", *REGIONS}
    assert pl.read_csv(out).height == len(doc["rows"]) and png.stat().st_size > 5000
    code, _, err = run_cli(["estimate", str(lib.path), "--survey", str(sp), "--by", "shoe_size"], capsys)
    assert code == 2 and "shoe_size" in err and err.count("\n") == 1
    code, _, err = run_cli(["estimate", str(lib.path), "--survey", str(sp), "--level", "1.5"], capsys)
    assert code == 2 and "--level" in err
