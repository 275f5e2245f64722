"""The active-endowment Tracker of Prompts to Proxies (P2P; Wang, Khoo & Wang 2025, arXiv:2509.11311, §3).

P2P grows its agent pool with entropy-guided adaptive sampling. After every generation step the pool's
answers to the training questions are tallied and:

1. **Question entropy.** For question i with K_i options and answer shares p_ik over the pool,
   H_i = −Σ_k p_ik log2 p_ik / log2 K_i ∈ [0, 1] (1 = answers spread evenly, 0 = everyone agrees).
2. **Mode variability score (P2P eq. 5).** Each mode m (a family of attributes: economics, politics, ...)
   is scored by how much its own agents disagree where the pool lacks diversity. We implement
   V_m = Σ_i w_i H_i^(m) / Σ_i w_i with w_i = 1 − H_i + ε, where H_i^(m) is the normalised entropy of the
   answers of mode m's agents alone. (The paper's exact typography was not available offline; this form
   keeps its two stated ingredients — within-mode answer variability, emphasised on low-entropy
   questions — and reduces to the plain mean within-mode entropy when the pool is uniform.)
   Modes with no answers yet score the prior `unseen_score` (1.0: optimistic, so they get explored).
3. **Softmax sampling.** π_m = exp(V_m / τ) / Σ exp(V_m' / τ) with temperature τ (small τ → greedy).
4. **Multinomial allocation.** The step's mode budget B is split as n ~ Multinomial(B, π).
5. **Question patching.** The lowest-k entropy questions (default k = 3) are "patched": a share ρ of the
   step budget (default 75%) goes to endowments built from question-level attributes for them (split
   evenly, remainder to the lowest). A question patched t times (default 2) switches to *mixed* modes
   (its learned attributes combined with bank attributes), because repeating the same attributes stopped
   raising its entropy.
6. **Stop** when the pool reaches the budget N_A (default 300; initial 10 per mode; ≤ 10 attributes per
   endowment).

Everything here is pure numpy and deterministic given the seed, so it is unit-tested by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-9


def normalised_entropy(counts: np.ndarray, k: int) -> float:
    """Normalised Shannon entropy (base 2) of option counts over k options; 0 when there are no answers."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum()
    if n <= 0 or k < 2:
        return 0.0
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum() / np.log2(k))


def answer_entropies(answers: np.ndarray, n_options: Sequence[int]) -> np.ndarray:
    """Per-question normalised entropy of an (agents × questions) matrix of option indices (−1 = invalid)."""
    answers = np.asarray(answers, dtype=int).reshape(-1, len(n_options))
    out = np.zeros(len(n_options))
    for i, k in enumerate(n_options):
        col = answers[:, i]
        col = col[(col >= 0) & (col < k)]
        out[i] = normalised_entropy(np.bincount(col, minlength=k), k)
    return out


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of scores / temperature (numerically stable); temperature must be > 0."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    z = np.asarray(scores, dtype=float) / temperature
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def patch_split(budget: int, n_patched: int, ratio: float) -> tuple[int, list[int]]:
    """Split a step budget: round(ratio·budget) to patching, evenly over the patched questions (extra to the
    first ones, i.e. the lowest entropy); returns (budget left for modes, per-question patch counts)."""
    if n_patched <= 0 or ratio <= 0:
        return budget, []
    total = min(budget, int(round(ratio * budget)))
    base, extra = divmod(total, n_patched)
    per_q = [base + (1 if i < extra else 0) for i in range(n_patched)]
    return budget - total, per_q


