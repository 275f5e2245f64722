"""The SubPOP objectives against values computed by hand from eq. (1) and appendix B (needs torch)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")

from personagen.finetune import forward_kl, wd_loss  # noqa: E402


def test_forward_kl_by_hand() -> None:
    # row 1: p_H = (.5, .5, 0), p_θ = (.25, .25, .5): .5 ln(.5/.25) + .5 ln(.5/.25) + 0 = ln 2
    # row 2 (two options, padded): p_H = (1, 0), logits (0, 0) -> p_θ = (.5, .5): 1 ln(1/.5) = ln 2
    logits = torch.tensor([[math.log(.25), math.log(.25), math.log(.5)], [0.0, 0.0, float("-inf")]])
    target = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert float(forward_kl(logits, target)) == pytest.approx(math.log(2), rel=1e-6)
    # identical distributions: 0
    assert float(forward_kl(torch.log(target[:1] + 1e-12).clamp_min(-50), target[:1])) == pytest.approx(0, abs=1e-6)


def test_forward_kl_has_gradients_only_through_the_model() -> None:
    logits = torch.zeros(1, 3, requires_grad=True)
    forward_kl(logits, torch.tensor([[1.0, 0.0, 0.0]])).backward()
    # d/dz of -log softmax_0 = softmax - onehot = (1/3 - 1, 1/3, 1/3)
    assert logits.grad.tolist()[0] == pytest.approx([-2 / 3, 1 / 3, 1 / 3])


def test_wd_loss_by_hand() -> None:
    uniform = torch.zeros(2, 3)
    target = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # positions 1,2,3: F_H = (1, 1), F_θ = (1/3, 2/3): (2/3 + 1/3) * gap 1 / range 2 = 0.5
    # positions 1,2,4: (2/3 * 1 + 1/3 * 2) / range 3 = (4/3) / 3 = 0.4444
    pos = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0]])
    assert float(wd_loss(uniform[:1], target[:1], pos[:1])) == pytest.approx(0.5)
    assert float(wd_loss(uniform[1:], target[1:], pos[1:])) == pytest.approx(4 / 9)
    assert float(wd_loss(uniform, target, pos)) == pytest.approx((0.5 + 4 / 9) / 2)
    # unsorted positions are sorted with their mass: reversed order gives the same distance
    assert float(wd_loss(uniform[:1], torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[3.0, 2.0, 1.0]]))) \
        == pytest.approx(0.5)
