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
    uniform = dict(zip(tgt, M.uniform_like(list(tgt.values())), strict=True))
    for q, v in tgt.items():  # the baseline is 1/K over each question's own options, by hand
        np.testing.assert_array_equal(uniform[q], np.full(len(v), 1 / len(v)))
    r = M.evaluate(uniform, tgt, ordinals=ords, n_boot=100)
    assert 0 < r["wd"]["n_questions"] <= len(tgt) and 0 <= r["wd"]["value"] <= 1


# ---- edges, guards and documented promises (each value by hand from the definitions in metrics/core.py) ----
def test_jsd_and_wd_renormalise_unnormalised_inputs() -> None:
    """Counts and shares give the same 1-JSD and WD: both renormalise each question to sum 1 (documented)."""
    p, t, o = [[2.0, 6.0]], [[1.0, 1.0]], [[1, 2]]
    # by hand: p = (.25, .75), t = (.5, .5); m = (.375, .625)
    kl_pm = 0.25 * math.log2(0.25 / 0.375) + 0.75 * math.log2(0.75 / 0.625)
    kl_tm = 0.5 * math.log2(0.5 / 0.375) + 0.5 * math.log2(0.5 / 0.625)
    assert M.one_minus_jsd(p, t)[0] == pytest.approx(1 - math.sqrt(0.5 * kl_pm + 0.5 * kl_tm), abs=1e-12)
    assert M.one_minus_jsd([[0.25, 0.75]], [[0.5, 0.5]])[0] == pytest.approx(M.one_minus_jsd(p, t)[0], abs=1e-15)
    # WD on positions 1, 2: |F_p(1) - F_t(1)| * 1 / span 1 = |.25 - .5| = .25
    assert M.wasserstein(p, [[3.0, 3.0]], o)[0] == pytest.approx(0.25, abs=1e-12)
    # (0, 1, 0) vs (.5, 0, .5) on 0, 1, 2: CDF gaps |0 - .5| + |1 - .5| = 1, span 2 -> 0.5
    assert M.wasserstein([[0.0, 4.0, 0.0]], [[1.0, 0.0, 1.0]], [[0, 1, 2]])[0] == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(BadInput, match="pred: a question's distribution sums to 0"):
        M.one_minus_jsd([[0.0, 0.0]], [[0.5, 0.5]])
    with pytest.raises(BadInput, match="target: a question's distribution sums to 0"):
        M.wasserstein([[0.5, 0.5]], [[0.0, 0.0]], [[1, 2]])


def test_wd_positions_and_padding_by_hand() -> None:
    """Uneven gaps weigh the CDF difference by the gap; a short question next to a long one pads nothing."""
    # positions 0, 1, 4 (span 4): F_p - F_t = (1-0, 1-0.5) at gaps (1, 3) -> (1*1 + 0.5*3)/4 = 0.625
    wd = M.wasserstein([[1, 0, 0], [0.5, 0.5]], [[0, 0.5, 0.5], [0.5, 0.5]], [[0, 1, 4], [7, 9]])
    np.testing.assert_allclose(wd, [0.625, 0.0], atol=1e-12)
    # positions given out of order are sorted with their mass: (4, 0, 1) holding (0, 1, 0) vs (0, 0, 1)
    assert M.wasserstein([[0, 1, 0]], [[0, 0, 1]], [[4, 0, 1]])[0] == pytest.approx(0.25)
    with pytest.raises(BadInput, match="one position per option"):
        M.wasserstein([[0.5, 0.5]], [[0.5, 0.5]], [[1, 2, 3]])
    with pytest.raises(BadInput, match="question 1 has all positions equal"):
        M.wasserstein([[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]], [[1, 2], [3, 3]])


