"""CLI: `personagen finetune` (SubPOP LoRA fine-tuning, paper 003; needs the [train] extra)."""

from __future__ import annotations

import json

import click

from personagen.commands.types import SEED, Count, Real


@click.command("finetune")
@click.option("--train", "train", multiple=True, required=True, type=click.Path(),
              help="Training survey: a survey parquet, an OpinionQA wave folder or a SubPOP .jsonl (repeatable).")
@click.option("--eval", "eval_", multiple=True, type=click.Path(),
              help="Held-out survey(s): written as the test split of --export-jsonl (evaluate with reproduce).")
@click.option("--model", default=None, help="HF model folder or .gguf file (default: the bundled SmolLM2).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (resumable).")
@click.option("--steps", type=Count(1, 10_000_000), default=100, show_default=True)
@click.option("--loss", type=click.Choice(["kl", "wd"]), default="kl", show_default=True,
              help="kl: forward KL (eq. 1); wd: Wasserstein loss (appendix B).")
@click.option("--lr", type=Real(0.0, 10.0, lo_open=True), default=2e-4, show_default=True)
@click.option("--batch-size", type=Count(1, 1_000_000), default=256, show_default=True, help="Examples per optimizer step.")
@click.option("--micro-batch", type=Count(1, 100_000), default=8, show_default=True, help="Examples per forward pass.")
@click.option("--rank", type=Count(1, 4096), default=8, show_default=True)
@click.option("--alpha", type=Count(1, 100_000), default=32, show_default=True)
@click.option("--dropout", type=Real(0.0, 1.0), default=0.05, show_default=True)
@click.option("--save-every", type=Count(1, 10_000_000), default=10, show_default=True)
@click.option("--eval-every", type=Count(1, 10_000_000), default=10, show_default=True)
@click.option("--valid-fraction", type=Real(0.0, 1.0), default=0.1, show_default=True,
              help="Share of the training questions held out for the valid loss (paper: 10%).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--threads", type=Count(1, 1024), default=None, help="torch CPU threads.")
@click.option("--groups", default=None,
              help="Comma-separated group labels to train on, or 'all' (default: the paper's 22, Table 3).")
@click.option("--keep-checkpoints", is_flag=True,
              help="Keep every checkpoints/step-N (each a loadable adapter, e.g. for reproduce subpop --adapter).")
@click.option("--export-jsonl", is_flag=True, help="Also write the training triples to OUT/data/*.jsonl.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last.")
def finetune(train: tuple[str, ...], eval_: tuple[str, ...], model: str | None, out: str, steps: int, loss: str,
             lr: float, batch_size: int, micro_batch: int, rank: int, alpha: int, dropout: float, save_every: int,
             eval_every: int, valid_fraction: float, seed: int, threads: int | None, groups: str | None, export_jsonl: bool,
             as_json: bool, keep_checkpoints: bool = False) -> None:
    """LoRA fine-tune on (question, subgroup, distribution) triples; writes adapter/, config.json, losses.json
    and loss_curve.png to OUT, and resumes from OUT's last checkpoint when rerun."""
    from personagen.finetune import PAPER_GROUPS_22, FinetuneOptions, export_hub_config, finetune, open_survey

    chosen = PAPER_GROUPS_22 if groups is None else None if groups.strip().lower() == "all" \
        else tuple(g.strip() for g in groups.split(",") if g.strip())
    opts = FinetuneOptions(groups=chosen, train=train, out=out, model=model, steps=steps, loss=loss, lr=lr, batch_size=batch_size,
                           micro_batch=micro_batch, rank=rank, alpha=alpha, dropout=dropout, save_every=save_every,
                           eval_every=eval_every, valid_fraction=valid_fraction, seed=seed,
                           threads=threads, keep_checkpoints=keep_checkpoints)
    for p in eval_:
        open_survey(p)  # bad --eval fails before any training
    if export_jsonl:
        export_hub_config([open_survey(p) for p in train], f"{out}", evaluate=[open_survey(p) for p in eval_],
                          name="data", seed=seed)

    def show(rec: dict) -> None:  # counts, rate and time left come from the stage's progress lines
        if "valid" in rec:
            click.echo(f"step {rec['step']}/{steps}: train {rec['train']:.4f}, valid {rec['valid']:.4f}", err=True)

    res = finetune(opts, progress=show)
    summary = {"out": str(res.out), "adapter": str(res.adapter), "steps": res.steps,
               "resumed_from": res.resumed_from, "train_loss_first": res.train_loss[0] if res.train_loss else None,
               "train_loss_last": res.train_loss[-1] if res.train_loss else None,
               "valid_loss": res.valid_loss[-1][1] if res.valid_loss else None,
               "seconds_per_step": res.seconds_per_step, "n_train": res.n_train, "n_valid": res.n_valid}
    click.echo(f"finetune: {res.steps} steps (resumed at {res.resumed_from}), adapter in {res.adapter}, "
               f"{res.seconds_per_step:.1f} s/step", err=as_json)
    if as_json:
        click.echo(json.dumps(summary))
