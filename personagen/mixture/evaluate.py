"""Evaluation of a learned prompt mixture as in paper 001, §3.1 "Evaluation" and Appendix B.2.

- Ours: draw `draws` (paper: 1,000) system prompts from {z_k} with probabilities {w_k}; each drawn prompt
  generates one sample; D_gen is compared with D_obs by the Wasserstein distance (on the raw answer scale).
- 1,000 Human Samples: `draws` responses drawn uniformly without replacement from D_obs (the "upper bound").
- Fixed System Prompt: `draws` samples under the scenario's fixed prompt (the lower-bound baseline).
- Persona Hub: `draws` persona strings sampled uniformly without replacement, used as system prompts.
The fine-tuned Llama, OASIS and Modular Pluralism baselines need fine-tuned or external models and are not
run; their published numbers are printed beside ours by `personagen reproduce promptmix`.
Evaluation samples use their own request seeds (salt "eval"), so they never reuse the search's samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personagen.errors import BadInput
from personagen.mixture.algorithms import MixtureResult, wasserstein1


@dataclass(frozen=True)
class EvalOptions:
    """How many draws (paper: 1,000) and which baselines to run."""

    draws: int = 1000
    seed: int = 0
    baselines: tuple[str, ...] = ("human", "fixed", "personahub")

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise BadInput("draws: must be at least 1")
        bad = [b for b in self.baselines if b not in ("human", "fixed", "personahub")]
        if bad:
            raise BadInput(f"baselines: unknown {', '.join(bad)} (human, fixed, personahub)")


def _row(gen: np.ndarray, observed: np.ndarray) -> dict:
    if gen.size == 0:
        return {"w1": None, "mean": None, "sd": None, "n": 0}
    return {"w1": wasserstein1([gen], np.ones(1), observed), "mean": float(gen.mean()), "sd": float(gen.std()),
            "n": int(gen.size)}


def mixture_draws(prim: object, res: MixtureResult, draws: int, rng: np.random.Generator) -> np.ndarray:
    """D_gen of the mixture: `draws` prompts drawn by weight, one sample each (grouped into one batch)."""
    w = np.asarray(res.weights, dtype=float)
    counts = np.bincount(rng.choice(len(w), size=draws, p=w / w.sum()), minlength=len(w))
    keep = [k for k in range(len(w)) if counts[k]]
    got = prim.samples([res.prompts[k] for k in keep], [int(counts[k]) for k in keep], salt="eval")
    return np.concatenate(got) if got else np.zeros(0)


def evaluate_mixture(prim: object, res: MixtureResult, observed: np.ndarray, opts: EvalOptions,
                     personas: list[str] | None = None) -> dict[str, dict]:
    """Rows {name: {w1, mean, sd, n}} for the mixture, D_obs itself and the baselines (see module docstring)."""
    rng = np.random.default_rng(opts.seed)
    rows = {"Observed data D_obs": {"w1": 0.0, "mean": float(observed.mean()), "sd": float(observed.std()),
                                    "n": int(observed.size)}}
    if "human" in opts.baselines:
        rows["1,000 Human Samples"] = _row(rng.choice(observed, size=min(opts.draws, observed.size), replace=False),
                                           observed)
    if "fixed" in opts.baselines:
        [fixed] = prim.samples([prim.default_prompt()], opts.draws, salt="eval-fixed")
        rows["Fixed System Prompt"] = _row(fixed, observed)
    if "personahub" in opts.baselines and personas:
        pick = rng.choice(len(personas), size=min(opts.draws, len(personas)), replace=False)
        got = prim.samples([personas[i] for i in pick], 1, salt="eval-personahub")
        rows["Persona Hub"] = _row(np.concatenate(got) if got else np.zeros(0), observed)
    rows["Ours"] = _row(mixture_draws(prim, res, opts.draws, rng), observed)
    return rows