def test_input_guards_name_the_side() -> None:
    with pytest.raises(BadInput, match="^pred: no questions$"):
        M.mse([], [])
    with pytest.raises(BadInput, match="^target: a question has no options$"):
        M.mse([[1.0]], [[]])
    with pytest.raises(BadInput, match="^pred: contains NaN or infinite values$"):
        M.mse([[np.nan, 1.0]], [[0.5, 0.5]])
    with pytest.raises(BadInput, match="^target: contains NaN or infinite values$"):
        M.mse([[0.5, 0.5]], [[np.inf, 0.0]])
    with pytest.raises(BadInput, match="^ordinals: contains NaN"):
        M.wasserstein([[0.5, 0.5]], [[0.5, 0.5]], [[1, np.nan]])
    with pytest.raises(BadInput, match="^distribution: a question has no options$"):
        M.normalised_entropy([[]])
    with pytest.raises(BadInput, match="^pred and target differ in number of questions or options per question$"):
        M.mse([[0.5, 0.5]], [[0.2, 0.3, 0.5]])
    with pytest.raises(BadInput, match="differ in number"):
        M.mse([[0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(BadInput, match="^normalised entropy needs at least 2 options per question$"):
        M.normalised_entropy([[1.0], [0.5, 0.5]])
    with pytest.raises(BadInput, match="^r2: target rows have zero variance$"):
        M.r2([[0.4, 0.6]], [[0.5, 0.5]])
    # a one-option question is a valid row for MSE (only entropy needs two options): (0.9 - 1)^2 / 1
    assert M.mse([[0.9]], [[1.0]]) == pytest.approx(0.01)
    # ragged questions pack without mixing options across questions: MSE over 1 + 3 rows
    assert M.mse([[1.0], [0.2, 0.3, 0.5]], [[0.0], [0.5, 0.3, 0.2]]) == pytest.approx((1 + 0.09 + 0.09) / 4)


def test_entropy_coverage_tolerance_and_ties() -> None:
    """Equal entropies count as covered; `tol` is honoured, in the documented direction (H_p >= H_t - tol)."""
    same = [[0.7, 0.3], [0.5, 0.5]]
    np.testing.assert_array_equal(M.entropy_coverage(same, same), [1.0, 1.0])
    assert M.entropy_coverage(same, same).dtype == np.float64
    a, b = [[0.70, 0.30]], [[0.69, 0.31]]  # H(a) < H(b) by ~0.0017
    gap = M.normalised_entropy(b)[0] - M.normalised_entropy(a)[0]
    assert 0 < gap < 0.02
    assert M.entropy_coverage_ratio(a, b) == 0.0
    assert M.entropy_coverage_ratio(a, b, tol=0.02) == 1.0
    assert M.entropy_coverage_ratio(a, b, tol=gap / 2) == 0.0
    assert M.entropy_coverage_ratio(b, a, tol=0.0) == 1.0


def test_entropy_zero_mass_options_add_nothing() -> None:
    """0·log 0 = 0 exactly, without floating-point warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = M.normalised_entropy([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0]])
    np.testing.assert_allclose(h, [0.0, 0.5], atol=0)


def test_kish_ess_signed_weights_and_guards() -> None:
    """Signed weights (p2p estimators) are read as |w|: (Σ|w|)² / Σw²; a single weight is ESS 1."""
    assert M.kish_ess([0.5, -0.5, 1.0]) == pytest.approx(4 / 1.5)
    assert M.kish_ess(np.array([[0.2, -0.2], [0.2, 0.4]])) == pytest.approx(1.0**2 / 0.28)
    assert M.kish_ess([2.0]) == pytest.approx(1.0)
    assert M.kish_ess([True, False, True]) == pytest.approx(2.0)
    with pytest.raises(BadInput, match="^weights: empty or contains NaN/inf$"):
        M.kish_ess([])
    with pytest.raises(BadInput, match="^weights: empty or contains NaN/inf$"):
        M.kish_ess([np.nan, 1.0])
    with pytest.raises(BadInput, match="^weights: empty or contains NaN/inf$"):
        M.kish_ess([np.inf, 1.0])
    with pytest.raises(BadInput, match="^weights: all zero$"):
        M.kish_ess([0.0, -0.0])


def test_majority_ties_within_tolerance_and_padding() -> None:
    """Values within 1e-12 of the max tie (lowest index wins); padded slots of short questions never win."""
    acc = M.majority_match([[0.5 - 1e-13, 0.5 + 1e-13], [0.3, 0.3, 0.4]], [[0.6, 0.4], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(acc, [1.0, 1.0])
    acc = M.majority_match([[0.49, 0.51]], [[0.6, 0.4]])
    np.testing.assert_array_equal(acc, [0.0])
    # question 1 has 2 options packed beside a 3-option question: its padding (0) must not beat negatives
    acc = M.majority_match([[-0.2, -0.1], [0.1, 0.2, 0.7]], [[-0.3, -0.1], [0.1, 0.2, 0.7]])
    np.testing.assert_array_equal(acc, [1.0, 1.0])


def test_tvd_arrays_and_mappings_by_hand() -> None:
    assert M.tvd([0.2, 0.8], [0.5, 0.5]) == pytest.approx(0.3)
    assert M.tvd(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])) == pytest.approx(1.0)
    assert M.tvd({"a": 0.2, "b": 0.8}, {"b": 0.5, "c": 0.5}) == pytest.approx(0.5 * (0.2 + 0.3 + 0.5))
    assert M.tvd({"a": 1.0}, {"a": 1.0}) == 0.0
    assert isinstance(M.tvd([0.1, 0.9], [0.9, 0.1]), float)


# ---- edges pinned from the definitions (issue 25: mutation survivors) ----


def test_error_messages_name_the_offending_input() -> None:
    with pytest.raises(BadInput, match=r"^target: a question's distribution sums to 0$"):
        M.one_minus_jsd([[0.5, 0.5]], [[0.0, 0.0]])
    with pytest.raises(BadInput, match=r"^pred: a question's distribution sums to 0$"):
        M.wasserstein([[0.0, 0.0]], [[0.5, 0.5]], [[0, 1]])
    with pytest.raises(BadInput, match=r"^ordinals must give one position per option of every question$"):
        M.wasserstein([[0.5, 0.5]], [[0.5, 0.5]], [[0, 1, 2]])


def test_jsd_similarity_stays_in_0_1_despite_rounding() -> None:
    """Disjoint supports: JSD is exactly 1 (similarity 0), though the sum rounds above 1; equal
    distributions: JSD 0 (similarity 1), though the sum rounds to −2e-16 here. The clip keeps both in range."""
    a = [0.18865571122549774, 0.3647991562853584, 0.12083436469816124, 0.25918869607622946, 0.0320407343296078,
         0.03448133738514535]
    b = [0.3238281031780491, 0.07241366978171429, 0.13899913100079347, 0.2197252291273753, 0.20908879938558192,
         0.03594506752648598]
    disjoint = M.one_minus_jsd([a + [0.0] * 6], [[0.0] * 6 + b])  # the sum rounds to 1 + 2^-51 here
    assert disjoint[0] == 0.0
    same = M.one_minus_jsd([[0.05096644263013634, 0.5779905536153056, 0.2630550941513347, 0.10798790960322341]],
                           [[0.050966442630207186, 0.5779905536154817, 0.2630550941516737, 0.10798790960331714]])
    assert same[0] == pytest.approx(1.0, abs=1e-6)


def test_ties_at_the_tolerance_count() -> None:
    """Coverage is H(pred) ≥ H(target) − tol (equality counts, also at tol 0); the majority option is the lowest
    index within TIE_TOL = 1e-12 of the maximum (a value exactly TIE_TOL below it still ties)."""
    d = [[0.3, 0.7], [0.5, 0.5]]
    np.testing.assert_array_equal(M.entropy_coverage(d, d, tol=0.0), [1.0, 1.0])
    assert M.majority_match([[0.5 - 1e-12, 0.5]], [[1.0, 0.0]])[0] == 1.0
    assert M.majority_match([[0.5 - 1e-11, 0.5]], [[1.0, 0.0]])[0] == 0.0


def test_tvd_of_mappings_counts_missing_categories_as_zero() -> None:
    assert M.tvd({"a": 1.0}, {"a": 0.8, "b": 0.2}) == pytest.approx(0.2)
    assert M.tvd({"a": 0.8, "b": 0.2}, {"a": 1.0}) == pytest.approx(0.2)
    with pytest.raises(TypeError):  # a mapping against an array: no alignment to infer
        M.tvd({"a": 1.0}, [1.0])


def test_asmd_by_hand() -> None:
    """mean over target categories with 0 < q_k < 1 of |p_k − q_k| / √(q_k(1 − q_k)); a category missing from p
    has share 0; categories with q_k ∈ {0, 1} are skipped; None when none is left."""
    p, q = {"a": 0.5, "b": 0.5}, {"a": 0.2, "b": 0.4, "c": 0.4}
    hand = (0.3 / math.sqrt(0.16) + 0.1 / math.sqrt(0.24) + 0.4 / math.sqrt(0.24)) / 3
    assert M.asmd(p, q) == pytest.approx(hand, rel=1e-12)
    assert M.asmd({"a": 0.4}, {"a": 0.5, "b": 0.0, "z": 1.0}) == pytest.approx(0.1 / 0.5, rel=1e-12)
    assert M.asmd({"a": 0.4}, {"a": 1.0, "b": 0.0}) is None
