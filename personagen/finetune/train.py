"""`personagen finetune`: LoRA fine-tuning of a causal LM on subgroup answer distributions (SubPOP, paper 003).

Defaults follow the paper (sec. 3.1, appendix B "Experiment Details"): LoRA rank 8, alpha 32, dropout 0.05 on
the query and value projections, LoRA A initialised N(0, 0.02²) (B = 0, so training starts from the base
model), AdamW with weight decay 0, learning rate 2e-4 and batch size 256 (their Llama-2-7B / Mistral-7B
choice), forward-KL loss (eq. 1) on the first-token option-letter distribution of the QA-steered prompt
(Fig. 14); the WD loss of appendix B is `loss="wd"`. The batch of 256 is accumulated over micro-batches of
`micro_batch` prompts (same gradient, bounded memory). On CPU use a smaller --batch-size; that is the one
deliberate difference in the benchmarks, said where it is used.

Resumable: every `save_every` steps the adapter, optimizer and loss history go to `checkpoints/step-N/`
(written to a temp folder, then renamed) and `checkpoint.json` is replaced atomically; a rerun with the
same options continues from there, with the same batches and dropout seeds as an uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from personagen.errors import BadInput
from personagen.finetune.data import PAPER_GROUPS_22, Example, open_survey, training_examples
from personagen.finetune.losses import LOSSES, batch_loss, positions_tensor
from personagen.llm import load_causal_lm, option_logits, progress_bar, resolve_model, train_available
from personagen.store import atomic_write_json

# fields that must match for a rerun to resume an existing output folder
_RUN_KEYS = ("train", "model", "loss", "lr", "batch_size", "rank", "alpha", "dropout", "target_modules",
             "weight_decay", "valid_fraction", "seed", "max_length", "groups")


@dataclass(frozen=True)
class FinetuneOptions:
    """Everything `finetune` needs; validated here once (BadInput names the field)."""

    train: tuple[str, ...]
    out: str
    model: str | None = None
    steps: int = 100
    loss: str = "kl"
    lr: float = 2e-4
    batch_size: int = 256
    micro_batch: int = 8
    rank: int = 8
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    weight_decay: float = 0.0
    save_every: int = 10
    eval_every: int = 10
    valid_fraction: float = 0.1
    max_valid: int = 256
    seed: int = 0
    max_length: int = 512
    threads: int | None = None
    groups: tuple[str, ...] | None = PAPER_GROUPS_22  # Table 3; None: every group of the training surveys
    keep_checkpoints: bool = False  # keep every checkpoints/step-N (evaluate a learning curve); else the last

    def __post_init__(self) -> None:
        if self.groups is not None and not self.groups:
            raise BadInput("--groups: give at least one group label, or 'all'")
        if not self.train:
            raise BadInput("--train: give at least one survey")
        for p in self.train:
            if not Path(p).exists():
                raise BadInput(f"--train {p}: does not exist")
        if self.loss not in LOSSES:
            raise BadInput(f"--loss {self.loss!r}: expected one of {', '.join(LOSSES)}")
        for name in ("steps", "batch_size", "micro_batch", "rank", "alpha", "save_every", "eval_every",
                     "max_length", "max_valid"):
            if int(getattr(self, name)) < 1:
                raise BadInput(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if not self.lr > 0:
            raise BadInput(f"--lr {self.lr}: must be positive")
        if not 0 <= self.dropout < 1:
            raise BadInput(f"--dropout {self.dropout}: must be in [0, 1)")
        if self.weight_decay < 0:
            raise BadInput(f"--weight-decay {self.weight_decay}: must be >= 0")
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise BadInput(f"--out {self.out}: exists and is not a folder")

    def run_config(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = [str(Path(p).resolve()) for p in self.train]
        d["target_modules"] = list(self.target_modules)
        d["groups"] = list(self.groups) if self.groups is not None else None
        return d


@dataclass
class FinetuneResult:
    """What a run produced: the adapter folder, the losses and timings."""

    out: Path
    adapter: Path
    steps: int
    resumed_from: int
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[tuple[int, float]] = field(default_factory=list)
    seconds_per_step: float = 0.0
    n_train: int = 0
    n_valid: int = 0


@dataclass
class _State:
    model: Any
    tok: Any
    optimizer: Any
    step: int = 0
    history: list[dict] = field(default_factory=list)


def batch_indices(n: int, step: int, batch_size: int, seed: int) -> list[int]:
    """Example indices of one step: walk seeded per-epoch permutations (deterministic, so resumable)."""
    out = []
    perms: dict[int, np.ndarray] = {}
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch = pos // n
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perms[epoch][pos % n]))
    return out


def micro_batches(train: list[Example], step: int, batch_size: int, micro_batch: int, seed: int) -> list[list[int]]:
    """One step's examples (`batch_indices`) in micro-batches of similar prompt length: the accumulated gradient
    is the same sum over the step's examples, with less padding (a padded position costs as much as a real
    token; on 10 OpinionQA waves at micro-batch 4, 14% padding against 22% in random order)."""
    idx = sorted(batch_indices(len(train), step, batch_size, seed), key=lambda i: len(train[i].prompt("qa")))
    return [idx[s:s + micro_batch] for s in range(0, len(idx), micro_batch)]


def example_loss(model: Any, tok: Any, exs: list[Example], kind: str, max_length: int) -> Any:
    """The objective on a list of examples (QA-steered prompts, first-token option letters)."""
    import torch

    ks = [len(e.options) for e in exs]
    k_max = max(ks)
    logits = option_logits(model, tok, [e.prompt("qa") for e in exs], ks, max_length=max_length)
    target = torch.tensor([list(e.target) + [0.0] * (k_max - len(e.target)) for e in exs],
                          dtype=torch.float32, device=logits.device)
    pos = positions_tensor([e.ordinal for e in exs], ks, k_max).to(logits.device)
    return batch_loss(kind, logits.float(), target, pos)


def _new_state(opts: FinetuneOptions) -> _State:
    import torch
    from peft import LoraConfig, get_peft_model

    base, tok = load_causal_lm(resolve_model(opts.model), trainable=True, threads=opts.threads)
    cfg = LoraConfig(r=opts.rank, lora_alpha=opts.alpha, lora_dropout=opts.dropout,
                     target_modules=list(opts.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        model = get_peft_model(base, cfg)
    except ValueError as e:
        raise BadInput(f"--target-modules {','.join(opts.target_modules)}: {str(e)[:160]}") from None
    torch.manual_seed(opts.seed)
    for name, p in model.named_parameters():
        if "lora_A" in name:
            torch.nn.init.normal_(p, mean=0.0, std=0.02)  # appendix B: LoRA init N(0, 0.02)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opts.lr,
                              weight_decay=opts.weight_decay)
    return _State(model, tok, optim)


def _checkpoint_folder(out: Path, ptr: Path) -> Path:
    """The folder `checkpoint.json` points at, which must be OUT/checkpoints/<one safe name> (a name read from
    a file never leads outside OUT)."""
    from personagen.names import child

    try:
        rel = str(json.loads(ptr.read_text())["path"])
    except (ValueError, KeyError, TypeError) as e:
        raise BadInput(f"{ptr}: not a checkpoint pointer ({type(e).__name__}: {e}); use a new --out") from None
    head, _, name = rel.partition("/")
    if head != "checkpoints":
        raise BadInput(f"{ptr}: path {rel!r} is not under checkpoints/; use a new --out")
    return child(out / "checkpoints", name, f"{ptr}: field 'path'")


def _resume_state(opts: FinetuneOptions, out: Path) -> _State | None:
    ptr = out / "checkpoint.json"
    if not ptr.is_file():
        return None
    saved = json.loads((out / "config.json").read_text())
    mine = opts.run_config()
    diff = [k for k in _RUN_KEYS if saved.get(k) != mine.get(k)]
    if diff:
        raise BadInput(f"--out {out}: holds a run with different --{diff[0].replace('_', '-')}; use a new --out")
    ck = _checkpoint_folder(out, ptr)  # a bad pointer is refused before torch and peft load (~6 s)
    import torch
    from peft import PeftModel

    base, tok = load_causal_lm(resolve_model(opts.model), trainable=True, threads=opts.threads)
    model = PeftModel.from_pretrained(base, str(ck), is_trainable=True)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=opts.lr,
                              weight_decay=opts.weight_decay)
    optim.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=True))
    st = json.loads((ck / "state.json").read_text())
    return _State(model, tok, optim, step=int(st["step"]), history=st["history"])


def _save_checkpoint(state: _State, out: Path, keep: bool = False) -> None:
    """Adapter + optimizer + history into checkpoints/step-N (temp folder, rename), then the pointer; the older
    step folders are removed unless `keep` (each holds a loadable adapter: a learning curve can be evaluated)."""
    import torch

    root = out / "checkpoints"
    root.mkdir(exist_ok=True)
    final = root / f"step-{state.step:06d}"
    tmp = root / f".tmp-step-{state.step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    state.model.save_pretrained(str(tmp))
    torch.save(state.optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": state.step, "history": state.history}))
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    atomic_write_json(out / "checkpoint.json", {"step": state.step, "path": f"checkpoints/{final.name}"})
    for old in [] if keep else root.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _train_step(state: _State, train: list[Example], opts: FinetuneOptions) -> float:
    import torch

    parts = micro_batches(train, state.step, opts.batch_size, opts.micro_batch, opts.seed)
    torch.manual_seed(opts.seed * 1_000_003 + state.step)  # dropout masks: same on a resumed run
    state.model.train()
    total = 0.0
    for part in parts:
        mb = [train[i] for i in part]
        loss = example_loss(state.model, state.tok, mb, opts.loss, opts.max_length) * (len(mb) / opts.batch_size)
        loss.backward()
        total += float(loss.detach())
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    return total


def validation_loss(model: Any, tok: Any, valid: list[Example], kind: str, max_length: int,
                    micro_batch: int) -> float:
    """Mean objective over the validation examples (eval mode, no gradients)."""
    import torch

    if not valid:
        return float("nan")
    model.eval()
    tot = 0.0
    with torch.no_grad():
        for s in range(0, len(valid), micro_batch):
            mb = valid[s:s + micro_batch]
            tot += float(example_loss(model, tok, mb, kind, max_length)) * len(mb)
    return tot / len(valid)


def finetune(opts: FinetuneOptions, *, progress: Any = None) -> FinetuneResult:
    """Run (or resume) a fine-tune; writes adapter/, config.json, losses.json and loss_curve.png to --out."""
    reason = train_available()
    if reason:
        raise BadInput(reason)
    train, valid = training_examples([open_survey(p) for p in opts.train], valid_fraction=opts.valid_fraction,
                                     seed=opts.seed, groups=opts.groups)
    valid = valid[: opts.max_valid]
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    state = _resume_state(opts, out)
    resumed = state.step if state else 0
    if state is None:
        state = _new_state(opts)
        atomic_write_json(out / "config.json", {**opts.run_config(), "n_train": len(train), "n_valid": len(valid),
                                                "paper": "SubPOP (paper 003): eq. 1, appendix B"})
    t0, done = time.perf_counter(), 0
    with progress_bar(opts.steps, "finetune", progress is not None, unit="step", initial=state.step) as bar:
        while state.step < opts.steps:
            loss = _train_step(state, train, opts)
            state.step += 1
            done += 1
            rec: dict[str, Any] = {"step": state.step, "train": loss}
            if state.step % opts.eval_every == 0 or state.step == opts.steps:
                rec["valid"] = validation_loss(state.model, state.tok, valid, opts.loss, opts.max_length,
                                               opts.micro_batch)
            state.history.append(rec)
            bar.update(1)
            bar.set_note(f"train loss {loss:.4f}")
            if progress:
                progress(rec)
            if state.step % opts.save_every == 0 or state.step == opts.steps:
                _save_checkpoint(state, out, opts.keep_checkpoints)
    sec = (time.perf_counter() - t0) / max(done, 1)
    return _finish(state, out, opts, resumed, sec, len(train), len(valid))


def _finish(state: _State, out: Path, opts: FinetuneOptions, resumed: int, sec: float, n_train: int,
            n_valid: int) -> FinetuneResult:
    adapter = out / "adapter"
    tmp = out / ".tmp-adapter"
    shutil.rmtree(tmp, ignore_errors=True)
    state.model.save_pretrained(str(tmp))
    shutil.rmtree(adapter, ignore_errors=True)
    tmp.replace(adapter)
    hist = state.history
    atomic_write_json(out / "losses.json", {"loss": opts.loss, "history": hist})
    if state.step > resumed:
        atomic_write_json(out / "timing.json", {"seconds_per_step": sec, "steps_timed": state.step - resumed})
    res = FinetuneResult(out=out, adapter=adapter, steps=state.step, resumed_from=resumed,
                         train_loss=[h["train"] for h in hist],
                         valid_loss=[(h["step"], h["valid"]) for h in hist if "valid" in h],
                         seconds_per_step=sec, n_train=n_train, n_valid=n_valid)
    plot_losses(res, out / "loss_curve.png", opts.loss)
    return res


def plot_losses(res: FinetuneResult, path: Path, kind: str) -> None:
    """Train (per step) and valid (every eval_every steps) loss curves, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))  # its own Agg canvas: the caller's pyplot backend is left alone
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(range(1, len(res.train_loss) + 1), res.train_loss, label="train", lw=1)
    if res.valid_loss:
        ax.plot(*zip(*res.valid_loss), "o-", label="valid", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("forward KL (eq. 1)" if kind == "kl" else "WD (appendix B)")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
