"""End to end: LoRA fine-tuning of the bundled SmolLM2-135M on real OpinionQA subgroup distributions, on CPU.

One fine-tune per module: a `personagen finetune` subprocess is killed with SIGKILL after its first
checkpoint, the run is resumed in-process, then the saved adapter is reloaded through the hf backend."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("torch", reason="the [train] extra (torch) is not installed")
pytest.importorskip("peft", reason="the [train] extra (peft) is not installed")

from personagen.finetune import FinetuneOptions, finetune, open_survey, training_examples  # noqa: E402
from personagen.llm import HFScorer, local_model_reason  # noqa: E402
from personagen.surveys import Survey  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.llm]
REPO = Path(__file__).resolve().parents[1]
STEPS = 3


@pytest.fixture(scope="module")
def tiny_survey(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 ordinal W26 questions answered by the South (real counts -> shares): 4 train, 1 valid question."""
    if local_model_reason():
        pytest.skip(local_model_reason())
    w26 = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not w26.is_dir():
        pytest.skip(f"{w26} not present")
    sv = open_survey(w26)
    qids = [q for q in sv.qids if sv.positions(q)][:5]
    small = Survey(sv.frame.filter(pl.col("qid").is_in(qids) & (pl.col("group") == "South")), source="tiny")
    return small.save(tmp_path_factory.mktemp("survey") / "tiny.parquet")


def _options(survey: Path, out: Path) -> FinetuneOptions:
    return FinetuneOptions(train=(str(survey),), out=str(out), steps=STEPS, batch_size=4, micro_batch=4, lr=5e-3,
                           save_every=1, eval_every=1, valid_fraction=0.2, threads=1,
                           keep_checkpoints=True)


@pytest.fixture(scope="module")
def killed_then_resumed(tiny_survey: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ft") / "run"
    cmd = [sys.executable, "-m", "personagen.cli", "finetune", "--train", str(tiny_survey), "--out", str(out),
           "--steps", str(STEPS), "--batch-size", "4", "--micro-batch", "4", "--lr", "5e-3", "--save-every", "1",
           "--eval-every", "1", "--valid-fraction", "0.2", "--threads", "1", "--keep-checkpoints"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ptr = out / "checkpoint.json"
    deadline = time.time() + 600
    while not ptr.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ptr.is_file(), proc.stderr.read().decode()[-500:]
    killed_at = json.loads(ptr.read_text())["step"]
    res = finetune(_options(tiny_survey, out))
    return out, killed_at, res


def test_kill_then_resume_continues_from_the_checkpoint(killed_then_resumed) -> None:
    out, killed_at, res = killed_then_resumed
    assert 1 <= killed_at < STEPS and res.resumed_from == killed_at
    assert res.steps == STEPS and len(res.train_loss) == STEPS  # history carried over the kill
    for f in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "config.json",
              "losses.json", "loss_curve.png"):
        assert (out / f).is_file(), f
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["rank"], cfg["alpha"], cfg["dropout"], cfg["target_modules"], cfg["weight_decay"]) == \
        (8, 32, 0.05, ["q_proj", "v_proj"], 0.0)
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_training_loss_falls(killed_then_resumed) -> None:
    _, _, res = killed_then_resumed
    # full-batch steps (batch 4 = all 4 training questions): the forward KL must go down
    assert res.train_loss[-1] < res.train_loss[0]


def test_adapter_reloads_to_the_same_predictions(killed_then_resumed, tiny_survey: Path) -> None:
    out, _, res = killed_then_resumed
    _, valid = training_examples([open_survey(tiny_survey)], valid_fraction=0.2)
    assert valid
    scorer = HFScorer(None, out / "adapter", cache_path=out / "llm.sqlite", threads=1)
    preds = scorer.distributions([e.prompt() for e in valid], [len(e.options) for e in valid])
    # eq. 1 by hand on the reloaded model's predictions = the valid loss the trained model logged last
    kl = sum(sum(p * math.log(p / q) for p, q in zip(e.target, d) if p > 0) for e, d in zip(valid, preds)) / len(valid)
    assert kl == pytest.approx(res.valid_loss[-1][1], rel=1e-4, abs=1e-5)
    again = scorer.distributions([e.prompt() for e in valid], [len(e.options) for e in valid])
    assert again == preds and scorer.stats["cache_hits"] == len(valid)  # second call: SQLite cache
    _check_letter_tokens_independently(scorer, valid[0])
    assert "+lora@sha256:" in scorer.identity



def _check_letter_tokens_independently(scorer: HFScorer, e) -> None:
    """eq. 1's p_θ(A_q | q, g), read independently of the code's letter table: tokenise prompt + " A", take the
    token that follows the prompt's own tokens, and softmax the model's last-position logits over those
    tokens, one per option."""
    import torch

    model, tok = scorer._model()
    prompt = e.prompt()
    base = tok(prompt)["input_ids"]
    letters = []
    for letter in "ABCDEFGHIJ"[: len(e.options)]:
        full = tok(prompt + " " + letter)["input_ids"]
        assert full[: len(base)] == base and len(full) == len(base) + 1  # " A" is one token after the prompt
        letters.append(full[-1])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([base])).logits[0, -1]
    expect = torch.softmax(logits[letters].double(), 0).tolist()
    assert scorer.distributions([prompt], [len(e.options)])[0] == pytest.approx(expect, abs=1e-4)


def test_keep_checkpoints_leaves_an_adapter_per_step(killed_then_resumed) -> None:
    out, _, _ = killed_then_resumed  # run with --keep-checkpoints (the killed CLI run and the resumed one)
    steps = sorted(p.name for p in (out / "checkpoints").glob("step-*"))
    assert steps == [f"step-{i:06d}" for i in range(1, STEPS + 1)]
    weights = [(out / "checkpoints" / s / "adapter_model.safetensors").read_bytes() for s in steps]
    assert all((out / "checkpoints" / s / "adapter_config.json").is_file() for s in steps)
    assert len(set(weights)) == STEPS  # a different point of the learning curve at every step
