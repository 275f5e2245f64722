"""How stable the prediction interval's coverage is for a given number of held-out questions (the basis of
MIN_HELDOUT_QUESTIONS and of calibrate's small-held-out caveat; docs/estimate.md reports the output).

In the latent-preference world of benchmarks/estimate_coverage.py, each of `worlds` draws new questions, model
biases, targets and a pool (400 personas, 40 train questions, λ fixed at 0.0046, the median CV choice there),
forms q̂ from H held-out questions (split conformal at 0.90) and measures its coverage of the true human shares
on 40 new questions. Printed per H: the mean, SD, 10th percentile and minimum of that coverage over the worlds:
what one calibration's interval may actually deliver.

Usage: .venv/bin/python benchmarks/conformal_heldout.py [--worlds 16] [--heldout 5,10,20]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from estimate_coverage import _softmax, world

from personagen.calibrate import conformal_halfwidth, fit_weights


def coverage(h: int, seed: int) -> float:
    """Coverage of the new questions' true shares by estimate ± q̂ (q̂ from h held-out questions) in one world."""
    a = argparse.Namespace(train=40, heldout=h, new=40, options=4, dim=4, respondents=2000, tau=0.3, beta=1.5,
                           shift=0.5, personas=400)
    rng = np.random.default_rng(100 + seed)
    w = world(a, rng)
    theta = rng.standard_normal((a.personas, a.dim))
    logits = a.beta * np.einsum("qkd,jd->qkj", w["phi"], theta) + w["delta"][:, :, None]
    D = _softmax(logits.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(-1, a.personas)
    k, tr = a.options, a.train
    est = D @ fit_weights(D[:tr * k], w["target"][:tr].ravel(), lam=0.0046).weights
    q = conformal_halfwidth(np.abs(est[tr * k:(tr + h) * k] - w["target"][tr:tr + h].ravel()), 0.9)
    new = slice((tr + h) * k, None)
    return float(np.mean(np.abs(est[new] - w["truth"][tr + h:].ravel()) <= q)) if q is not None else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worlds", type=int, default=16)
    ap.add_argument("--heldout", default="5,10,20")
    args = ap.parse_args()
    out = {}
    for h in (int(x) for x in args.heldout.split(",")):
        c = np.array([coverage(h, s) for s in range(args.worlds)])
        out[h] = {"worlds": len(c), "mean": round(float(np.nanmean(c)), 3), "sd": round(float(np.nanstd(c, ddof=1)), 3),
                  "p10": round(float(np.nanquantile(c, 0.1)), 3), "min": round(float(np.nanmin(c)), 3)}
        print(h, out[h], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
