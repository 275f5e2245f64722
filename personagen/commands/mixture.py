"""`personagen mixture`: a weighted mixture of system prompts matching a scalar target (thin wrapper)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.commands._options import BACKEND, BASE_URL, CONC, JSON, MODEL, TEMPLATES
from personagen.commands.types import SEED, Count, Name, check_range
from personagen.store import undo_on_bad_input


@click.command("mixture")
@click.option("--target", "target", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV/TSV/parquet with the numeric target.")
@click.option("--column", default=None, help="Target column (needed when there are several numeric ones).")
@click.option("--ipip-domain", "ipip_domain", default=None, metavar="E|N|A|C|O",
              help="Target = Big Five domain score (1-5 keyed item mean) from IPIP 50-item columns E1..O10; "
                   "instead of --column. Range defaults to 1-5.")
@click.option("--question", default=None, help="Question the personas answer with a number.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Library to create (or add to).")
@BACKEND
@BASE_URL
@MODEL
@click.option("--method", type=click.Choice(["em", "gb"]), default="em", show_default=True)
@click.option("--components", type=Count(1, 100_000), default=None,
              help="K prompts (default the paper's: EM 10, GB 200; use a small K on CPU).")
@click.option("--iters", type=Count(1, 10_000), default=20, show_default=True, help="EM iteration cap (paper: 20).")
@click.option("--weights", type=click.Choice(["slsqp", "eg"]), default="slsqp", show_default=True,
              help="Weight fit: SLSQP as the paper, or exponentiated gradient.")
@click.option("--improve-rounds", type=Count(0, 1000), default=1, show_default=True,
              help="CraftSystemPrompt improving rounds when a prompt misses its aim.")
@click.option("--samples", type=Count(1, 1000), default=10, show_default=True)
@click.option("--range", "value_range", type=(float, float), default=None, help="LO HI of valid answers.")
@click.option("--name", type=Name(), default="mixture", show_default=True, help="Calibration name.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--max-tokens", "--prompt-tokens", "prompt_tokens", type=Count(1, 100_000), default=120, show_default=True,
              help="Output cap per craft/improve call (--prompt-tokens: the same, its older name).")
@CONC
@TEMPLATES
@JSON
def mixture(target: Path, column: str | None, ipip_domain: str | None, question: str | None, out: Path,
            backend: str, base_url: str | None, model: str | None, method: str, components: int | None, iters: int,
            weights: str, improve_rounds: int, samples: int,
            value_range: tuple[float, float] | None, name: str, seed: int, prompt_tokens: int, concurrency: int,
            templates: str | None, as_json: bool) -> None:
    """Search a weighted mixture of system prompts matching a scalar target (EM or gradient boosting)."""
    from personagen.mixture import MixtureRunOptions, mixture_library

    check_range(value_range)
    opts = MixtureRunOptions(column=column, question=question, method=method, components=components, iters=iters,
                             samples=samples, weights=weights, improve_rounds=improve_rounds, backend=backend,
                             base_url=base_url, model=model, seed=seed, name=name, templates=templates,
                             concurrency=concurrency, value_range=value_range, prompt_tokens=prompt_tokens,
                             ipip_domain=ipip_domain)
    with undo_on_bad_input(out):  # a library created for this run is removed again on bad input
        rep = mixture_library(target, out, opts)
    wd = rep.metric("train", "wd")
    click.echo(f"mixture {method}: {rep.n_personas} prompts, ESS {rep.ess:.2f}, train normalised W1 "
               f"{wd if wd is None else round(wd, 4)}; wrote {out}", err=as_json)
    if as_json:
        click.echo(json.dumps({k: rep.to_dict()[k] for k in ("name", "method", "n_personas", "nonzeros", "ess", "metrics",
                                                   "baselines")}, default=str))
