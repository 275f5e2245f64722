"""P2P Tracker (paper 000: eq. 4, eq. 5, Alg. 1, Alg. 2) against values computed by hand; no model involved."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personagen.endow.aeg import AttributeSource, initial_allocation, plan_update, step_sizes
from personagen.endow.bank import load_bank
from personagen.endow.tracker import (
    Tracker,
    answer_entropies,
    normalised_entropy,
    patch_split,
    softmax,
    update_schedule,
    variability_score,
)

# Pool used throughout: two questions, q1 with K=2 options, q2 with K=4; modes a and b.
#   agent  mode  q1  q2
#   0      a     0   0
#   1      a     1   1
#   2      b     0   0
#   3      b     0   0
ANSWERS = np.array([[0, 0], [1, 1], [0, 0], [0, 0]])
MODES = ["a", "a", "b", "b"]

# Eq. 4 by hand. Whole pool, q1 counts (3, 1): p = (.75, .25)
#   −(.75·log2 .75 + .25·log2 .25) = .75·0.4150375 + .25·2 = 0.3112781 + 0.5 = 0.8112781; / log2 2 = 1
H1 = 0.8112781
#   q2 counts (3, 1, 0, 0): the same sum 0.8112781, / log2 4 = 2 → 0.4056391
H2 = 0.4056391
# Mode a alone: q1 (1, 1) → 1.0; q2 (1, 1, 0, 0) → 1 / 2 = 0.5.  Mode b alone: everyone agrees → 0, 0.
# Eq. 5 by hand: V(a) = 1.0 / 0.8112781 + 0.5 / 0.4056391 = 1.2326229 + 1.2326229 = 2.4652458;  V(b) = 0 + 0 = 0
V_A, V_B = 2.4652458, 0.0
# Softmax: p_a = e^2.4652458 / (e^2.4652458 + e^0) = 11.766374 / 12.766374 = 0.921669;  p_b = 1 / 12.766374 = 0.078331
P_A, P_B = 0.921669, 0.078331


def make(**kw: object) -> Tracker:
    args = dict(temperature=1.0, lowest_k=1, patch_ratio=0.5, mix_after=2, seed=0)
    args.update(kw)
    t = Tracker(["q1", "q2"], [2, 4], ["a", "b"], **args)  # type: ignore[arg-type]
    t.add(ANSWERS, MODES, ["p0", "p1", "p2", "p3"])
    return t


def test_eq4_question_entropy_by_hand() -> None:
    assert -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)) == pytest.approx(H1, abs=1e-7)
    assert normalised_entropy(np.array([3, 1]), 2) == pytest.approx(H1, abs=1e-7)
    assert normalised_entropy(np.array([3, 1, 0, 0]), 4) == pytest.approx(H2, abs=1e-7)
    assert normalised_entropy(np.array([1, 1]), 2) == pytest.approx(1.0)
    # (1, 1, 1) over K = 3: −3·(1/3)·log2(1/3) / log2 3 = 1
    assert normalised_entropy(np.array([1, 1, 1]), 3) == pytest.approx(1.0)
    # (2, 1, 1) over K = 4: −(.5·(−1) + 2·.25·(−2)) / 2 = 1.5 / 2 = 0.75
    assert normalised_entropy(np.array([2, 1, 1, 0]), 4) == pytest.approx(0.75)
    assert normalised_entropy(np.array([4, 0, 0]), 3) == 0.0
    assert normalised_entropy(np.array([0, 0]), 2) == 0.0  # no answers
    assert answer_entropies(ANSWERS, [2, 4]) == pytest.approx([H1, H2], abs=1e-7)
    # invalid answers (−1) are not counted: q1 counts (1, 1) → 1.0
    assert answer_entropies(np.array([[0], [1], [-1]]), [2]) == pytest.approx([1.0])


def test_eq5_variability_score_by_hand() -> None:
    t = make()
    assert t.question_entropy() == pytest.approx([H1, H2], abs=1e-7)
    assert t.mode_entropy("a") == pytest.approx([1.0, 0.5])
    assert t.mode_entropy("b") == pytest.approx([0.0, 0.0])
    assert t.mode_scores() == pytest.approx([V_A, V_B], abs=1e-6)
    # a sum over questions of ratios, not a weighted average: it exceeds 1
    assert variability_score(np.array([1.0, 0.5]), np.array([H1, H2])) == pytest.approx(2.4652458, abs=1e-6)
    # 0/0 term: the whole pool agrees on q1 (H = 0), so it contributes 0; q2: 1 / 0.8112781 = 1.2326229
    assert variability_score(np.array([0.0, 1.0]), np.array([0.0, H1])) == pytest.approx(1.2326229, abs=1e-6)
    # a mode without agents scores the best observed score (only under budgets too small for the initial stage)
    assert t.mode_scores(["a", "b", "new"])[2] == pytest.approx(V_A, abs=1e-6)


def test_softmax_by_hand() -> None:
    t = make()
    assert math.exp(2.4652458) / (math.exp(2.4652458) + 1) == pytest.approx(P_A, abs=1e-6)
    assert t.probabilities() == pytest.approx([P_A, P_B], abs=1e-5)
    # τ = 0.5: p_a = e^4.9304916 / (e^4.9304916 + 1) = 138.44756 / 139.44756 = 0.992829
    assert make(temperature=0.5).probabilities() == pytest.approx([0.992829, 0.007171], abs=1e-5)
    # three modes with V = (3, 1, 0): e^3, e^1, e^0 = 20.0855, 2.71828, 1 → sum 23.8038 → (.84379, .11420, .04201)
    assert softmax(np.array([3.0, 1.0, 0.0])) == pytest.approx([0.843795, 0.114195, 0.042010], abs=1e-5)
    assert softmax(np.array([0.0, 0.0, 0.0])) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError):
        softmax(np.array([1.0]), 0.0)


def test_multinomial_allocation() -> None:
    t = make()
    a = t.allocate(10)
    assert sum(a.values()) == 10 and set(a) == {"a", "b"}
    assert make().allocate(10) == a  # same seed, same allocation
    assert t.allocate(0) == {"a": 0, "b": 0}
    tot = np.zeros(2)
    for _ in range(400):
        tot += list(t.allocate(50).values())
    # 20,000 draws: shares within 0.01 of (0.921669, 0.078331) (sd of a share ≈ 0.0019)
    assert tot / tot.sum() == pytest.approx([P_A, P_B], abs=0.01)


def test_schedule_and_initial_stage_by_hand() -> None:
    # paper §4.2: N_A = 300, 10 per mode initially; with 11 modes 110 initial, 190 left over 10 updates → 19 each
    assert update_schedule(300, 110, 10) == [19] * 10
    # 14 left over 10 updates → 2, 2, 2, 2, 1, 1, 1, 1, 1, 1 (remainder to the first steps)
    assert update_schedule(25, 11, 10) == [2, 2, 2, 2, 1, 1, 1, 1, 1, 1]
    assert update_schedule(5, 5, 10) == []
    assert step_sizes(20, 5, 10, step_size=4) == [4, 4, 4, 3]
    rng = np.random.default_rng(0)
    modes = [f"m{i}" for i in range(11)]
    # cap = ceil(300 / 2) = 150, 150 // 11 = 13 ≥ 10 → every mode gets 10
    assert initial_allocation(modes, 300, 10, rng) == {m: 10 for m in modes}
    # budget 40: cap 20, 20 // 11 = 1 → 1 each (11 ≤ 20)
    assert initial_allocation(modes, 40, 10, rng) == {m: 1 for m in modes}
    # budget 12: cap 6 < 11 modes → 6 random modes get 1 each
    small = initial_allocation(modes, 12, 10, rng)
    assert len(small) == 6 and set(small.values()) == {1}


def test_patch_split_by_hand() -> None:
    # §4.2: ρ = 75%, lowest 3. Step budget 19: round(14.25) = 14 to patches → (5, 5, 4); 5 left for modes
    assert patch_split(19, 3, 0.75) == (5, [5, 5, 4])
    assert patch_split(4, 2, 0.75) == (1, [2, 1])
    assert patch_split(5, 0, 0.75) == (5, [])
    assert patch_split(2, 3, 0.75) == (0, [1, 1, 0])  # round(1.5) = 2


def test_patches_new_repeat_mixed_with_top_mode() -> None:
    t = make()
    assert t.lowest_questions(1) == ["q2"] and t.lowest_questions(2) == ["q2", "q1"]
    assert t.top_mode() == "a"  # V(a) = 2.465 > V(b) = 0
    kinds = []
    for _ in range(4):
        rest, patches = t.plan_patches(6)  # ρ = .5: 3 to q2, 3 to the modes
        assert rest == 3 and [(p["qid"], p["n"]) for p in patches] == [("q2", 3)]
        kinds.append((patches[0]["kind"], patches[0]["top_mode"]))
    # first time: learn; times 2: reuse; more than t = 2 times: mixed with the top-performing mode
    assert kinds == [("new", None), ("repeat", None), ("mixed", "a"), ("mixed", "a")]


def test_empty_question_learner_is_counted_and_budget_returns() -> None:
    t = make()
    attrs = AttributeSource(load_bank(), learned=[])
    plan = plan_update(t, attrs, 1, 6, lambda qids: {q: [] for q in qids})
    assert plan.failures == ["q2"] and plan.patches == []
    assert sum(plan.allocation.values()) == 6  # the 3 patch agents went back to the multinomial allocation
    plan2 = plan_update(t, attrs, 2, 6, lambda qids: {q: ["distrust of experts", "rural upbringing"] for q in qids})
    assert plan2.failures == [] and plan2.patches[0]["mode"] == "patch:q2" and sum(plan2.allocation.values()) == 3
    assert plan2.scores == pytest.approx({"a": V_A, "b": V_B}, abs=1e-6)


def test_snapshot_is_recomputable() -> None:
    snap = make().snapshot(3)
    assert snap["step"] == 3 and snap["pool"] == ["p0", "p1", "p2", "p3"]
    assert snap["modes"] == {"p0": "a", "p1": "a", "p2": "b", "p3": "b"}
    assert snap["question_entropy"] == pytest.approx({"q1": H1, "q2": H2}, abs=1e-7)
    assert snap["scores"] == pytest.approx({"a": V_A, "b": V_B}, abs=1e-6)
    assert snap["probabilities"] == pytest.approx({"a": P_A, "b": P_B}, abs=1e-5)


def test_toy_loop_raises_entropy_and_exploits_the_varied_mode() -> None:
    """A loop driven by the tracker stops at N_A, raises the pool entropy and gives the varied mode most agents."""
    rng = np.random.default_rng(1)
    t = Tracker(["q1", "q2", "q3"], [3, 3, 3], ["flat", "stuck"], lowest_k=1, patch_ratio=0.0, seed=3)

    def answers(mode: str, n: int) -> np.ndarray:
        return rng.integers(0, 3, (n, 3)) if mode == "flat" else np.zeros((n, 3), dtype=int)

    t.add(answers("stuck", 5), ["stuck"] * 5)
    t.add(answers("flat", 5), ["flat"] * 5)
    h0 = t.question_entropy().mean()
    for n in update_schedule(60, t.n_agents, 10):
        for m, k in t.allocate(n).items():
            if k:
                t.add(answers(m, k), [m] * k)
    assert t.n_agents == 60 and t.question_entropy().mean() > h0
    assert t.agent_modes.count("flat") > 45  # V(flat) ≈ 3 ≫ V(stuck) = 0: p(flat) ≈ e^3 / (e^3 + 1) ≈ .95


# ---- edges of eq. 4/5, the softmax, the allocation and the bank (each by hand) -----------------------------
def test_softmax_is_shifted_for_large_scores() -> None:
    """V sums entropy ratios over many questions, so it can be large: e^1000 must not overflow."""
    e = math.e
    assert softmax(np.array([1000.0, 999.0])) == pytest.approx([e / (e + 1), 1 / (e + 1)], abs=1e-12)
    assert softmax(np.array([-1000.0, -1001.0])) == pytest.approx([e / (e + 1), 1 / (e + 1)], abs=1e-12)
    assert softmax(np.array([2.0, 0.0]), temperature=2.0) == pytest.approx([e / (e + 1), 1 / (e + 1)], abs=1e-12)
    with pytest.raises(ValueError, match="^temperature must be > 0$"):
        softmax(np.array([1.0]), -1.0)


def test_answers_outside_the_options_are_not_counted() -> None:
    """An option index ≥ K (or < 0) is an invalid answer, not a new category: q1 counts stay (1, 1) → 1.0."""
    assert answer_entropies(np.array([[0], [1], [2], [5], [-1]]), [2]) == pytest.approx([1.0])
    # K = 3, answers 0, 0, 3: counts (2, 0, 0) → 0, not the entropy of (2, 1) over 3 options
    assert answer_entropies(np.array([[0], [0], [3]]), [3]) == pytest.approx([0.0])
    # fewer than two options, or no answers: 0 by definition
    assert normalised_entropy(np.array([5]), 1) == 0.0
    assert normalised_entropy(np.array([0, 0, 0]), 3) == 0.0
    # (1, 3) over K = 2 with a zero-count option beside it in K = 3: −(.25·log2 .25 + .75·log2 .75) / log2 3
    assert normalised_entropy(np.array([1, 3, 0]), 3) == pytest.approx(H1 / math.log2(3), abs=1e-7)


def test_allocate_over_a_subset_uses_the_subset_probabilities() -> None:
    t = make()
    assert t.allocate(10, ["b"]) == {"b": 10}
    assert t.allocate(7, ["a"]) == {"a": 7}
    # probabilities over a subset are the softmax of the subset's scores alone
    assert make().probabilities(["b", "a"]) == pytest.approx([P_B, P_A], abs=1e-5)
    t3 = make()
    t3.add(np.array([[1, 2]]), ["c"], ["p4"])  # mode c scores V(c) = 0 (a single agent agrees with itself)
    # over (b, c) both score 0 → 1/2 each; 20,000 draws within 0.01
    tot = np.zeros(2)
    for _ in range(400):
        tot += list(t3.allocate(50, ["b", "c"]).values())
    assert tot / tot.sum() == pytest.approx([0.5, 0.5], abs=0.01)


def test_new_patch_and_mixed_modes_join_the_bank() -> None:
    """Alg. 1 line 13: agents of a mode not in the bank (patch:<qid>, mixed) add that mode, once."""
    t = make()
    t.add(np.array([[0, 1], [1, 2]]), ["patch:q2", "mixed:patch:q2+a"])
    t.add(np.array([[1, 3]]), ["patch:q2"])
    assert t.modes == ["a", "b", "patch:q2", "mixed:patch:q2+a"]
    assert t.agent_ids[-3:] == ["agent-4", "agent-5", "agent-6"]  # default ids continue the pool's numbering
    assert len(t.mode_scores()) == 4
    with pytest.raises(ValueError, match="^one mode per answered agent is needed$"):
        t.add(np.array([[0, 0]]), ["a", "b"])
    with pytest.raises(ValueError, match="^one id per answered agent is needed$"):
        t.add(np.array([[0, 0]]), ["a"], ids=["x", "y"])
    with pytest.raises(ValueError, match="^qids and n_options differ in length$"):
        Tracker(["q1"], [2, 3], ["a"])


def test_snapshot_uses_the_temperature() -> None:
    snap = make(temperature=0.5).snapshot(1)
    # τ = 0.5 by hand (test_softmax_by_hand): (0.992829, 0.007171)
    assert snap["probabilities"] == pytest.approx({"a": 0.992829, "b": 0.007171}, abs=1e-5)
    assert snap["temperature"] == 0.5 and snap["n_pool"] == 4


def test_scores_and_patches_of_an_empty_pool() -> None:
    t = Tracker(["q1", "q2"], [2, 4], ["a", "b"], lowest_k=1, patch_ratio=0.5)
    assert t.mode_scores() == pytest.approx([0.0, 0.0])  # no agent anywhere: every mode scores 0
    assert t.plan_patches(6) == (6, [])  # nothing to patch before the first agents answer
    assert t.low_counts == {"q1": 0, "q2": 0}
    # lowest_k larger than the question count is capped; k = 0 gives none
    u = make()
    assert u.lowest_questions(5) == ["q2", "q1"] and u.lowest_questions(0) == []


def test_top_mode_ties_and_patch_edges() -> None:
    t = Tracker(["q1"], [2], ["x", "y"])
    t.add(np.array([[0], [1], [0], [1]]), ["x", "x", "y", "y"])  # both modes split 1:1 → equal scores
    assert t.mode_scores() == pytest.approx([1.0, 1.0])
    assert t.top_mode() == "x"  # first in mode order on ties
    assert patch_split(10, 2, 0.0) == (10, [])
    assert patch_split(3, 2, 1.0) == (0, [2, 1])
    assert patch_split(4, 1, 2.0) == (0, [4])  # never more than the step budget
    assert update_schedule(20, 10, 0) == [] and update_schedule(10, 12, 3) == []
    # 3 left over 5 steps: (1, 1, 1, 0, 0) → the empty steps are dropped
    assert update_schedule(13, 10, 5) == [1, 1, 1]
    assert update_schedule(11, 10, 3) == [1] and update_schedule(15, 10, 1) == [5]
    # a step of one agent is allocated, not skipped
    assert sum(make().allocate(1).values()) == 1
    # the top mode is found wherever it sits in the mode list
    u = Tracker(["q1"], [2], ["stuck", "varied"])
    u.add(np.array([[0], [0], [0], [1]]), ["stuck", "stuck", "varied", "varied"])
    assert u.top_mode() == "varied"


def test_mix_after_threshold_is_honoured() -> None:
    t = make(mix_after=1)
    kinds = [t.plan_patches(6)[1][0]["kind"] for _ in range(3)]
    assert kinds == ["new", "mixed", "mixed"]  # times > t = 1 → mixed from the second time
    assert t.plan_patches(6)[1][0]["times_lowest"] == 4


def test_lowest_questions_break_ties_by_question_order() -> None:
    """Twenty questions whose pool entropies alternate 1, 0, 1, 0, ...: the lowest ten are the odd ones, in
    question order (a stable sort; numpy's default sort reorders such ties)."""
    qids = [f"q{i}" for i in range(20)]
    t = Tracker(qids, [2] * 20, ["a"], lowest_k=10)
    row0 = [0] * 20
    row1 = [1 if i % 2 == 0 else 0 for i in range(20)]
    t.add(np.array([row0, row1]), ["a", "a"])
    assert t.question_entropy() == pytest.approx([1.0, 0.0] * 10)
    assert t.lowest_questions() == [f"q{i}" for i in range(1, 20, 2)]