@dataclass
class Tracker:
    """Pool state for active endowment generation (see module docstring for the maths)."""

    qids: list[str]
    n_options: list[int]
    modes: list[str]
    temperature: float = 1.0
    lowest_k: int = 3
    patch_ratio: float = 0.75
    mix_after: int = 2
    unseen_score: float = 1.0
    seed: int = 0
    answers: np.ndarray = field(init=False)
    agent_modes: list[str] = field(init=False, default_factory=list)
    patch_counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        if len(self.qids) != len(self.n_options):
            raise ValueError("qids and n_options differ in length")
        self.answers = np.zeros((0, len(self.qids)), dtype=int)
        self.patch_counts = {q: 0 for q in self.qids}
        self.rng = np.random.default_rng(self.seed)

    # ---- state ---------------------------------------------------------------------------------
    @property
    def n_agents(self) -> int:
        return int(self.answers.shape[0])

    def add(self, answers: np.ndarray, modes: Sequence[str]) -> None:
        """Add agents: an (n × questions) matrix of option indices (−1 invalid) and each agent's mode."""
        a = np.asarray(answers, dtype=int).reshape(-1, len(self.qids))
        if a.shape[0] != len(modes):
            raise ValueError("one mode per answered agent is needed")
        self.answers = np.vstack([self.answers, a])
        self.agent_modes.extend(modes)  # agents of non-allocatable modes (patches) count in the pool only

    # ---- P2P quantities ------------------------------------------------------------------------
    def question_entropy(self) -> np.ndarray:
        """H_i of the whole pool, one value per question (qids order)."""
        return answer_entropies(self.answers, self.n_options)

    def mode_entropy(self, mode: str) -> np.ndarray | None:
        """H_i^(m): entropy of mode m's agents alone, or None when the mode has no agents."""
        idx = [i for i, m in enumerate(self.agent_modes) if m == mode]
        if not idx:
            return None
        return answer_entropies(self.answers[idx], self.n_options)

    def mode_scores(self, modes: Sequence[str] | None = None) -> np.ndarray:
        """Variability score V_m (eq. 5 as implemented, see module docstring) for each mode."""
        modes = list(modes or self.modes)
        w = 1.0 - self.question_entropy() + EPS
        out = np.empty(len(modes))
        for j, m in enumerate(modes):
            hm = self.mode_entropy(m)
            out[j] = self.unseen_score if hm is None else float((w * hm).sum() / w.sum())
        return out

    def probabilities(self, modes: Sequence[str] | None = None) -> np.ndarray:
        """Sampling probabilities π = softmax(V / τ) over modes."""
        return softmax(self.mode_scores(modes), self.temperature)

    def allocate(self, budget: int, modes: Sequence[str] | None = None) -> dict[str, int]:
        """Multinomial(budget, π) split of a step budget over modes."""
        modes = list(modes or self.modes)
        if budget <= 0 or not modes:
            return {m: 0 for m in modes}
        n = self.rng.multinomial(int(budget), self.probabilities(modes))
        return {m: int(c) for m, c in zip(modes, n)}

    def lowest_questions(self, k: int | None = None) -> list[str]:
        """The k questions with the lowest pool entropy (ties broken by question order)."""
        k = self.lowest_k if k is None else k
        h = self.question_entropy()
        order = np.argsort(h, kind="stable")
        return [self.qids[i] for i in order[: max(0, min(k, len(self.qids)))]]

    def plan_step(self, budget: int) -> dict:
        """One step's plan: patched questions and their budgets (mixed once patched ≥ t times), then the
        multinomial mode allocation of what is left. Updates the patch counts."""
        h = self.question_entropy()
        patched = self.lowest_questions() if self.n_agents else []
        rest, per_q = patch_split(budget, len(patched), self.patch_ratio)
        patches = []
        for q, n in zip(patched, per_q):
            if n <= 0:
                continue
            mixed = self.patch_counts[q] >= self.mix_after
            self.patch_counts[q] += 1
            patches.append({"qid": q, "n": n, "mixed": mixed, "times_patched": self.patch_counts[q]})
        modes = list(self.modes)
        scores = self.mode_scores(modes)
        probs = softmax(scores, self.temperature)
        alloc = self.allocate(rest, modes)
        return {
            "budget": int(budget),
            "entropies": {q: float(x) for q, x in zip(self.qids, h)},
            "mean_entropy": float(h.mean()) if len(h) else 0.0,
            "scores": {m: float(s) for m, s in zip(modes, scores)},
            "probabilities": {m: float(p) for m, p in zip(modes, probs)},
            "allocation": alloc,
            "patches": patches,
        }
