"""Click options shared by several commands (model backend, question selection, renamed flags), and the library
opener."""

from __future__ import annotations

from pathlib import Path

import click

from personagen.commands.types import Count
from personagen.errors import BadInput
from personagen.library import Library
from personagen.surveys import Survey

BACKEND = click.option("--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True,
                        help="Model backend (local = bundled SmolLM2 server).")
BASE_URL = click.option("--base-url", default=None, help="OpenAI-compatible base URL (--backend openai).")
MODEL = click.option("--model", default=None, help="Model name (--backend openai).")
CONC = click.option("--concurrency", type=Count(1, 1024), default=4, show_default=True, help="Parallel requests.")
TEMPLATES = click.option("--templates", type=click.Path(file_okay=False), default=None,
                          help="Folder overriding shipped prompt templates.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")
QUESTIONS = click.option("--questions", default=None, metavar="QID,...",
                         help="Only these questions (comma-separated ids, as `surveys show` lists them).")
PER_SPLIT = click.option("--per-split", type=Count(1, 1_000_000), default=None, metavar="N",
                         help="N questions drawn (seeded) from each of train, valid and test.")


def _renamed_token_budget(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise BadInput("--max-tokens is the output cap per call in every command; the total token budget of "
                       f"`{ctx.info_name}` is now --token-budget (e.g. --token-budget {value})")


OLD_MAX_TOKENS = click.option("--max-tokens", "old_max_tokens", default=None, hidden=True, expose_value=True,
                              callback=_renamed_token_budget, is_eager=True,
                              help="Renamed: --token-budget (the total token budget of the run).")


def selected_survey(path: Path, questions: str | None, per_split: int | None, seed: int = 0) -> Survey:
    """The survey at `path`, narrowed to `--questions` / `--per-split` when given (surveys.select_questions)."""
    from personagen.surveys import load, parse_qids, select_questions

    survey = load(path)
    qids = parse_qids(questions)
    if qids is None and per_split is None:
        return survey
    return survey.subset(select_questions(survey, questions=qids, per_split=per_split, seed=seed))


def open_library(path: Path) -> Library:
    """The library at `path` (BadInput when it is not one)."""
    return Library.open(path)


