"""SubPOP on CPU: does LoRA fine-tuning SmolLM2-135M on OpinionQA subgroup distributions from some waves lower
the mean WD on held-out questions of *other* waves, against the same model's zero-shot (QA-steered) answers?

Prints the uniform upper bound, the human lower bound (respondent bootstrap on the waves' counts), zero-shot
QA, fine-tuned, the relative improvement, and the seconds per training step. Sized to finish in about 15
minutes on 2 CPU cores. Deliberate differences from the paper (sec. 4, appendix B), for CPU: batch 4 instead
of 256, a few dozen steps, and lr 1e-3 instead of 2e-4 (a 135M model and a few hundred examples seen; the
paper's rate moves the adapter too little in so few steps). Everything else is the paper's: LoRA r 8, alpha
32, dropout 0.05 on q/v projections, AdamW wd 0, forward KL on the first-token option-letter distribution.

    python benchmarks/finetune.py [--train-waves W26,W29] [--eval-wave W82] [--steps 16] [--batch-size 4]
                                  [--max-questions 6] [--groups ...] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OQA = REPO.parent / "shared" / "data" / "opinionqa" / "human_resp"
GROUPS = "Northeast,South,Male,Female,Democrat,Republican,Liberal,Conservative"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-waves", default="W26,W29")
    ap.add_argument("--eval-wave", default="W82")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-questions", type=int, default=6)
    ap.add_argument("--groups", default=GROUPS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="Output folder (default: a temp folder); reruns resume/cache.")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from personagen.llm import local_model_reason
    from personagen.reproduce import SubpopOptions, reproduce_subpop

    reason = local_model_reason()
    if reason:
        sys.exit(f"skipped: {reason}")
    waves = [OQA / f"American_Trends_Panel_{w.strip()}" for w in a.train_waves.split(",")]
    ev = OQA / f"American_Trends_Panel_{a.eval_wave}"
    for p in [*waves, ev]:
        if not p.is_dir():
            sys.exit(f"skipped: {p} not present")
    out = Path(a.out or tempfile.mkdtemp(prefix="bench-finetune-"))
    opts = SubpopOptions(train=tuple(map(str, waves)), eval=str(ev), out=str(out), steps=a.steps,
                         batch_size=a.batch_size, lr=a.lr, max_questions=a.max_questions,
                         groups=tuple(g.strip() for g in a.groups.split(",")), baselines=("zero_shot_qa",),
                         threads=a.threads)
    t0 = time.perf_counter()
    res = reproduce_subpop(opts, progress=lambda m: print(m, file=sys.stderr, flush=True))
    losses = json.loads((out / "finetune" / "losses.json").read_text())["history"]
    steps_s = json.loads((out / "finetune" / "config.json").read_text())
    wd = res.wd
    rel = (wd["zero_shot_qa"] - wd["fine_tuned"]) / (wd["zero_shot_qa"] - wd["human_bound"])
    summary = {"train_waves": a.train_waves, "eval_wave": a.eval_wave, "questions": res.n_questions,
               "pairs": res.n_examples, "n_train_examples": steps_s["n_train"], "steps": a.steps,
               "batch_size": a.batch_size, "wd": wd, "relative_improvement": rel,
               "train_loss_first": losses[0]["train"], "train_loss_last": losses[-1]["train"],
               "valid_loss_first": next(h["valid"] for h in losses if "valid" in h),
               "valid_loss_last": losses[-1].get("valid"), "seconds": time.perf_counter() - t0,
               "seconds_per_step": _seconds_per_step(out)}
    print(f"OpinionQA {a.eval_wave} held out ({res.n_questions} questions x {len(opts.groups)} groups); "
          f"fine-tuned on {a.train_waves} ({steps_s['n_train']} pairs), {a.steps} steps of {a.batch_size}")
    for k in ("uniform", "human_bound", "zero_shot_qa", "fine_tuned"):
        print(f"  mean WD {k:13s} {wd[k]:.4f}")
    print(f"  fine-tuned / zero-shot WD ratio {wd['fine_tuned'] / wd['zero_shot_qa']:.3f}; "
          f"relative improvement {rel:.3f}")
    print(f"  train KL {summary['train_loss_first']:.4f} -> {summary['train_loss_last']:.4f}; "
          f"valid KL {summary['valid_loss_first']:.4f} -> {summary['valid_loss_last']:.4f}")
    print(f"  {summary['seconds_per_step']:.1f} s per training step; {summary['seconds']:.0f} s in all")
    if a.json:
        print(json.dumps(summary))


def _seconds_per_step(out: Path) -> float:
    """From the run's timestamps: the fine-tune records seconds per step in its result; re-read losses.json."""
    p = out / "finetune" / "timing.json"
    return json.loads(p.read_text())["seconds_per_step"] if p.is_file() else float("nan")


if __name__ == "__main__":
    main()
