"""`bench simulate`: a latent-preference simulation in the spirit of the P2P paper's Appendix B.

Agents have latent preference vectors θ_j ~ N(0, I_d); question q's option k has an embedding φ_qk and
agent j answers with softmax_k(β·θ_jᵀφ_qk). The population is a sparse mix of `k_true` agents; its
answer shares on each question are observed with multinomial noise from `respondents` people.
Calibrate on training questions, test on held-out ones. Two sweeps:
- observation-to-agent ratio: training rows / agents, by varying the number of training questions;
- entropy coverage ratio (ECR): mean normalised answer entropy of the agents / that of the target,
  varied through the sharpness β (small β → diffuse agents, ECR ≈ 1; large β → decisive agents).
Reported per sweep point: precision (share of selected agents that are in the true mix), recall,
nonzeros and test MSE, for the sparse (nonnegative lasso, α by CV) and simplex (λ by CV) estimators.
The paper's exact settings were not available here; the sweep values are ours (documented in the output).
"""

from __future__ import annotations

import time

import numpy as np

from personagen.calibrate import fit_weights

Array = np.ndarray


def _entropy(P: Array, groups_k: int) -> Array:
    Q = P.reshape(-1, groups_k, P.shape[-1]) if P.ndim == 2 else P
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(np.where(Q > 0, Q * np.log(Q), 0.0), axis=1) / np.log(groups_k)
    return h


def simulate_problem(agents: int, questions: int, *, options: int = 4, dim: int = 8, beta: float = 1.5,
                     k_true: int = 10, respondents: int = 2000, seed: int = 0) -> dict:
    """One simulated panel: D (rows × agents), r (rows,), groups, true weights, ECR."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((agents, dim))
    phi = rng.standard_normal((questions, options, dim)) / np.sqrt(dim)
    logits = beta * np.einsum("qkd,jd->qkj", phi, theta)
    logits -= logits.max(axis=1, keepdims=True)
    P = np.exp(logits)
    P /= P.sum(axis=1, keepdims=True)  # q × k × j
    w_true = np.zeros(agents)
    idx = rng.choice(agents, k_true, replace=False)
    w_true[idx] = rng.dirichlet(np.ones(k_true))
    pop = np.einsum("qkj,j->qk", P, w_true)
    obs = np.vstack([rng.multinomial(respondents, p / p.sum()) for p in pop]) / respondents
    ecr = float(np.mean(_entropy(P, options)) / max(float(np.mean(_entropy(pop[:, :, None], options))), 1e-12))
    D = P.reshape(questions * options, agents)
    groups = np.repeat([f"q{i}" for i in range(questions)], options)
    return {"D": D, "r": obs.ravel(), "r_true": pop.ravel(), "groups": groups, "w_true": w_true, "ecr": ecr}


def _evaluate(sim: dict, n_train_q: int, options: int, seed: int) -> dict:
    D, r, g, w_true = sim["D"], sim["r"], sim["groups"], sim["w_true"]
    train = np.arange(D.shape[0]) < n_train_q * options
    out = {}
    for method in ("sparse", "simplex"):
        res = fit_weights(D[train], r[train], groups=g[train], method=method, seed=seed)
        w = res.weights
        sel = w > 1e-8
        true = w_true > 0
        out[method] = {
            "precision": float((sel & true).sum() / max(int(sel.sum()), 1)),
            "recall": float((sel & true).sum() / int(true.sum())),
            "nonzeros": int(sel.sum()),
            "test_mse": float(np.mean((D[~train] @ w - r[~train]) ** 2)),
            "param": res.alpha if method == "sparse" else res.lam,
        }
    out["uniform_test_mse"] = float(np.mean((D[~train].mean(axis=1) - r[~train]) ** 2))
    return out


def bench_simulate(agents: int = 200, *, options: int = 4, k_true: int = 10, test_questions: int = 50,
                   ratios: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0),
                   betas: tuple[float, ...] = (0.5, 1.5, 3.0, 6.0), seed: int = 0) -> dict:
    """Run both sweeps; returns a JSON-ready dict (per sweep point: ratio or ECR, per-method metrics)."""
    t0 = time.perf_counter()
    ratio_rows = []
    for ratio in ratios:
        n_train_q = max(2, int(round(ratio * agents / options)))
        sim = simulate_problem(agents, n_train_q + test_questions, options=options, k_true=k_true, seed=seed)
        row = {"obs_to_agent_ratio": n_train_q * options / agents, "train_questions": n_train_q}
        row.update(_evaluate(sim, n_train_q, options, seed))
        ratio_rows.append(row)
    ecr_rows = []
    n_train_q = agents // options
    for beta in betas:
        sim = simulate_problem(agents, n_train_q + test_questions, options=options, k_true=k_true, beta=beta,
                               seed=seed)
        row = {"beta": beta, "ecr": sim["ecr"], "train_questions": n_train_q}
        row.update(_evaluate(sim, n_train_q, options, seed))
        ecr_rows.append(row)
    return {"agents": agents, "options": options, "k_true": k_true, "test_questions": test_questions,
            "seed": seed, "ratio_sweep": ratio_rows, "ecr_sweep": ecr_rows,
            "seconds": time.perf_counter() - t0}
