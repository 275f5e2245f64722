"""The active-endowment Tracker of Prompts to Proxies (P2P; paper 000, §3.3, Alg. 1 and Alg. 2).

P2P grows its agent pool with entropy-guided adaptive sampling. After every generation round the Tracker
(Alg. 2) tallies the pool's answers to the training questions Q_train and computes:

1. **Question entropy, eq. 4.** For question i with K_i options and empirical answer shares p_ik over a
   group of agents A: H_i(A) = −Σ_k p_ik log2 p_ik / log2 K_i ∈ [0, 1]. Over the whole pool this is
   H_i(A_total); restricted to one mode's agents, the *mode-question entropy* H_i(A_mode).
2. **Variability score, eq. 5.** V(A_mode) = Σ_{i∈Q_train} H_i(A_mode) / H_i(A_total), with A_mode the
   cumulative agents of the mode so far and A_total all agents so far. A term with H_i(A_total) = 0 is 0:
   when the whole pool agrees on question i, every mode's agents agree too (H_i(A_mode) = 0), so the
   term is 0/0 and carries no information about the mode.
3. **Softmax (Alg. 2 line 8).** p_m = exp(V_m / τ) / Σ_m' exp(V_m' / τ); the paper uses the plain softmax
   (τ = 1, the default). V sums over |Q_train| questions, so it is unbounded above and the softmax is sharp:
   the top mode is exploited, the others explored only when their scores are close.
4. **Allocation (Alg. 1 line 8).** The step's active budget B is split as n ~ Multinomial(B, p).
5. **Question patching (§3.3, Alg. 1 lines 9–18).** The lowest-k entropy questions (over the whole pool)
   are patched: a user-set share ρ of the step budget (paper: k = 3, ρ = 75%) goes to them, split evenly
   (remainder to the lowest-entropy ones). A question seen in the lowest-k list for the first time gets
   question-level attributes from the attribute learner (a new mode ``patch:<qid>`` appended to the bank);
   once it has appeared more than t times it moves to a *mixed mode* combining its attributes with those
   of the current top-performing mode (highest V).

A mode that has no agents yet (only possible when the initial stage could not cover every mode under a very
small budget) scores the best observed score, so it is explored; the paper's initial stage covers every mode.

Everything here is pure numpy and deterministic given the seed, so it is unit-tested by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def normalised_entropy(counts: np.ndarray, k: int) -> float:
    """Eq. 4 for one question: −Σ_k p_k log2 p_k / log2 K over option counts; 0 when there are no answers."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum()
    if n <= 0 or k < 2:
        return 0.0
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum() / np.log2(k))


def answer_entropies(answers: np.ndarray, n_options: Sequence[int]) -> np.ndarray:
    """Eq. 4 per question of an (agents × questions) matrix of option indices (−1 = invalid, not counted)."""
    answers = np.asarray(answers, dtype=int).reshape(-1, len(n_options))
    out = np.zeros(len(n_options))
    for i, k in enumerate(n_options):
        col = answers[:, i]
        col = col[(col >= 0) & (col < k)]
        out[i] = normalised_entropy(np.bincount(col, minlength=k), k)
    return out


def variability_score(h_mode: np.ndarray, h_total: np.ndarray) -> float:
    """Eq. 5: V(A_mode) = Σ_i H_i(A_mode) / H_i(A_total); terms with H_i(A_total) = 0 count 0 (see module doc)."""
    h_mode = np.asarray(h_mode, dtype=float)
    h_total = np.asarray(h_total, dtype=float)
    ok = h_total > 0
    return float((h_mode[ok] / h_total[ok]).sum())


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Alg. 2 line 8: softmax of scores / τ (numerically stable); τ must be > 0 (paper: τ = 1)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    z = np.asarray(scores, dtype=float) / temperature
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def patch_split(budget: int, n_patched: int, ratio: float) -> tuple[int, list[int]]:
    """§3.3: round(ρ·budget) of a step goes to patching, evenly over the patched questions (extra to the first,
    i.e. lowest-entropy, ones); returns (budget left for the active modes, per-question patch counts)."""
    if n_patched <= 0 or ratio <= 0:
        return budget, []
    total = min(budget, int(round(ratio * budget)))
    base, extra = divmod(total, n_patched)
    per_q = [base + (1 if i < extra else 0) for i in range(n_patched)]
    return budget - total, per_q


def update_schedule(budget: int, initial: int, n_updates: int) -> list[int]:
    """Alg. 1 expansion stage: the budget left after the initial stage, split over `n_updates` update steps
    as evenly as possible (earlier steps get the remainder); steps of size 0 are dropped."""
    rest = max(0, budget - initial)
    if rest == 0 or n_updates <= 0:
        return []
    base, extra = divmod(rest, n_updates)
    return [b for b in (base + (1 if i < extra else 0) for i in range(n_updates)) if b > 0]


