"""Prompt-mixture (paper 001) pieces against hand computations and the paper's own data tables; no model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from personagen.errors import BadInput
from personagen.mixture import MixtureOptions, big5_observed, big5_scenario, moblab_observed, moblab_scenario
from personagen.mixture.algorithms import e_step, point_distances, residual_target


def test_point_distance_is_w1_to_a_point_mass_by_hand() -> None:
    # x = 0: |0 − 0|, |0 − 2| → mean 1;   |0 − 10| = 10
    # x = 10: |10 − 0|, |10 − 2| → mean 9;  |10 − 10| = 0
    d = point_distances(np.array([0.0, 10.0]), [np.array([0.0, 2.0]), np.array([10.0]), np.array([])])
    assert d[:, :2] == pytest.approx(np.array([[1.0, 10.0], [9.0, 0.0]]))
    assert np.isinf(d[:, 2]).all()  # a prompt without valid samples cannot be assigned


def test_e_step_posterior_by_hand() -> None:
    # Alg. 1: p_k ∝ exp(−d_k · w_k). For x = 0, d = (1, 10), w = (.5, .5):
    #   exp(−.5) / (exp(−.5) + exp(−5)) = 1 / (1 + e^−4.5) = 1 / 1.011109 = 0.989013
    p0 = 1 / (1 + math.exp(-4.5))
    assert p0 == pytest.approx(0.989013, abs=1e-6)
    rng = np.random.default_rng(0)
    a = e_step(np.zeros(40_000), [np.array([0.0, 2.0]), np.array([10.0])], np.array([0.5, 0.5]), rng)
    assert (a == 0).mean() == pytest.approx(p0, abs=0.002)  # sd of the share ≈ 0.0005
    # weights scale the distances: w = (.1, .9) → exp(−.1) vs exp(−9): 1 / (1 + e^−8.9) = 0.999864
    a = e_step(np.zeros(40_000), [np.array([0.0, 2.0]), np.array([10.0])], np.array([0.1, 0.9]), rng)
    assert (a == 0).mean() == pytest.approx(0.999864, abs=0.0005)


def test_gb_residual_sampling_by_hand() -> None:
    # D_obs = {1, 1, 2, 3} on unit bins 1, 2, 3: p_obs = (.5, .25, .25); the mixture so far is all 1s:
    # p_gen = (1, 0, 0) → r = max(0, p_obs − p_gen) = (0, .25, .25): x is 2 or 3, each with probability 1/2
    rng = np.random.default_rng(0)
    target = np.array([1.0, 1.0, 2.0, 3.0])
    xs = np.array([residual_target(target, [np.array([1.0, 1.0])], np.ones(1), 1, 3, rng) for _ in range(4000)])
    assert set(xs.tolist()) == {2.0, 3.0}
    assert (xs == 2.0).mean() == pytest.approx(0.5, abs=0.03)


def test_big5_keyed_sum_by_hand() -> None:
    sc = big5_scenario("A")
    assert (sc.lo, sc.hi) == (10.0, 50.0) and sc.fixed_prompt == "Imagine you are a human taking a personality test"
    # A1, A3, A5, A7 are reverse keyed (6 − x). Ratings 5 4 3 2 1 1 2 3 4 5 →
    #   6−5, 4, 6−3, 2, 6−1, 1, 6−2, 3, 4, 5 = 1 + 4 + 3 + 2 + 5 + 1 + 4 + 3 + 4 + 5 = 32
    assert sc.parse("5 4 3 2 1 1 2 3 4 5") == 32.0
    assert sc.parse("My ratings: 5, 4, 3, 2, 1, 1, 2, 3, 4, 5.") == 32.0
    assert sc.parse("5 4 3") is None  # fewer than 10 ratings is invalid
    assert sc.parse("3 3 3 3 3 3 3 3 3 3") == 30.0


def test_big5_observed_matches_paper_table2(shared_data: Path) -> None:
    """On the 10-50 sum scale D_obs reproduces the paper's Table 2 "Observed data" row exactly."""
    p = shared_data / "ipip_ffm_big5" / "data.csv"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    paper = {"O": (39.09, 6.25), "C": (33.47, 7.31), "E": (30.11, 9.22), "A": (38.45, 7.15), "N": (30.97, 8.62)}
    for d, (m, sd) in paper.items():
        v = big5_observed(p, d)
        assert v.size > 19_000 and v.min() >= 10 and v.max() <= 50
        assert (round(float(v.mean()), 2), round(float(v.std()), 2)) == (m, sd)


