"""CLI: `personagen reproduce <paper>`: rerun a paper's protocol and print its table beside the paper's.

Subcommands are listed in SUBCOMMANDS (one line each), so adding one is a one-line change.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("subpop")
@click.option("--train", "train", multiple=True, required=True, type=click.Path(),
              help="Training survey (parquet, OpinionQA wave folder or SubPOP .jsonl); repeatable.")
@click.option("--eval", "eval_", required=True, type=click.Path(), help="Held-out evaluation survey.")
@click.option("--model", default=None, help="HF model folder or .gguf (default: the bundled SmolLM2).")
@click.option("--steps", type=int, default=20, show_default=True, help="Fine-tuning steps.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Paper: 256 (GPU).")
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--loss", type=click.Choice(["kl", "wd"]), default="kl", show_default=True)
@click.option("--max-questions", type=int, default=10, show_default=True, help="Eval questions (seeded draw).")
@click.option("--groups", default=None, help="Comma-separated group labels to evaluate (default all).")
@click.option("--assume-respondents", "assumed_n", type=int, default=None,
              help="Respondents per group for the human bound when the eval survey has no counts.")
@click.option("--reps", type=int, default=1000, show_default=True, help="Bootstrap replicates (paper 1,000).")
@click.option("--baselines", default="zero_shot_qa,zero_shot_bio,zero_shot_portray,few_shot", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--out", type=click.Path(file_okay=False), default="reproduce-subpop", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last.")
def subpop(train: tuple[str, ...], eval_: str, model: str | None, steps: int, batch_size: int, lr: float, loss: str,
           max_questions: int, groups: str | None, assumed_n: int | None, reps: int, baselines: str, seed: int,
           threads: int | None, out: str, as_json: bool) -> None:
    """SubPOP (paper 003): Table-1/2-style mean WD for bounds, baselines and the fine-tuned model."""
    from personagen.reproduce import SubpopOptions, reproduce_subpop, subpop_markdown
    from personagen.store import atomic_write_json, atomic_write_text

    opts = SubpopOptions(train=train, eval=eval_, out=out, model=model, steps=steps, batch_size=batch_size, lr=lr,
                         loss=loss, max_questions=max_questions, assumed_n=assumed_n, reps=reps, seed=seed,
                         groups=tuple(g.strip() for g in groups.split(",")) if groups else None,
                         baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()), threads=threads)
    res = reproduce_subpop(opts, progress=lambda m: click.echo(str(m), err=True))
    table = subpop_markdown(res)
    atomic_write_text(Path(out) / "subpop.md", table + "\n")
    atomic_write_json(Path(out) / "subpop.json", res.to_json())
    click.echo(table, err=as_json)
    if as_json:
        click.echo(json.dumps(res.to_json(), default=str))


SUBCOMMANDS = [
    subpop,
]


@click.group("reproduce")
def reproduce() -> None:
    """Rerun a paper's protocol and print its table beside the published numbers."""


for _cmd in SUBCOMMANDS:
    reproduce.add_command(_cmd)
