"""EM and gradient boosting for system-prompt mixtures, as in paper 001 (Alg. 1, Alg. 2, Appendix A).

Weights (Appendix A.4): min_w W(D_obs, D_gen(Z, w)) s.t. w ≥ 0, Σ w = 1, by SLSQP (scipy), initialised with
normalised uniform-random weights, tol 1e-6. D_gen(Z, w) is the w-weighted mixture of each prompt's n = 10
samples, and W the Wasserstein-1 distance on the line. Exponentiated gradient (`weights="eg"`) is kept as an
option: it is derivative-free of scipy but can stop short of the optimum.

EM (Alg. 1, Appendix A.1):
- line 1: sample K distinct data points of D_obs (K of its points without replacement, so the starting
  targets follow the data's distribution; `em_init="data_points"`, the default) and CraftSystemPrompt one
  prompt for each; `em_init="distinct_values"` draws K of the distinct values uniformly instead (our former
  reading of "distinct": on MobLab dictator data it starts at a mean of 49.5 against the data's 21.5);
- E-step: for each x_i and prompt z_k, d_ik = the Wasserstein distance between the point mass at x_i and
  z_k's samples = mean_s |x_i − y_ks|; p_ik ∝ exp(−d_ik · w_k); a_i ~ Categorical(p_i·);
- M-step: for every prompt with assigned points, sample one assigned x and craft a new z_k towards it
  (a prompt with no assigned point is kept: the paper does not say); then re-fit w by SLSQP;
- stop when the prompts and the weights are unchanged between consecutive iterations, at most 20 iterations.
  Crafting is cached by (component, desired value), so a component that draws the same x again gets the same
  prompt; the weight fit is seeded per run, so identical prompts give identical weights.

GB (Alg. 2, Appendix A.2):
- line 1: Z = {z0} with the scenario's default (fixed) system prompt and w0 = 1;
- lines 2–4: D_gen from the current mixture; the residual r = max(0, p_obs − p_gen) over the answer bins
  (unit bins for integer answers, else 20 equal bins); a bin is drawn with probability ∝ r and x is a data
  point drawn uniformly from D_obs in that bin;
- lines 5–9: craft z_k towards x, append it, re-fit all weights by SLSQP. K = 200 in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personagen.errors import BadInput
from personagen.llm import progress_bar

PAPER_K = {"em": 10, "gb": 200}  # paper 001 §3.1: EM K = 10 (Big Five; 50 for most MobLab games), GB K = 200


def cdf_matrix(samples: list[np.ndarray], target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CDFs of each sample set and of the target on the merged support; (F_k, F_target, interval widths)."""
    grid = np.unique(np.concatenate([target, *[s for s in samples if s.size]]))
    fk = np.stack([np.searchsorted(np.sort(s), grid, side="right") / s.size if s.size else np.zeros(grid.size)
                   for s in samples]) if samples else np.zeros((0, grid.size))
    ft = np.searchsorted(np.sort(target), grid, side="right") / target.size
    return fk[:, :-1], ft[:-1], np.diff(grid)


def wasserstein1(samples: list[np.ndarray], weights: np.ndarray, target: np.ndarray) -> float:
    """W1 = ∫ |F_mix − F_target| dx between the weighted mixture of sample sets and the target sample."""
    fk, ft, dx = cdf_matrix(samples, target)
    if dx.size == 0:
        return 0.0
    return float((dx * np.abs(np.asarray(weights) @ fk - ft)).sum())


def weights_slsqp(samples: list[np.ndarray], target: np.ndarray, seed: int = 0, tol: float = 1e-6
                  ) -> tuple[np.ndarray, float]:
    """Appendix A.4: SLSQP on W1 over the simplex from normalised uniform-random weights (tol 1e-6).
    Prompts without valid samples get weight 0."""
    from scipy.optimize import minimize

    k = len(samples)
    ok = np.array([s.size > 0 for s in samples], dtype=bool)
    if not ok.any():
        return (np.full(k, 1.0 / k) if k else np.zeros(0)), float("nan")
    fk, ft, dx = cdf_matrix([s for s in samples if s.size], target)
    x0 = np.random.default_rng(seed).uniform(size=int(ok.sum()))
    x0 /= x0.sum()

    def loss(w: np.ndarray) -> float:
        return float((dx * np.abs(w @ fk - ft)).sum())

    def grad(w: np.ndarray) -> np.ndarray:
        return fk @ (dx * np.sign(w @ fk - ft))

    res = minimize(loss, x0, jac=grad, method="SLSQP", bounds=[(0.0, 1.0)] * int(ok.sum()), tol=tol,
                   constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
                   options={"maxiter": 500})
    w_ok = np.clip(res.x if loss(res.x) <= loss(x0) else x0, 0.0, None)
    w_ok /= w_ok.sum()
    w = np.zeros(k)
    w[ok] = w_ok
    return w, loss(w_ok)


