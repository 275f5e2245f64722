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

from personagen.endow.mixture import (  # noqa: E402
    fit_simplex_weights,
    load_target,
    mixture_library,
    search,
    wasserstein1,
)
from personagen.errors import BadInput  # noqa: E402
from personagen.library import Library  # noqa: E402


def test_w1_by_hand() -> None:
    # point mass at 0 vs point mass at 3: W1 = 3
    assert wasserstein1([np.array([0.0])], np.array([1.0]), np.array([3.0])) == pytest.approx(3.0)
    # mixture .5·δ0 + .5·δ4 vs target {1, 3}: CDF gap .5 on [0,1), 0 on [1,3), .5 on [3,4) -> .5 + .5 = 1
    assert wasserstein1([np.array([0.0]), np.array([4.0])], np.array([0.5, 0.5]), np.array([1.0, 3.0])) == \
        pytest.approx(1.0)
    # identical distributions
    assert wasserstein1([np.array([1.0, 2.0])], np.array([1.0]), np.array([2.0, 1.0])) == pytest.approx(0.0)


def test_simplex_weights_recover_mixture_and_match_lp() -> None:
    from scipy.optimize import linprog

    rng = np.random.default_rng(0)
    comps = [rng.normal(m, 1.0, 60) for m in (0.0, 5.0, 10.0)]
    target = np.concatenate([rng.normal(0, 1, 300), rng.normal(10, 1, 100)])  # true π = (.75, 0, .25)
    w, loss = fit_simplex_weights(comps, target, iters=2000)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w == pytest.approx([0.75, 0.0, 0.25], abs=0.06)
    # exact optimum by LP: min Σ dx t  s.t.  t >= ±(Fᵀπ − F_t), π ∈ simplex
    grid = np.unique(np.concatenate([target, *comps]))
    fk = np.stack([np.searchsorted(np.sort(c), grid, side="right") / c.size for c in comps])[:, :-1]
    ft = (np.searchsorted(np.sort(target), grid, side="right") / target.size)[:-1]
    dx = np.diff(grid)
    k, g = fk.shape
    cost = np.concatenate([np.zeros(k), dx])
    a_ub = np.block([[fk.T, -np.eye(g)], [-fk.T, -np.eye(g)]])
    b_ub = np.concatenate([ft, -ft])
    a_eq = np.concatenate([np.ones(k), np.zeros(g)])[None, :]
    lp = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[1.0], bounds=[(0, None)] * (k + g), method="highs")
    assert lp.status == 0
    assert loss == pytest.approx(lp.fun, rel=0.02, abs=1e-3)
    assert wasserstein1(comps, w, target) == pytest.approx(loss)
    # components without samples get zero weight; all-empty -> uniform, loss nan
    w2, _ = fit_simplex_weights([np.array([]), comps[0]], target)
    assert w2[0] == 0.0 and w2[1] == pytest.approx(1.0)
    w3, l3 = fit_simplex_weights([np.array([]), np.array([])], target)
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
    """Craft/improve return persona text that embeds the aim; samples answer near it (with garbage)."""
    seed = body.get("seed") or 0
    if "System prompt:" in user:
        import re

        aim = re.search(r"(?:answer about|toward) ([-\d.]+)", user).group(1)
        return f"You are a person with a favourite number of {aim} who is quite generous."
    if "single number" in user:
        import re

        m = re.search(r"favourite number of ([-\d.]+)", system)
        if seed % 4 == 0:
            return "I'd rather not say"  # invalid, retried
        return f"{float(m.group(1)) + (seed % 3) - 1:.1f}" if m else "50"
    return "?"


@pytest.mark.parametrize("method", ["em", "gb"])
def test_search_scripted(method: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    target = np.concatenate([rng.normal(20, 3, 200), rng.normal(70, 3, 200)]).clip(0, 100)
    with scripted_client(tmp_path, _scripted_numbers) as (c, srv):
        res = search(c, target, question="How much do you give?", method=method,
                     components=2, iters=2, samples=6, lo=0, hi=100)
        assert srv.hits == c.stats["requests_sent"] > 2 * 6 and c.stats["errors"] == 0
    assert len(res["prompts"]) == 2 and res["weights"].sum() == pytest.approx(1.0)
    assert res["counts"]["invalid_samples"] > 0  # garbage counted and retried
    assert all(3 <= s.size <= 6 for s in res["samples"])  # invalid answers retried (bounded)
    means = sorted(float(s.mean()) for s in res["samples"])
    if method == "em":
        assert means[0] < 40 < means[1]  # quantile-aimed prompts bracket the two modes
    assert res["w1"] < 30


def test_mixture_library_scripted(tmp_path: Path) -> None:
    t = tmp_path / "target.csv"
    pl.DataFrame({"offer": list(np.random.default_rng(1).integers(0, 101, 80))}).write_csv(t)
    with scripted_client(tmp_path, _scripted_numbers) as (c, srv):
        rep = mixture_library(t, tmp_path / "lib", client=c, components=2, iters=2, samples=3)
        assert rep["llm"]["requests_sent"] == srv.hits > 0 and rep["model"] == "scripted"
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
    assert {"value", "ci_low", "ci_high"} <= set(rj["metrics"]["train"]["wd"])
    assert set(rj["baselines"]) == {"uniform_average", "uniform_distribution"}
    assert rep["n_personas"] == 2
    # an existing library is added to, a rerun replaces its own personas
    with scripted_client(tmp_path, _scripted_numbers) as (c, srv):
        mixture_library(t, tmp_path / "lib", client=c, components=2, iters=2, samples=3)
        assert srv.hits == 0 and c.stats["cache_hits"] > 0  # the same run again: all from the cache
        assert Library.open(tmp_path / "lib").personas().height == 2
        with pytest.raises(BadInput, match="--method"):
            mixture_library(t, tmp_path / "lib2", client=c, method="xx")
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
