"""Metrics against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from personagen import metrics as M
from personagen.errors import BadInput


def _rand(seed: int, ks: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.ones(k)) for k in ks]


KS = [2, 3, 5, 4, 7, 3]


def test_entropy_hand_values() -> None:
    h = M.normalised_entropy([[0.5, 0.5], [1.0, 0.0, 0.0], [0.25] * 4, [0.5, 0.25, 0.25, 0.0]])
    np.testing.assert_allclose(h, [1.0, 0.0, 1.0, 1.5 / 2.0])
    assert M.group_entropy([[0.5, 0.5], [1.0, 0.0]]) == pytest.approx(0.5)
    # ECR: pred at least as diverse as target on 1 of 2 questions
    assert M.entropy_coverage_ratio([[0.5, 0.5], [0.9, 0.1]], [[0.8, 0.2], [0.5, 0.5]]) == 0.5


def test_mse_r2_hand_values() -> None:
    p = [[0.5, 0.5], [0.2, 0.3, 0.5]]
    t = [[0.7, 0.3], [0.2, 0.4, 0.4]]
    assert M.mse(p, t) == pytest.approx((0.04 + 0.04 + 0 + 0.01 + 0.01) / 5)
    tv = np.array([0.7, 0.3, 0.2, 0.4, 0.4])
    assert M.r2(p, t) == pytest.approx(1 - 0.1 / ((tv - tv.mean()) ** 2).sum())


def test_jsd_against_scipy() -> None:
    P, T = _rand(1, KS), _rand(2, KS)
    ref = [1 - jensenshannon(p, t, base=2) for p, t in zip(P, T)]
    np.testing.assert_allclose(M.one_minus_jsd(P, T), ref, atol=1e-12)
    assert M.one_minus_jsd([[1, 0]], [[0, 1]])[0] == pytest.approx(0.0)
    assert M.one_minus_jsd([[0.3, 0.7]], [[0.3, 0.7]])[0] == pytest.approx(1.0)


def test_wd_against_scipy_and_hand() -> None:
    P, T = _rand(3, KS), _rand(4, KS)
    rng = np.random.default_rng(5)
    pos = [rng.permutation(k).astype(float) * 0.5 + 1 for k in KS]  # unsorted positions
    pos[2][1] = pos[2][3]  # a tie in positions
    ref = [wasserstein_distance(o, o, p, t) / (o.max() - o.min()) for p, t, o in zip(P, T, pos)]
    np.testing.assert_allclose(M.wasserstein(P, T, pos), ref, atol=1e-12)
    # all mass at opposite ends -> 1; one step of three -> 0.5
    assert M.wasserstein([[1, 0, 0]], [[0, 0, 1]], [[1, 2, 3]])[0] == pytest.approx(1.0)
    assert M.wasserstein([[1, 0, 0]], [[0, 1, 0]], [[1, 2, 3]])[0] == pytest.approx(0.5)
    with pytest.raises(BadInput, match="all positions equal"):
        M.wasserstein([[0.5, 0.5]], [[0.5, 0.5]], [[1, 1]])


def test_majority_ties_and_ess() -> None:
    acc = M.majority_match([[0.5, 0.5], [0.2, 0.8], [0.4, 0.4, 0.2]], [[0.6, 0.4], [0.9, 0.1], [0.1, 0.45, 0.45]])
    np.testing.assert_array_equal(acc, [1.0, 0.0, 0.0])  # ties -> lowest index: 0 vs 0, 0 vs 1
    assert M.kish_ess([1, 1, 1, 1]) == pytest.approx(4.0)
    assert M.kish_ess([0.5, 0.5, 0, 0]) == pytest.approx(2.0)
    assert M.kish_ess([3, 1]) == pytest.approx(16 / 10)
    with pytest.raises(BadInput):
        M.kish_ess([0, 0])


def test_evaluate_values_cis_and_wd_handling() -> None:
    P, T = _rand(6, KS), _rand(7, KS)
    pred = {f"q{i}": p for i, p in enumerate(P)}
    target = {f"q{i}": t for i, t in enumerate(T)}
    ords = {f"q{i}": (list(range(k)) if i % 2 == 0 else None) for i, k in enumerate(KS)}
    r = M.evaluate(pred, target, ordinals=ords, n_boot=500, seed=3)
    assert set(r) == set(M.DEFAULT_METRICS)
    assert r["mse"]["value"] == pytest.approx(M.mse(P, T))
    assert r["one_minus_jsd"]["value"] == pytest.approx(np.mean(M.one_minus_jsd(P, T)))
    assert r["majority_acc"]["value"] == pytest.approx(np.mean(M.majority_match(P, T)))
    wd_q = [i for i in range(len(KS)) if i % 2 == 0]
    assert r["wd"]["n_questions"] == len(wd_q)
    assert r["wd"]["value"] == pytest.approx(np.mean(M.wasserstein([P[i] for i in wd_q], [T[i] for i in wd_q],
                                                                   [list(range(KS[i])) for i in wd_q])))
    for v in r.values():
        assert v["ci_low"] <= v["value"] <= v["ci_high"] or math.isclose(v["ci_low"], v["ci_high"])
    assert r == M.evaluate(pred, target, ordinals=ords, n_boot=500, seed=3)  # seeded
    # default metrics without any ordinal: wd reported empty; explicit request: refused
    r0 = M.evaluate(pred, target, ordinals=None, n_boot=0)
    assert r0["wd"] == {"value": None, "ci_low": None, "ci_high": None, "n_questions": 0}
    assert r0["mse"]["ci_low"] is None
    with pytest.raises(BadInput, match="wd: no evaluated question"):
        M.evaluate(pred, target, ordinals=None, metrics=("mse", "wd"))
    full = M.evaluate(pred, target, ordinals=ords, metrics=M.ALL_METRICS, n_boot=200)
    assert full["r2"]["value"] == pytest.approx(M.r2(P, T))
    assert full["ecr"]["value"] == pytest.approx(M.entropy_coverage_ratio(P, T))


def test_evaluate_bad_input_and_uniform() -> None:
    t = {"a": [0.7, 0.3], "b": [0.2, 0.3, 0.5]}
    with pytest.raises(BadInput, match="'b'"):
        M.evaluate({"a": [0.5, 0.5]}, t)
    with pytest.raises(BadInput, match="sums to"):
        M.evaluate({"a": [0.5, 0.6], "b": [0.2, 0.3, 0.5]}, t)
    with pytest.raises(BadInput, match="NaN"):
        M.evaluate({"a": [np.nan, 1.0], "b": [0.2, 0.3, 0.5]}, t)
    with pytest.raises(BadInput, match="unknown metric"):
        M.evaluate(t, t, metrics=("bogus",))
    u = M.uniform_baseline(t, ordinals={"a": [1, 2], "b": None}, n_boot=0)
    assert u["mse"]["value"] == pytest.approx((0.04 + 0.04 + (0.2 - 1 / 3) ** 2 + (0.3 - 1 / 3) ** 2
                                               + (0.5 - 1 / 3) ** 2) / 5)
    assert u["wd"]["value"] == pytest.approx(0.2) and u["wd"]["n_questions"] == 1
    perfect = M.evaluate(t, t, ordinals={"a": [1, 2], "b": [1, 2, 3]}, n_boot=50)
    assert perfect["mse"]["value"] == 0 and perfect["one_minus_jsd"]["value"] == pytest.approx(1.0)
    assert perfect["wd"]["value"] == 0 and perfect["majority_acc"]["value"] == 1.0


def test_evaluate_on_survey(shared_data) -> None:  # noqa: ANN001
    from personagen.surveys import import_subpop

    p = shared_data / "subpop" / "subpop-eval" / "subpop_eval.jsonl"
    if not p.is_file():
        pytest.skip("subpop eval not present")
    s = import_subpop(p)
    tgt, ords = M.survey_arrays(s, s.split_qids("test"), group="South")
    r = M.evaluate(M.uniform_like(list(tgt.values())) and {q: np.full(len(v), 1 / len(v)) for q, v in tgt.items()},
                   tgt, ordinals=ords, n_boot=100)
    assert 0 < r["wd"]["n_questions"] <= len(tgt) and 0 <= r["wd"]["value"] <= 1
