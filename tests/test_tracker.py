"""Tracker math (P2P active endowment generation) against hand computations; no model involved."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personagen.endow.tracker import (
    Tracker,
    answer_entropies,
    normalised_entropy,
    patch_split,
    softmax,
)

# Pool used throughout: two questions, q1 with 2 options, q2 with 4 options; modes a and b.
#   agent  mode  q1  q2
#   0      a     0   0
#   1      a     1   1
#   2      b     0   0
#   3      b     0   0
ANSWERS = np.array([[0, 0], [1, 1], [0, 0], [0, 0]])
MODES = ["a", "a", "b", "b"]

# Hand computation.
# Pool q1 counts (3, 1): H = -(.75 log2 .75 + .25 log2 .25) / log2 2
H_RAW = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))  # = 0.8112781
H1 = H_RAW / 1.0
# Pool q2 counts (3, 1, 0, 0): same sum, normalised by log2 4 = 2
H2 = H_RAW / 2.0  # = 0.4056391
# Mode a alone: q1 (1, 1) -> 1.0; q2 (1, 1, 0, 0) -> 1 / 2 = 0.5.  Mode b alone: everyone agrees -> 0, 0.
# Eq. 5 weights w = 1 - H (+eps): w1 = 0.1887219, w2 = 0.5943609
W1, W2 = 1 - H1, 1 - H2
V_A = (W1 * 1.0 + W2 * 0.5) / (W1 + W2)  # = 0.6204993
V_B = 0.0


def make() -> Tracker:
    t = Tracker(["q1", "q2"], [2, 4], ["a", "b"], temperature=1.0, lowest_k=1, patch_ratio=0.5, mix_after=2, seed=0)
    t.add(ANSWERS, MODES)
    return t


def test_entropy_by_hand() -> None:
    assert normalised_entropy(np.array([1, 1]), 2) == pytest.approx(1.0)
    assert normalised_entropy(np.array([4, 0, 0]), 3) == 0.0
    assert normalised_entropy(np.array([0, 0]), 2) == 0.0  # no answers
    assert normalised_entropy(np.array([1, 1, 1, 1]), 4) == pytest.approx(1.0)
    h = answer_entropies(ANSWERS, [2, 4])
    assert h == pytest.approx([0.8112781, 0.4056391], abs=1e-6)
    assert h == pytest.approx([H1, H2])
    # invalid answers (-1) are ignored: q1 counts (1, 1) -> 1.0
    assert answer_entropies(np.array([[0], [1], [-1]]), [2]) == pytest.approx([1.0])


def test_mode_scores_eq5_by_hand() -> None:
    t = make()
    assert t.question_entropy() == pytest.approx([H1, H2])
    assert t.mode_entropy("a") == pytest.approx([1.0, 0.5])
    assert t.mode_entropy("b") == pytest.approx([0.0, 0.0])
    s = t.mode_scores()
    assert s == pytest.approx([V_A, V_B], abs=1e-6)
    assert V_A == pytest.approx(0.6204993, abs=1e-6)
    # an unseen mode gets the optimistic prior score 1.0
    assert t.mode_scores(["a", "b", "new"])[2] == 1.0


def test_softmax_probabilities_by_hand() -> None:
    t = make()
    # T = 1: p_a = e^0.6204993 / (e^0.6204993 + e^0) = 1.859855 / 2.859855 = 0.650333
    assert t.probabilities() == pytest.approx([0.650333, 0.349667], abs=1e-5)
    # T = 0.5: p_a = e^1.2409986 / (e^1.2409986 + 1) = 3.459065 / 4.459065 = 0.775738
    t.temperature = 0.5
    assert t.probabilities() == pytest.approx([0.775738, 0.224262], abs=1e-5)
    assert softmax(np.array([0.0, 0.0, 0.0]), 2.0) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError):
        softmax(np.array([1.0]), 0.0)


def test_multinomial_allocation() -> None:
    t = make()
    a = t.allocate(10)
    assert sum(a.values()) == 10 and set(a) == {"a", "b"}
    # same seed, same allocation (deterministic runs)
    assert make().allocate(10) == a
    # near-zero temperature: greedy, everything to the best mode (a)
    t.temperature = 1e-4
    assert t.allocate(7) == {"a": 7, "b": 0}
    assert t.allocate(0) == {"a": 0, "b": 0}
    # the empirical shares converge to the softmax probabilities
    t.temperature = 1.0
    tot = np.zeros(2)
    for _ in range(400):
        tot += list(t.allocate(50).values())
    assert tot / tot.sum() == pytest.approx([0.650333, 0.349667], abs=0.01)


def test_patch_split_by_hand() -> None:
    # budget 4, ratio .75 -> 3 to patches over 2 questions: (2, 1) (extra to the lowest), 1 left for modes
    assert patch_split(4, 2, 0.75) == (1, [2, 1])
    # budget 10, 3 questions, ratio .5 -> 5: (2, 2, 1), 5 left
    assert patch_split(10, 3, 0.5) == (5, [2, 2, 1])
    assert patch_split(5, 0, 0.75) == (5, [])
    assert patch_split(2, 3, 0.75) == (0, [1, 1, 0])  # round(1.5) = 2


def test_plan_step_patching_and_mixed_modes() -> None:
    t = make()
    assert t.lowest_questions(1) == ["q2"]  # H2 < H1
    assert t.lowest_questions(2) == ["q2", "q1"]
    p1 = t.plan_step(6)  # ratio .5 -> 3 to q2, 3 to the modes
    assert [(x["qid"], x["n"], x["mixed"]) for x in p1["patches"]] == [("q2", 3, False)]
    assert sum(p1["allocation"].values()) == 3
    assert p1["entropies"] == pytest.approx({"q1": H1, "q2": H2})
    assert p1["probabilities"]["a"] == pytest.approx(0.650333, abs=1e-5)
    p2 = t.plan_step(6)
    assert p2["patches"][0]["mixed"] is False  # patched once before
    p3 = t.plan_step(6)
    assert p3["patches"][0]["mixed"] is True  # patched t = 2 times -> mixed modes
    assert t.patch_counts == {"q1": 0, "q2": 3}


def test_stop_at_budget_simulation() -> None:
    """A toy loop driven by the tracker stops exactly at N_A and raises the pool entropy."""
    rng = np.random.default_rng(1)
    t = Tracker(["q1", "q2", "q3"], [3, 3, 3], ["flat", "stuck"], lowest_k=1, patch_ratio=0.5, seed=3)
    n_a, step = 60, 10

    def answers(mode: str, n: int) -> np.ndarray:
        return rng.integers(0, 3, (n, 3)) if mode in ("flat", "patch") else np.zeros((n, 3), dtype=int)

    t.add(answers("stuck", 5), ["stuck"] * 5)
    t.add(answers("flat", 5), ["flat"] * 5)
    h0 = t.question_entropy().mean()
    while t.n_agents < n_a:
        plan = t.plan_step(min(step, n_a - t.n_agents))
        for m, n in plan["allocation"].items():
            if n:
                t.add(answers(m, n), [m] * n)
        for p in plan["patches"]:
            t.add(answers("patch", p["n"]), ["patch"] * p["n"])
    assert t.n_agents == n_a
    assert t.question_entropy().mean() > h0
    assert t.mode_scores()[0] > t.mode_scores()[1]  # the varied mode scores higher
