"""Prompt-mixture search: W1 maths, simplex weights vs an exact LP, target loading, scripted-model runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from enrich_helpers import scripted_client  # noqa: E402

from personagen.calibration_report import read_report  # noqa: E402
from personagen.errors import BadInput  # noqa: E402
from personagen.library import Library  # noqa: E402
from personagen.mixture import (  # noqa: E402
    MixtureOptions,
    MixtureRunOptions,
    load_target,
    mixture_library,
    search,
    wasserstein1,
    weights_eg,
    weights_slsqp,
)
from personagen.mixture.searching import generic_scenario  # noqa: E402


def test_w1_by_hand() -> None:
    # point mass at 0 vs point mass at 3: W1 = 3
    assert wasserstein1([np.array([0.0])], np.array([1.0]), np.array([3.0])) == pytest.approx(3.0)
    # mixture .5·δ0 + .5·δ4 vs target {1, 3}: CDF gap .5 on [0,1), 0 on [1,3), .5 on [3,4) -> .5 + .5 = 1
    assert wasserstein1([np.array([0.0]), np.array([4.0])], np.array([0.5, 0.5]), np.array([1.0, 3.0])) == \
        pytest.approx(1.0)
    # identical distributions
    assert wasserstein1([np.array([1.0, 2.0])], np.array([1.0]), np.array([2.0, 1.0])) == pytest.approx(0.0)


def _lp_optimum(comps: list[np.ndarray], target: np.ndarray) -> float:
    """Exact min W1 over the simplex by LP: min Σ dx t  s.t.  t >= ±(Fᵀπ − F_t), π ∈ simplex."""
    from scipy.optimize import linprog

    grid = np.unique(np.concatenate([target, *comps]))
    fk = np.stack([np.searchsorted(np.sort(c), grid, side="right") / c.size for c in comps])[:, :-1]
    ft = (np.searchsorted(np.sort(target), grid, side="right") / target.size)[:-1]
    dx = np.diff(grid)
    k, g = fk.shape
    cost = np.concatenate([np.zeros(k), dx])
    a_ub = np.block([[fk.T, -np.eye(g)], [-fk.T, -np.eye(g)]])
    a_eq = np.concatenate([np.ones(k), np.zeros(g)])[None, :]
    lp = linprog(cost, A_ub=a_ub, b_ub=np.concatenate([ft, -ft]), A_eq=a_eq, b_eq=[1.0],
                 bounds=[(0, None)] * (k + g), method="highs")
    assert lp.status == 0
    return float(lp.fun)


def test_slsqp_weights_recover_mixture_and_match_exact_lp() -> None:
    rng = np.random.default_rng(0)
    comps = [rng.normal(m, 1.0, 60) for m in (0.0, 5.0, 10.0)]
    target = np.concatenate([rng.normal(0, 1, 300), rng.normal(10, 1, 100)])  # true π = (.75, 0, .25)
    w, loss = weights_slsqp(comps, target)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w == pytest.approx([0.75, 0.0, 0.25], abs=0.02)
    assert loss == pytest.approx(_lp_optimum(comps, target), rel=1e-3)
    assert wasserstein1(comps, w, target) == pytest.approx(loss)
    # ten overlapping components, a skewed target: SLSQP (the paper's optimiser) reaches the LP optimum within
    # 0.1% from any random start; exponentiated gradient (an option) is allowed to stop short
    comps = [rng.normal(m, 2.0, 10) for m in np.linspace(0, 20, 10)]
    target = rng.gamma(3, 3, 500)
    best = _lp_optimum(comps, target)
    for seed in range(3):
        assert weights_slsqp(comps, target, seed=seed)[1] == pytest.approx(best, rel=1e-3)
    assert weights_eg(comps, target)[1] >= best - 1e-9
    # components without samples get zero weight; all-empty -> uniform, loss nan
    for fit in (weights_slsqp, weights_eg):
        w2, _ = fit([np.array([]), comps[0]], target)
        assert w2[0] == 0.0 and w2[1] == pytest.approx(1.0)
        w3, l3 = fit([np.array([]), np.array([])], target)
        assert w3 == pytest.approx([0.5, 0.5]) and np.isnan(l3)


def test_load_target(tmp_path: Path, shared_data: Path | None = None) -> None:
    p = tmp_path / "t.csv"
    p.write_text("id,offer\nx,10\ny,\nz,30.5\n")
    v, col = load_target(p)
    assert col == "offer" and v.tolist() == [10.0, 30.5]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\t2\n3\t4\n")
    with pytest.raises(BadInput, match="--column"):
        load_target(tsv)
    assert load_target(tsv, "b")[0].tolist() == [2.0, 4.0]
    with pytest.raises(BadInput, match="no column"):
        load_target(tsv, "zz")
    with pytest.raises(BadInput, match="does not exist"):
        load_target(tmp_path / "missing.csv")


def test_load_real_targets(shared_data: Path) -> None:
    ipip = shared_data / "ipip_ffm_big5" / "data.csv"
    dic = shared_data / "moblab_games" / "dictator.csv"
    if not ipip.is_file() or not dic.is_file():
        pytest.skip("IPIP / MobLab data not present")
    v, _ = load_target(ipip, "E1")  # tab-separated
    assert v.size > 1000 and set(np.unique(v)) <= {0, 1, 2, 3, 4, 5}
    d, _ = load_target(dic, "move")
    assert d.size > 100 and d.min() >= 0


def _scripted_numbers(user: str, system: str, body: dict) -> str:
    """Craft/improve return persona text that embeds the aim; samples answer near it (with garbage);
    the Big Five test is answered with ten ratings."""
    import re

    seed = body.get("seed") or 0
    if "crafted system prompt" in user:
        aim = re.search(r"(?:make the decision|instead of): ([-\d.]+)", user) or \
            re.search(r"instead of ([-\d.]+)", user)
        return f"You are a person with a favourite number of {aim.group(1)} who is quite generous."
    m = re.search(r"favourite number of ([-\d.]+)", system)
    if "ratings only" in user:
        return " ".join(["3"] * 10) if seed % 4 else "no"
    if "single number" in user:
        if seed % 4 == 0:
            return "I'd rather not say"  # invalid, retried
        return f"{float(m.group(1)) + (seed % 3) - 1:.1f}" if m else "50"
    return "?"


@pytest.mark.parametrize("method", ["em", "gb"])
def test_search_scripted(method: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    target = np.concatenate([rng.normal(20, 3, 200), rng.normal(70, 3, 200)]).clip(0, 100).round()
    sc = generic_scenario("How much do you give?", 0, 100)
    opts = MixtureOptions(method=method, components=2, max_iters=2, samples=6, improve_rounds=1)
    with scripted_client(tmp_path, _scripted_numbers) as (c, srv):
        res, prim = search(c, target, sc, opts)
        assert srv.hits == c.stats["requests_sent"] > 2 * 6 and c.stats["errors"] == 0
    k = 2 if method == "em" else 3  # GB: the default prompt z0 plus K = 2 crafted prompts
    assert len(res.prompts) == k and res.weights.sum() == pytest.approx(1.0)
    assert prim.counts["invalid_samples"] > 0  # garbage counted and retried
    assert all(3 <= s.size <= 6 for s in res.samples)  # invalid answers retried (bounded)
    if method == "gb":
        assert res.prompts[0] == sc.fixed_prompt and res.aims[0] is None
    # every crafted prompt aims at a real data point (EM line 1 / M-step; GB line 4)
    assert all(a in set(target.tolist()) for a in res.aims if a is not None)
    assert res.w1 < 30


def test_mixture_library_scripted(tmp_path: Path) -> None:
    t = tmp_path / "target.csv"
    pl.DataFrame({"offer": list(np.random.default_rng(1).integers(0, 101, 80))}).write_csv(t)
    with scripted_client(tmp_path, _scripted_numbers) as (c, srv):
        rep = mixture_library(t, tmp_path / "lib", MixtureRunOptions(components=2, iters=2, samples=3),
                              client=c)
        assert rep.llm["requests_sent"] == srv.hits > 0 and rep.model == "scripted"
    lib = Library.open(tmp_path / "lib")
    df = lib.personas()
    assert df.height == 2 and (df["source"] == "mixture").all() and df["weight_census"].is_null().all()
    w = pl.read_parquet(lib.calibration_dir("mixture") / "weights.parquet")
    assert w.columns == ["persona_id", "weight"] and w["weight"].sum() == pytest.approx(1.0)
    assert set(w["persona_id"]) == set(df["persona_id"])
    rj = json.loads((lib.calibration_dir("mixture") / "report.json").read_text())
    for key in ("name", "method", "survey_id", "group", "created", "lam", "alpha", "n_personas", "nonzeros", "ess",
                "negative_weights", "solver", "solver_seconds", "metrics", "baselines"):
        assert key in rj
    assert set(rj["metrics"]) == {"train", "test"}
    ww = w["weight"].to_numpy()  # Kish's ESS by hand, (Σw)² / Σw², from the written weights
    assert rj["schema_version"] == 1 and rj["ess"] == pytest.approx(ww.sum() ** 2 / (ww ** 2).sum(), rel=1e-12)
    assert read_report(lib.calibration_dir("mixture") / "report.json") == rep
    assert {"value", "ci_low", "ci_high"} <= set(rj["metrics"]["train"]["wd"])
    assert set(rj["baselines"]) == {"uniform_average", "uniform_distribution"}
    assert rep.n_personas == 2
    # an existing library is added to, a rerun replaces its own personas
    with scripted_client(tmp_path, _scripted_numbers) as (c, srv):
        mixture_library(t, tmp_path / "lib", MixtureRunOptions(components=2, iters=2, samples=3), client=c)
        assert srv.hits == 0 and c.stats["cache_hits"] > 0  # the same run again: all from the cache
        assert Library.open(tmp_path / "lib").personas().height == 2
        with pytest.raises(BadInput, match="method: 'xx'"):
            mixture_library(t, tmp_path / "lib2", MixtureRunOptions(method="xx"), client=c)
    assert srv.hits == 0


@pytest.mark.llm
def test_mixture_cli_local_model(tmp_path: Path, local_llm_url: str, shared_data: Path) -> None:
    """2 components × 2 iters (craft, sample, improve, sample) × 2 samples on MobLab dictator offers with the tiny local model."""
    import subprocess

    src = shared_data / "moblab_games" / "dictator.csv"
    if not src.is_file():
        pytest.skip(f"{src} not present")
    cmd = [sys.executable, "-m", "personagen.cli", "mixture", "--target", str(src), "--column", "move",
           "--question", "You have 100 dollars. How many do you give to a stranger?",
           "--out", str(tmp_path / "lib"), "--backend", "openai", "--base-url", local_llm_url, "--model", "smollm2",
           "--components", "2", "--iters", "2", "--samples", "2", "--range", "0", "100",
           "--prompt-tokens", "24", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["n_personas"] == 2
    lib = Library.open(tmp_path / "lib")
    assert (lib.personas()["source"] == "mixture").all()
    w = pl.read_parquet(lib.calibration_dir("mixture") / "weights.parquet")
    assert w["weight"].sum() == pytest.approx(1.0)


# ---- IPIP Big Five domain scores as the target (--ipip-domain) -----------------------------------------------
IPIP_REVERSED = {"E2", "E4", "E6", "E8", "E10", "N2", "N4", "A1", "A3", "A5", "A7", "C2", "C4", "C6", "C8",
                 "O2", "O4", "O6"}


def _ipip_frame(rows: list[dict[str, int]]) -> pl.DataFrame:
    """Full 50-item frame: every item 3 unless a row overrides it."""
    from personagen.mixture.ipip import load_keys

    items = list(load_keys()["items"])
    return pl.DataFrame([{c: r.get(c, 3) for c in items} for r in rows])


def test_ipip_keys_load_and_cover_50_items() -> None:
    from personagen.mixture.ipip import DOMAINS, domain_items, keys_path, load_keys

    keys = load_keys()
    items = keys["items"]
    assert len(items) == 50 and set(keys["domains"]) == set(DOMAINS)
    for d in DOMAINS:
        di = domain_items(d)
        assert list(di) == [f"{d}{i}" for i in range(1, 11)]
        assert set(di.values()) <= {-1, 1}
    assert {k for k, v in items.items() if v["sign"] < 0} == IPIP_REVERSED
    assert keys["scale"] == {"min": 1, "max": 5, "missing": 0, "reverse": "6 - x"}
    header = keys_path().read_text()[:1500]
    assert "Goldberg" in header and "1992" in header and "Open Psychometrics" in header


def test_ipip_scoring_synthetic() -> None:
    from personagen.mixture.ipip import parse_domain, score_all, score_domain

    df = _ipip_frame([
        {f"E{i}": (5 if f"E{i}" not in IPIP_REVERSED else 1) for i in range(1, 11)},  # max extravert -> 5
        {f"E{i}": (1 if f"E{i}" not in IPIP_REVERSED else 5) for i in range(1, 11)},  # min -> 1
        {"E1": 4, "E2": 2},  # (4 + (6-2) + 8*3) / 10 = 3.2
        {"E3": 0},  # missed E item -> dropped for E only
        {"N5": 0, "O1": 7},  # missed N, out-of-range O
    ])
    e = score_domain(df, "E")
    assert e.to_list()[:3] == pytest.approx([5.0, 1.0, 3.2]) and e[3] is None and e[4] == pytest.approx(3.0)
    s = score_all(df)
    assert s.columns == ["ipip_E", "ipip_N", "ipip_A", "ipip_C", "ipip_O"]
    assert s["ipip_N"].null_count() == 1 and s["ipip_N"][4] is None
    assert s["ipip_O"][4] is None and s["ipip_A"].null_count() == 0
    assert parse_domain("e") == parse_domain("Extraversion") == parse_domain("ipip:E") == "E"
    with pytest.raises(BadInput, match="--ipip-domain 'X'"):
        parse_domain("X")
    with pytest.raises(BadInput, match="lacks item columns E10"):
        score_domain(df.drop("E10"), "E")


def test_ipip_scores_real(shared_data: Path) -> None:
    from personagen.mixture.ipip import DOMAINS, domain_items, score_all
    from personagen.mixture.scenarios import read_table as _read_table
    from personagen.mixture.searching import load_ipip_target

    src = shared_data / "ipip_ffm_big5" / "data.csv"
    if not src.is_file():
        pytest.skip(f"{src} not present")
    df = _read_table(src)
    scores = score_all(df)
    for d in DOMAINS:
        col = scores[f"ipip_{d}"]
        missed = df.select(pl.any_horizontal([pl.col(c) == 0 for c in domain_items(d)])).to_series()
        assert missed.sum() >= 1  # the file has respondents with missed items ...
        assert (col.is_null() == missed).all()  # ... and exactly those are dropped
        v = col.drop_nulls()
        assert 2.5 <= v.mean() <= 4.2 and 0.5 <= v.std() <= 1.0, (d, v.mean(), v.std())
        assert v.min() >= 1.0 and v.max() <= 5.0
    v, label, info = load_ipip_target(src, "C")
    assert label == "ipip:C" and info["n_scored"] == v.size == df.height - info["n_dropped"]
    assert v.mean() == pytest.approx(scores["ipip_C"].mean())


def test_ipip_reverse_keyed_items_correlate_negatively(shared_data: Path) -> None:
    """Keying sanity check on the real data: each reverse-keyed item correlates negatively with the sum of its
    domain's forward-keyed items (and each forward item positively with the sum of the other forward ones)."""
    from personagen.mixture.ipip import DOMAINS, domain_items

    src = shared_data / "ipip_ffm_big5" / "data.csv"
    if not src.is_file():
        pytest.skip(f"{src} not present")
    from personagen.mixture.scenarios import read_table as _read_table

    df = _read_table(src)
    for d in DOMAINS:
        items = domain_items(d)
        sub = df.filter(pl.all_horizontal([pl.col(c).is_between(1, 5) for c in items]))
        fwd = [c for c, s in items.items() if s > 0]
        total = sub.select(pl.sum_horizontal(fwd)).to_series().to_numpy().astype(float)
        for c, s in items.items():
            x = sub[c].to_numpy().astype(float)
            r = np.corrcoef(x, total if s < 0 else total - x)[0, 1]
            assert (r < -0.2) if s < 0 else (r > 0.2), (c, s, r)