def weights_eg(samples: list[np.ndarray], target: np.ndarray, seed: int = 0, iters: int = 400
               ) -> tuple[np.ndarray, float]:
    """Exponentiated gradient on the simplex (an option, not the paper's): step 1/√t, best iterate kept."""
    k = len(samples)
    ok = np.array([s.size > 0 for s in samples])
    if not ok.any():
        return (np.full(k, 1.0 / k) if k else np.zeros(0)), float("nan")
    fk, ft, dx = cdf_matrix(samples, target)
    scale = max(dx.sum(), 1e-12)
    w = np.where(ok, 1.0, 0.0) / ok.sum()
    best_w, best = w.copy(), float((dx * np.abs(w @ fk - ft)).sum())
    for t in range(1, iters + 1):
        g = fk @ (dx * np.sign(w @ fk - ft)) / scale
        w = np.where(ok, w * np.exp(-(g - g[ok].min()) / np.sqrt(t)), 0.0)
        w /= w.sum()
        loss = float((dx * np.abs(w @ fk - ft)).sum())
        if loss < best - 1e-15:
            best, best_w = loss, w.copy()
    return best_w, best


WEIGHT_FITS: dict[str, Callable[..., tuple[np.ndarray, float]]] = {"slsqp": weights_slsqp, "eg": weights_eg}


EM_INITS = ("data_points", "distinct_values")


def em_start(target: np.ndarray, k: int, how: str, rng: np.random.Generator) -> list[float]:
    """Alg. 1 line 1 (Appendix A.1): the K desired values the first prompts are crafted towards."""
    if how == "distinct_values":
        support = np.unique(target)
        return [float(x) for x in rng.choice(support, size=min(k, support.size), replace=False)]
    return [float(target[i]) for i in rng.choice(target.size, size=min(k, target.size), replace=False)]


@dataclass(frozen=True)
class MixtureOptions:
    """Options of one mixture search (defaults as paper 001; `components=None` = the paper's K per method)."""

    method: str = "em"
    components: int | None = None
    samples: int = 10
    max_iters: int = 20
    weights: str = "slsqp"
    improve_rounds: int = 1
    seed: int = 0
    em_init: str = "data_points"

    def __post_init__(self) -> None:  # messages start with the Python argument (BadInput.field)
        for name, allowed in (("em_init", EM_INITS), ("method", ALGORITHMS), ("weights", WEIGHT_FITS)):
            if getattr(self, name) not in allowed:
                raise BadInput(f"{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}", field=name)
        for name in ("samples", "max_iters"):
            if getattr(self, name) < 1:
                raise BadInput(f"{name}: must be at least 1", field=name)
        if self.components is not None and self.components < 1:
            raise BadInput("components: must be at least 1", field="components")
        if self.improve_rounds < 0:
            raise BadInput("improve_rounds: must be >= 0", field="improve_rounds")

    @property
    def k(self) -> int:
        return self.components or PAPER_K[self.method]


@dataclass
class MixtureResult:
    """A learned mixture: prompts z_k, their samples, weights w_k, the train W1 and the search history."""

    prompts: list[str]
    samples: list[np.ndarray]
    weights: np.ndarray
    w1: float
    aims: list[float | None]
    history: list[dict] = field(default_factory=list)
    converged: bool = False


def point_distances(target: np.ndarray, samples: list[np.ndarray]) -> np.ndarray:
    """d_ik = mean_s |x_i − y_ks| (W1 between δ_{x_i} and z_k's samples); +inf for prompts without samples."""
    d = np.full((target.size, len(samples)), np.inf)
    for k, s in enumerate(samples):
        if s.size:
            d[:, k] = np.abs(target[:, None] - s[None, :]).mean(axis=1)
    return d


