"""SubPOP training objectives on the option-letter distribution (paper 003).

Both take `logits` (B, K) over the option letters, -inf where a question has fewer than K options, and the
human distributions `target` (B, K), zero-padded. p_θ = softmax(logits) renormalises over the options.

* `forward_kl`: eq. (1), L(θ) = E_{q,g}[ D_KL(p_H || p_θ) ] with D_KL = Σ_a p_H(a) log(p_H(a) / p_θ(a))
  (appendix B); terms with p_H(a) = 0 are 0 (the limit of x log x).
* `wd_loss`: appendix B, the discrete 1-D Wasserstein distance Σ_i |F_{p_H}(i) − F_{p_θ}(i)| between the CDFs,
  taken on the question's ordinal positions (each CDF gap weighted by the distance to the next position) and
  divided by the position range, i.e. the same normalised WD the evaluation reports (metrics.wasserstein).
  Questions without a full ordinal mapping (some option, e.g. "Refused", off the scale) use positions 1..K (a deliberate fallback: the paper's WD needs
  ordinals, and the KL loss is its default for that reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def forward_kl(logits: Any, target: Any) -> Any:
    """Mean over the batch of KL(p_H || softmax(logits)) (eq. 1)."""
    import torch

    logq = torch.log_softmax(logits, dim=-1)
    pos = target > 0
    terms = torch.where(pos, target * (torch.log(target.clamp_min(1e-30)) - logq.masked_fill(~pos, 0.0)),
                        torch.zeros_like(target))
    return terms.sum(-1).mean()


def positions_tensor(ordinals: Sequence[Sequence[float] | None], n_options: Sequence[int], k_max: int) -> Any:
    """(B, K) ordinal positions, 1..K where a question has none; padding repeats the row's maximum."""
    import torch

    rows = []
    for o, k in zip(ordinals, n_options):
        usable = o is not None and all(x == x for x in o)  # NaN: an option outside the scale -> fallback
        pos = [float(x) for x in o] if usable else [float(i + 1) for i in range(k)]
        rows.append(pos + [max(pos)] * (k_max - k))
    return torch.tensor(rows, dtype=torch.float32)


def wd_loss(logits: Any, target: Any, positions: Any) -> Any:
    """Mean over the batch of the normalised 1-D Wasserstein distance between p_H and softmax(logits)."""
    import torch

    p = torch.softmax(logits, dim=-1)
    pos, order = torch.sort(positions, dim=-1, stable=True)
    diff = torch.gather(p - target, -1, order)
    cdf = torch.cumsum(diff, dim=-1)[:, :-1]
    gaps = pos[:, 1:] - pos[:, :-1]
    span = (pos[:, -1] - pos[:, 0]).clamp_min(1e-12)
    return ((cdf.abs() * gaps).sum(-1) / span).mean()


LOSSES = {
    "kl": lambda logits, target, positions: forward_kl(logits, target),
    "wd": wd_loss,
}


def batch_loss(kind: str, logits: Any, target: Any, positions: Any) -> Any:
    """The named objective ("kl", eq. 1, the default; "wd", appendix B) on one batch."""
    return LOSSES[kind](logits, target, positions)
