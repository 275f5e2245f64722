"""How one training step is cut into micro-batches (gradient accumulation to the paper's batch of 256), and the
`reproduce subpop` options that reach the fine-tune; no model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from personagen.finetune import (
    PAPER_GROUPS_22,
    FinetuneOptions,
    micro_batches,
    open_survey,
    training_examples,
)
from personagen.finetune.train import batch_indices


def _train(shared_data: Path) -> list:
    w26 = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not w26.is_dir():
        pytest.skip(f"{w26} not present")
    return training_examples([open_survey(w26)], groups=PAPER_GROUPS_22)[0]


def _padded(train: list, parts: list[list[int]]) -> int:
    """Characters a left-padded forward pass processes: each micro-batch costs len(parts) × its longest prompt."""
    return sum(len(p) * max(len(train[i].prompt("qa")) for i in p) for p in parts)


def test_micro_batches_cover_the_step_once_and_cut_padding(shared_data: Path) -> None:
    train = _train(shared_data)
    for step in (0, 3):
        parts = micro_batches(train, step, 256, 4, seed=0)
        flat = [i for p in parts for i in p]
        assert sorted(flat) == sorted(batch_indices(len(train), step, 256, 0))  # the same 256 examples, once each
        assert [len(p) for p in parts] == [4] * 64
        lengths = [len(train[i].prompt("qa")) for i in flat]
        assert lengths == sorted(lengths)
        # against the unsorted order: the same examples with less padding
        raw = batch_indices(len(train), step, 256, 0)
        assert _padded(train, parts) < 0.9 * _padded(train, [raw[s:s + 4] for s in range(0, 256, 4)])
    assert micro_batches(train, 0, 10, 4, seed=0)[-1].__len__() == 2  # the last micro-batch takes the rest


def test_reproduce_subpop_passes_micro_batch_and_save_every(shared_data: Path) -> None:
    from personagen.reproduce import SubpopOptions

    wave = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not wave.is_dir():
        pytest.skip(f"{wave} not present")
    base = SubpopOptions(train=(str(wave),), eval=str(wave), steps=30, batch_size=256)
    ft = base.finetune_options()
    assert (ft.micro_batch, ft.save_every, ft.batch_size) == (8, 10, 256)  # the former defaults stay
    ft = SubpopOptions(train=(str(wave),), eval=str(wave), steps=30, batch_size=256, micro_batch=4,
                       save_every=1).finetune_options()
    assert isinstance(ft, FinetuneOptions) and (ft.micro_batch, ft.save_every) == (4, 1)


def test_reproduce_subpop_adapter_must_be_an_adapter_folder(shared_data: Path, tmp_path: Path) -> None:
    from personagen.errors import BadInput
    from personagen.reproduce import SubpopOptions

    wave = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not wave.is_dir():
        pytest.skip(f"{wave} not present")
    with pytest.raises(BadInput, match="--adapter"):
        SubpopOptions(train=(str(wave),), eval=str(wave), adapter=str(tmp_path))


def test_train_marginal_by_hand() -> None:
    from personagen.finetune import Example, example_wd, train_marginal

    def ex(target: tuple[float, ...], qid: str = "q") -> Example:
        k = len(target)
        return Example("s", qid, "?", tuple(f"o{i}" for i in range(k)), tuple(float(i) for i in range(k)), "SEX",
                       "Male", target, "train")

    train = [ex((0.2, 0.8)), ex((0.4, 0.6)), ex((1.0, 0.0, 0.0))]
    tests = [ex((0.0, 1.0)), ex((0.5, 0.25, 0.25, 0.0))]
    got = train_marginal(train, tests)
    assert got[0].tolist() == pytest.approx([0.3, 0.7])  # mean of the two 2-option targets
    assert got[1].tolist() == [0.25] * 4  # no 4-option question in training: uniform
    # WD on 2 options, range 1: |F_pred(0) − F_target(0)| = |0.3 − 0| = 0.3
    assert example_wd(tests[:1], got[:1]).tolist() == pytest.approx([0.3])
