"""Click options shared by the commands that call a model (enrich, endow, mixture), and the library opener."""

from __future__ import annotations

from pathlib import Path

import click

from personagen.commands.types import Count
from personagen.library import Library

BACKEND = click.option("--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True,
                        help="Model backend (local = bundled SmolLM2 server).")
BASE_URL = click.option("--base-url", default=None, help="OpenAI-compatible base URL (--backend openai).")
MODEL = click.option("--model", default=None, help="Model name (--backend openai).")
CONC = click.option("--concurrency", type=Count(1, 1024), default=4, show_default=True, help="Parallel requests.")
TEMPLATES = click.option("--templates", type=click.Path(file_okay=False), default=None,
                          help="Folder overriding shipped prompt templates.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")


def open_library(path: Path) -> Library:
    """The library at `path` (BadInput when it is not one)."""
    return Library.open(path)