def test_mixture_cli_rejects_unknown_ipip_domain(tmp_path: Path) -> None:
    import subprocess

    t = tmp_path / "ipip.tsv"
    _ipip_frame([{}, {"E1": 5}]).write_csv(t, separator="\t")
    base = [sys.executable, "-m", "personagen.cli", "mixture", "--target", str(t), "--out", str(tmp_path / "lib")]
    r = subprocess.run([*base, "--ipip-domain", "X"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --ipip-domain 'X': expected one of E (extraversion)")
    r = subprocess.run([*base, "--ipip-domain", "E", "--column", "E1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: --column and --ipip-domain are exclusive")
    assert not (tmp_path / "lib").exists()  # nothing created


def test_mixture_library_ipip_scripted(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    from personagen.mixture.ipip import load_keys

    items = list(load_keys()["items"])
    df = pl.DataFrame({c: rng.integers(1, 6, 60) for c in items}).with_columns(
        pl.when(pl.int_range(pl.len()) < 5).then(0).otherwise(pl.col("A3")).alias("A3"))  # 5 missed A3
    t = tmp_path / "ipip.csv"
    df.write_csv(t, separator="\t")
    with scripted_client(tmp_path, _scripted_numbers) as (c, srv):
        rep = mixture_library(t, tmp_path / "lib", MixtureRunOptions(components=2, iters=2, samples=3, ipip_domain="a"),
                              client=c)
    tg = rep.target
    assert tg["column"] == "ipip:A" and (tg["lo"], tg["hi"]) == (10.0, 50.0)  # the paper's 10-50 sum scale
    assert tg["n_train"] + tg["n_test"] == 55 and tg["scoring"]["n_dropped"] == 5
    assert "ratings only" in tg["question"] and "I feel little concern for others." in tg["question"]
    df_p = Library.open(tmp_path / "lib").personas()
    assert (df_p["mixture_target"] == "ipip.csv:ipip:A").all()