def e_step(target: np.ndarray, samples: list[np.ndarray], w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Alg. 1 E-step: p_ik ∝ exp(−d_ik · w_k), a_i ~ Categorical(p_i·); returns the assignments a."""
    logits = -point_distances(target, samples) * np.asarray(w)[None, :]
    logits = np.where(np.isfinite(logits), logits, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.uniform(size=(target.size, 1))
    return np.minimum((p.cumsum(axis=1) < u).sum(axis=1), len(samples) - 1)


def em(prim: Any, target: np.ndarray, opts: MixtureOptions) -> MixtureResult:
    """Alg. 1 (see module docstring); `prim` supplies CraftSystemPrompt and GenerateSamples."""
    rng = np.random.default_rng(opts.seed)
    aims = em_start(target, opts.k, opts.em_init, rng)
    prompts, smp = prim.craft_system_prompt(aims, list(range(len(aims))), opts.samples, opts.improve_rounds)
    fit = WEIGHT_FITS[opts.weights]
    w, loss = fit(smp, target, seed=opts.seed)
    res = MixtureResult(prompts, smp, w, loss, list(aims))
    with progress_bar(opts.max_iters, "mixture em", True, unit="iter") as bar:  # also between calls
        for it in range(opts.max_iters):
            a = e_step(target, res.samples, res.weights, rng)
            new_aims = list(res.aims)
            for k in range(len(res.prompts)):
                assigned = target[a == k]
                if assigned.size:
                    new_aims[k] = float(rng.choice(assigned))
            changed = [k for k in range(len(res.prompts)) if new_aims[k] != res.aims[k]]
            prompts, smp = list(res.prompts), list(res.samples)
            if changed:
                got_p, got_s = prim.craft_system_prompt([new_aims[k] for k in changed], changed, opts.samples,
                                                        opts.improve_rounds)
                for k, p, s in zip(changed, got_p, got_s):
                    prompts[k], smp[k] = p, s
            w, loss = fit(smp, target, seed=opts.seed)
            same = prompts == res.prompts and np.allclose(w, res.weights, atol=1e-9)
            res = MixtureResult(prompts, smp, w, loss, new_aims, res.history, converged=same)
            res.history.append({"iter": it, "w1": loss, "weights": w.round(6).tolist(), "recrafted": len(changed),
                                "assigned": np.bincount(a, minlength=len(prompts)).tolist()})
            bar.update(1)
            if same:
                break
    return res


def residual_target(target: np.ndarray, samples: list[np.ndarray], w: np.ndarray, lo: float, hi: float,
                    rng: np.random.Generator) -> float:
    """Alg. 2 lines 2–4: r = max(0, p_obs − p_gen) per bin; a bin ∝ r, then a data point of D_obs in that bin."""
    integral = np.all(np.mod(target, 1) == 0) and hi - lo <= 200
    edges = np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.0) if integral else np.linspace(lo, hi, 21)
    p_obs = np.histogram(np.clip(target, lo, hi), bins=edges)[0] / target.size
    p_gen = sum(wk * np.histogram(np.clip(s, lo, hi), bins=edges)[0] / s.size
                for wk, s in zip(w, samples) if s.size) if any(s.size for s in samples) else np.zeros_like(p_obs)
    r = np.maximum(p_obs - p_gen, 0.0)
    r = r if r.sum() > 0 else p_obs
    b = int(rng.choice(r.size, p=r / r.sum()))
    hit = np.clip(target, lo, hi)
    in_bin = target[(hit >= edges[b]) & (hit < edges[b + 1]) if b < r.size - 1 else (hit >= edges[b])]
    return float(rng.choice(in_bin)) if in_bin.size else float((edges[b] + edges[b + 1]) / 2)


def gb(prim: Any, target: np.ndarray, opts: MixtureOptions) -> MixtureResult:
    """Alg. 2 (see module docstring)."""
    rng = np.random.default_rng(opts.seed)
    z0 = prim.default_prompt()
    res = MixtureResult([z0], prim.samples([z0], opts.samples), np.ones(1), float("nan"), [None])
    res.w1 = wasserstein1(res.samples, res.weights, target)
    fit = WEIGHT_FITS[opts.weights]
    with progress_bar(opts.k, "mixture gb", True, unit="prompt") as bar:  # also between model calls
        for k in range(1, opts.k + 1):
            x = residual_target(target, res.samples, res.weights, prim.lo, prim.hi, rng)
            [p], [s] = prim.craft_system_prompt([x], [k], opts.samples, opts.improve_rounds)
            res.prompts.append(p)
            res.samples.append(s)
            res.aims.append(x)
            res.weights, res.w1 = fit(res.samples, target, seed=opts.seed + k)
            res.history.append({"iter": k, "aim": x, "w1": res.w1, "nonzeros": int((res.weights > 1e-9).sum())})
            bar.update(1)
    return res


ALGORITHMS: dict[str, Callable[[Any, np.ndarray, MixtureOptions], MixtureResult]] = {"em": em, "gb": gb}


def run_search(prim: Any, target: np.ndarray, opts: MixtureOptions) -> MixtureResult:
    """Dispatch to the registered algorithm."""
    return ALGORITHMS[opts.method](prim, np.asarray(target, dtype=float), opts)