def test_moblab_first_round_filters(shared_data: Path) -> None:
    folder = shared_data / "moblab_games"
    if not (folder / "dictator.csv").is_file():
        pytest.skip(f"{folder} not present")
    import polars as pl

    raw = pl.read_csv(folder / "dictator.csv", infer_schema_length=10000)
    first = raw.filter((pl.col("Round") == 1) & (pl.col("Role") == "first") & pl.col("move").is_not_null()
                       & (pl.col("Total") == 100))  # the 100-endowment game; other totals are other variants
    # 57 first-round gifts lie outside the 0-100 endowment (e.g. 983): invalid, dropped
    n_first_round = first.filter(pl.col("move").is_between(0, 100)).height
    d = moblab_observed(folder, "dictator")
    assert d.size == n_first_round and d.min() >= 0 and d.max() <= 100
    # paper Table 4, observed dictator data: 25.70 ± 21.73 (ours 25.86 ± 21.86; all totals gave 21.50)
    assert abs(d.mean() - 25.70) < 0.3 and abs(d.std() - 21.73) < 0.3
    prop, resp = moblab_observed(folder, "proposer"), moblab_observed(folder, "responder")
    # paper Table 4 ("1,000 Human Samples"): proposer 44.00 ± 20.56, responder 34.56 ± 19.69
    assert abs(prop.mean() - 44.0) < 2 and abs(resp.mean() - 34.56) < 2
    assert moblab_scenario("dictator").fixed_prompt == "You are a helpful assistant."
    with pytest.raises(BadInput, match="--game"):
        moblab_observed(folder, "bomb")


def test_em_starts_from_k_data_points_by_hand() -> None:
    from personagen.mixture.algorithms import em_start

    rng = np.random.default_rng(0)
    # D_obs = (5, 5, 5, 7), K = 4: four data points without replacement are the whole sample
    assert sorted(em_start(np.array([5.0, 5, 5, 7]), 4, "data_points", rng)) == [5, 5, 5, 7]
    # the former reading draws from the distinct values {5, 7}: at most 2 starts
    assert sorted(em_start(np.array([5.0, 5, 5, 7]), 4, "distinct_values", rng)) == [5, 7]
    # a skewed sample: 900 zeros and 1..100 once each (mean 5.05); K = 50 data points mostly hit 0
    skew = np.concatenate([np.zeros(900), np.arange(1.0, 101)])
    assert np.mean(em_start(skew, 50, "data_points", np.random.default_rng(1))) < 15
    assert np.mean(em_start(skew, 50, "distinct_values", np.random.default_rng(1))) > 30
    assert MixtureOptions().em_init == "data_points"


class _Scripted:
    """CraftSystemPrompt/GenerateSamples stand-in: the prompt for desired value x answers x every time."""

    def __init__(self) -> None:
        self.crafted = 0

    def craft_system_prompt(self, aims, ks, n, rounds):
        self.crafted += len(aims)
        return [f"give {a:g}" for a in aims], [np.full(n, float(a)) for a in aims]


def test_em_stops_when_prompts_and_weights_repeat() -> None:
    from personagen.mixture.algorithms import em

    # D_obs = 0 or 100 (half each), K = 2: once the two prompts aim at 0 and 100 every point's nearest prompt is
    # its own value, the M-step redraws the same aims, prompts and weights (1/2, 1/2) repeat -> stop (Alg. 1)
    target = np.array([0.0] * 50 + [100.0] * 50)
    prim = _Scripted()
    res = em(prim, target, MixtureOptions(method="em", components=2, max_iters=20, samples=4, seed=3))
    assert res.converged and len(res.history) < 20
    assert sorted(res.aims) == [0.0, 100.0] and res.w1 == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(sorted(res.weights), [0.5, 0.5], atol=1e-4)
    # one iteration cap: stops there, unconverged, whatever the prompts do
    capped = em(_Scripted(), target, MixtureOptions(method="em", components=2, max_iters=1, samples=4, seed=4))
    assert len(capped.history) == 1


def test_options_follow_the_paper() -> None:
    assert MixtureOptions(method="em").k == 10 and MixtureOptions(method="gb").k == 200
    o = MixtureOptions()
    assert (o.samples, o.max_iters, o.weights) == (10, 20, "slsqp")
    with pytest.raises(BadInput, match="weights"):
        MixtureOptions(weights="adam")
    with pytest.raises(BadInput, match="samples"):
        MixtureOptions(samples=0)
