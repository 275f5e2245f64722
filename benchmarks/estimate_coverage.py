"""Coverage of `estimate`'s two intervals where the truth is known (docs/estimate.md reports the output).

A latent-preference world (as `bench simulate`, P2P Appendix B): persona j has θ_j ∈ R^d, question q's option
k an embedding φ_qk, and people answer softmax_k(β θᵀφ_qk). Humans have θ ~ N(μ, I); the persona pool is drawn
from N(0, I) (a biased pool), and the model answering as persona j adds a per-question bias δ_qk ~ N(0, τ²)
(the model is not the population: the proxy error no reweighting removes). True human shares come from 200k
simulated people; survey targets add multinomial noise of `respondents` people.

Each of S replications draws a new pool, calibrates (simplex, λ by CV) on the train questions, makes R half-sample
replicate weights at the chosen λ (the code `calibrate --replicates R` runs), and estimates the held-out and the
new questions. Reported over the new questions' (question, option) rows:
- sampling interval (estimate ± z·se) coverage of the panel's own expected estimate (mean over replications:
  what replicate weights can promise) and of the true human share (what they cannot: proxy error);
- prediction interval (split conformal on the held-out questions' absolute errors) coverage of the true
  human share;
- mean SE / empirical SD of the estimates across replications (1 = replicate SEs are right).

Usage: .venv/bin/python benchmarks/estimate_coverage.py [--reps S] [--replicates R] [--tau 0.3] [--level 0.9]
       [--replicate-cv]   (re-choose λ by CV inside every replicate instead of fixing it: the cost of the
                           penalty's selection variance, measured)
       [--lam X]          (fit every pool at λ = X, no CV: the coverage conditional on the penalty)
       [--replicate-method bootstrap]  (the with-replacement bootstrap at the chosen λ instead of half-samples)
"""

from __future__ import annotations

import argparse
import json
import time
from statistics import NormalDist
from types import SimpleNamespace

import numpy as np

from personagen.calibrate import conformal_halfwidth, fit_weights
from personagen.calibrate.replicates import bootstrap_variance, half_sample_replicates


def world(args: argparse.Namespace, rng: np.random.Generator) -> dict:
    """Question embeddings, model biases, true human shares and noisy survey targets."""
    nq = args.train + args.heldout + args.new
    phi = rng.standard_normal((nq, args.options, args.dim)) / np.sqrt(args.dim)
    delta = args.tau * rng.standard_normal((nq, args.options))
    people = rng.standard_normal((200_000, args.dim)) + args.shift
    truth = np.stack([_softmax(args.beta * people @ phi[q].T).mean(axis=0) for q in range(nq)])
    target = np.stack([rng.multinomial(args.respondents, t) / args.respondents for t in truth])
    return {"phi": phi, "delta": delta, "truth": truth, "target": target}


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _bootstrap(n: int, reps: int, seed: int, refit) -> SimpleNamespace:  # noqa: ANN001
    """With-replacement bootstrap replicates (what calibrate made before the half-samples): per-persona sums."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    out = np.zeros((n, reps))
    for b in range(reps):
        idx = np.sort(rng.integers(0, n, n))
        col = np.bincount(idx, weights=np.asarray(refit(idx), dtype=float), minlength=n)
        out[:, b] = col / col.sum()
    return SimpleNamespace(weights=out)


def one_panel(w: dict, args: argparse.Namespace, seed: int) -> dict:
    """Calibrate one pool and estimate every question with replicate SEs and the conformal half-width."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((args.personas, args.dim))
    logits = args.beta * np.einsum("qkd,jd->qkj", w["phi"], theta) + w["delta"][:, :, None]
    P = _softmax(logits.transpose(0, 2, 1)).transpose(0, 2, 1)  # q × k × j
    D = P.reshape(-1, args.personas)
    k = args.options
    tr = slice(0, args.train * k)
    groups = np.repeat(np.arange(args.train), k).astype(str)
    if args.lam is None:  # what calibrate does: λ by CV on this pool
        res = fit_weights(D[tr], w["target"][:args.train].ravel(), groups=groups, seed=seed)
    else:  # every pool at one λ: the sampling interval's coverage without the variation of λ's choice
        res = fit_weights(D[tr], w["target"][:args.train].ravel(), lam=args.lam)
    r_tr = w["target"][:args.train].ravel()
    if args.replicate_method == "bootstrap":  # the earlier method, for comparison: n draws with replacement
        reps = _bootstrap(args.personas, args.replicates, seed,
                          lambda idx: fit_weights(D[tr][:, idx], r_tr, lam=res.lam).weights)
    elif args.replicate_cv:  # λ chosen again by CV inside every replicate (its selection variance included)
        reps = half_sample_replicates(args.personas, args.replicates, seed, lambda idx: fit_weights(
            D[tr][:, idx], r_tr, groups=groups, seed=seed).weights, full=res.weights, penalty="cv")
    else:  # what calibrate does: λ fixed at the main fit's choice
        reps = half_sample_replicates(args.personas, args.replicates, seed,
                                      lambda idx: fit_weights(D[tr][:, idx], r_tr, lam=res.lam).weights, full=res.weights)
    est = D @ res.weights
    se = np.sqrt(bootstrap_variance(D @ reps.weights))
    ho = slice(args.train * k, (args.train + args.heldout) * k)
    hw = conformal_halfwidth(np.abs(est[ho] - w["target"][args.train:args.train + args.heldout].ravel()), args.level)
    return {"est": est, "se": se, "hw": hw, "lam": res.lam, "ess": res.ess}


