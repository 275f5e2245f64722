"""`personagen endow`: a P2P agent pool for a survey (thin wrapper over personagen.endow)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.commands._options import (
    BACKEND,
    BASE_URL,
    CONC,
    JSON,
    MODEL,
    PER_SPLIT,
    QUESTIONS,
    TEMPLATES,
    open_library,
    selected_survey,
)
from personagen.commands.types import SEED, Count, Real
from personagen.store import undo_on_bad_input


@click.command("endow")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("--survey", "survey_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Survey parquet.")
@click.option("--budget", type=Count(1, 1_000_000), required=True, help="Number of agents to generate (P2P N_A).")
@BACKEND
@BASE_URL
@MODEL
@click.option("--strategy", type=click.Choice(["active", "vanilla", "random-census"]), default="active",
              show_default=True)
@click.option("--bank", type=click.Path(exists=False, path_type=Path), default=None,
              help="Folder of extra attribute-bank YAML files.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--initial-per-mode", type=Count(1, 100_000), default=10, show_default=True)
@click.option("--n-updates", type=Count(1, 10_000), default=10, show_default=True,
              help="Update steps after the initial stage (P2P Alg. 1; the paper uses 10).")
@click.option("--step-size", type=Count(1, 1_000_000), default=None,
              help="Fixed agents per update step instead of --n-updates.")
@click.option("--temperature", type=Real(0.0, 100.0, lo_open=True), default=1.0, show_default=True,
              help="Softmax temperature over modes.")
@click.option("--lowest-k", type=Count(1, 10_000), default=3, show_default=True, help="Questions patched per step.")
@click.option("--patch-ratio", type=Real(0.0, 1.0), default=0.75, show_default=True,
              help="Step budget share for patches.")
@click.option("--mix-after", type=Count(0, 10_000), default=1, show_default=True,
              help="Patches before a question uses mixed modes.")
@click.option("--per-call", type=Count(1, 100), default=2, show_default=True, help="Personas per endowment call.")
@click.option("--split", default="train", show_default=True, help="Survey split the pool answers.")
@QUESTIONS
@PER_SPLIT
@click.option("--max-tokens", type=Count(1, 100_000), default=320, show_default=True, help="Output cap per endowment call.")
@CONC
@TEMPLATES
@JSON
def endow(lib: Path, survey_path: Path, budget: int, backend: str, base_url: str | None, model: str | None,
          strategy: str, bank: Path | None, seed: int, initial_per_mode: int, n_updates: int, step_size: int | None,
          temperature: float, lowest_k: int, patch_ratio: float, mix_after: int, per_call: int, split: str,
          max_tokens: int, concurrency: int, templates: str | None, as_json: bool, questions: str | None,
          per_split: int | None) -> None:
    """Generate a P2P agent pool for a survey (active | vanilla | random-census)."""
    from personagen.endow import EndowOptions, endow_library

    opts = EndowOptions(budget=budget, strategy=strategy, backend=backend, base_url=base_url, model=model, bank=bank,
                        seed=seed, initial_per_mode=initial_per_mode, n_updates=n_updates, step_size=step_size,
                        temperature=temperature, lowest_k=lowest_k, patch_ratio=patch_ratio, mix_after=mix_after,
                        per_call=per_call, split=split, templates=templates, concurrency=concurrency,
                        max_tokens=max_tokens)
    library, survey = open_library(lib), selected_survey(survey_path, questions, per_split, seed)
    with undo_on_bad_input(library.path / "endow"):  # an unknown model leaves no endow/ folder behind
        log = endow_library(library, survey, opts)
    summary = {k: log.get(k) for k in ("strategy", "survey_id", "budget", "n_generated", "by_source",
                                       "final_mean_entropy", "failures", "answers", "seconds")}
    click.echo(f"endow {strategy}: {log['n_generated']} agents; final mean entropy "
               f"{log.get('final_mean_entropy')}; failures {log.get('failures', {})}", err=as_json)
    if as_json:
        click.echo(json.dumps(summary, default=str))