@dataclass
class Tracker:
    """Pool state for active endowment generation (Alg. 2; see the module docstring for the maths)."""

    qids: list[str]
    n_options: list[int]
    modes: list[str]
    temperature: float = 1.0
    lowest_k: int = 3
    patch_ratio: float = 0.75
    mix_after: int = 2
    seed: int = 0
    answers: np.ndarray = field(init=False)
    agent_ids: list[str] = field(init=False, default_factory=list)
    agent_modes: list[str] = field(init=False, default_factory=list)
    low_counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.qids) != len(self.n_options):
            raise ValueError("qids and n_options differ in length")
        self.answers = np.zeros((0, len(self.qids)), dtype=int)
        self.low_counts = {q: 0 for q in self.qids}
        self.rng = np.random.default_rng(self.seed)

    @property
    def n_agents(self) -> int:
        return int(self.answers.shape[0])

    def add(self, answers: np.ndarray, modes: Sequence[str], ids: Sequence[str] | None = None) -> None:
        """Alg. 1 line 21: add agents (an n × questions matrix of option indices, −1 invalid), their modes and
        ids; a mode not yet known (a patch or mixed mode) is appended to the bank's mode list (line 13)."""
        a = np.asarray(answers, dtype=int).reshape(-1, len(self.qids))
        if a.shape[0] != len(modes):
            raise ValueError("one mode per answered agent is needed")
        ids = list(ids) if ids is not None else [f"agent-{self.n_agents + i}" for i in range(a.shape[0])]
        if len(ids) != a.shape[0]:
            raise ValueError("one id per answered agent is needed")
        self.answers = np.vstack([self.answers, a])
        self.agent_modes.extend(modes)
        self.agent_ids.extend(ids)
        for m in modes:
            if m not in self.modes:
                self.modes.append(m)

    def question_entropy(self) -> np.ndarray:
        """H_i(A_total), eq. 4 over the whole pool, one value per question (qids order)."""
        return answer_entropies(self.answers, self.n_options)

    def mode_entropy(self, mode: str) -> np.ndarray | None:
        """H_i(A_mode), eq. 4 over mode's agents alone, or None when the mode has no agents."""
        idx = [i for i, m in enumerate(self.agent_modes) if m == mode]
        if not idx:
            return None
        return answer_entropies(self.answers[idx], self.n_options)

    def mode_scores(self, modes: Sequence[str] | None = None) -> np.ndarray:
        """Eq. 5 variability score of each mode; a mode without agents scores the best observed score."""
        modes = list(modes or self.modes)
        h_total = self.question_entropy()
        raw = [None if (hm := self.mode_entropy(m)) is None else variability_score(hm, h_total) for m in modes]
        seen = [s for s in raw if s is not None]
        best = max(seen) if seen else 0.0
        return np.array([best if s is None else s for s in raw], dtype=float)

    def probabilities(self, modes: Sequence[str] | None = None) -> np.ndarray:
        """Sampling probabilities p = softmax(V / τ) over modes (Alg. 2 line 8)."""
        return softmax(self.mode_scores(modes), self.temperature)

    def allocate(self, budget: int, modes: Sequence[str] | None = None) -> dict[str, int]:
        """Alg. 1 line 8: Multinomial(budget, p) split of a step's active budget over modes."""
        modes = list(modes or self.modes)
        if budget <= 0 or not modes:
            return {m: 0 for m in modes}
        n = self.rng.multinomial(int(budget), self.probabilities(modes))
        return {m: int(c) for m, c in zip(modes, n)}

    def lowest_questions(self, k: int | None = None) -> list[str]:
        """Alg. 1 line 10: the k questions with the lowest pool entropy (ties broken by question order)."""
        k = self.lowest_k if k is None else k
        order = np.argsort(self.question_entropy(), kind="stable")
        return [self.qids[i] for i in order[: max(0, min(k, len(self.qids)))]]

    def top_mode(self) -> str:
        """The top-performing mode (highest eq. 5 score; first in mode order on ties)."""
        return self.modes[int(np.argmax(self.mode_scores()))]

    def plan_patches(self, budget: int) -> tuple[int, list[dict]]:
        """Alg. 1 lines 9–18: the lowest-k questions and their share of the step budget. Each entry says
        whether the question is new (learn its attributes), repeated (reuse them) or mixed (seen more than t
        times: its attributes plus the top mode's). Returns (budget left for the modes, patches)."""
        patched = self.lowest_questions() if self.n_agents else []
        rest, per_q = patch_split(budget, len(patched), self.patch_ratio)
        top = self.top_mode() if self.n_agents else None
        out = []
        for q, n in zip(patched, per_q):
            self.low_counts[q] += 1
            times = self.low_counts[q]
            kind = "new" if times == 1 else ("mixed" if times > self.mix_after else "repeat")
            out.append({"qid": q, "n": int(n), "kind": kind, "times_lowest": times,
                        "top_mode": top if kind == "mixed" else None})
        return rest, out

    def snapshot(self, step: int) -> dict:
        """One line of the run log (tracker.jsonl): the pool and everything eq. 4–5 and the softmax give for it,
        so the scores can be recomputed from the pool's responses."""
        modes = list(self.modes)
        scores = self.mode_scores(modes)
        probs = softmax(scores, self.temperature)
        return {
            "step": int(step),
            "scores": {m: float(s) for m, s in zip(modes, scores)},
            "probabilities": {m: float(p) for m, p in zip(modes, probs)},
            "question_entropy": {q: float(h) for q, h in zip(self.qids, self.question_entropy())},
            "pool": list(self.agent_ids),
            "modes": dict(zip(self.agent_ids, self.agent_modes)),
            "n_pool": self.n_agents,
            "temperature": self.temperature,
        }