def _coverage(name: str, hit: np.ndarray) -> dict[str, float]:
    """Coverage over replications × rows and its Monte-Carlo SE (replications independent, rows within one not):
    the SD of the per-replication coverages / √S."""
    per = hit.mean(axis=1)
    return {name: float(hit.mean()), f"{name}_mcse": float(per.std(ddof=1) / np.sqrt(len(per)))}


def main() -> None:
    ap = argparse.ArgumentParser()
    for name, default in (("reps", 100), ("replicates", 40), ("personas", 400), ("train", 40), ("heldout", 20),
                          ("new", 40), ("options", 4), ("dim", 4), ("respondents", 2000), ("seed", 0)):
        ap.add_argument(f"--{name}", type=int, default=default)
    for name, default in (("tau", 0.3), ("beta", 1.5), ("shift", 0.5), ("level", 0.9)):
        ap.add_argument(f"--{name}", type=float, default=default)
    ap.add_argument("--replicate-cv", action="store_true", help="re-choose λ by CV in every replicate")
    ap.add_argument("--replicate-method", default="half", choices=("half", "bootstrap"),
                    help="half-samples (what calibrate does) or the with-replacement bootstrap, for comparison")
    ap.add_argument("--lam", type=float, default=None, help="fit every pool at this λ instead of choosing it by CV")
    args = ap.parse_args()
    t0 = time.process_time()
    w = world(args, np.random.default_rng(args.seed))
    runs = [one_panel(w, args, args.seed + 1 + s) for s in range(args.reps)]
    z = NormalDist().inv_cdf(0.5 + args.level / 2)
    new = slice((args.train + args.heldout) * args.options, None)
    est = np.stack([r["est"][new] for r in runs])
    se = np.stack([r["se"][new] for r in runs])
    hw = np.array([np.nan if r["hw"] is None else r["hw"] for r in runs])
    truth = w["truth"][args.train + args.heldout:].ravel()
    expected = est.mean(axis=0)
    out = {"settings": vars(args), "cpu_seconds": round(time.process_time() - t0, 1),
           **_coverage("sampling_covers_expected_estimate", np.abs(est - expected) <= z * se),
           **_coverage("sampling_covers_human_truth", np.abs(est - truth) <= z * se),
           **_coverage("prediction_covers_human_truth", np.abs(est - truth) <= hw[:, None]),
           "mean_se_over_empirical_sd": float(np.mean(se.mean(axis=0) / est.std(axis=0, ddof=1))),
           "mean_se": float(se.mean()), "mean_prediction_halfwidth": float(np.nanmean(hw)),
           "mean_abs_error_vs_truth": float(np.mean(np.abs(est - truth))),
           "median_lambda": float(np.median([r["lam"] for r in runs])),
           "median_ess": float(np.median([r["ess"] for r in runs]))}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
