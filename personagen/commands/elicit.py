"""`personagen elicit`: every persona answers a survey."""

from __future__ import annotations

import json
from typing import Any

import click

from personagen.commands._options import OLD_MAX_TOKENS, PER_SPLIT, QUESTIONS
from personagen.commands.types import Count, Real
from personagen.errors import PersonagenError


def _answer_options(f: Any) -> Any:
    """--constrain, --option-order and --show-prompt (issue 21: answers on the options, order, the prompt)."""
    for opt in reversed(_ANSWER_OPTIONS):
        f = opt(f)
    return f


_ANSWER_OPTIONS = [
    click.option("--constrain", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
                  help="auto: restrict answers to the option letters where the server can (grammar, guided_choice or "
                       "a JSON-schema enum; probed once, said on stderr when it cannot); none: free answers, matched."),
    click.option("--option-order", type=click.Choice(["given", "shuffle", "reverse"]), default="given",
                  show_default=True,
                  help="given: the survey's order (the paper protocols' choice); shuffle: a seeded order per persona "
                       "and question; reverse: for ordinal scales. Refused/Don't know stay last; answers are "
                       "stored against the survey's options."),
    click.option("--show-prompt", type=Count(1, 1000), default=None,
                  help="Print the first N requests as they would be sent (messages, options, sampling parameters); "
                       "send and write nothing."),
]


@click.command()
@click.argument("lib", type=click.Path(file_okay=False))
@click.option("--survey", "survey_path", required=True, type=click.Path(dir_okay=False),
              help="Survey parquet (from `personagen surveys import`).")
@click.option("--split", type=click.Choice(["train", "valid", "test", "all"]), default="all", show_default=True)
@click.option("--backend", type=click.Choice(["local", "openai", "openai-batch", "hf"]), default="local",
              show_default=True,
              help="openai-batch: the OpenAI Batch API (half price, results within 24 h; resumable). "
                   "hf: an in-process transformers model (--model PATH, default the bundled SmolLM2 GGUF).")
@click.option("--adapter", default=None, type=click.Path(file_okay=False),
              help="LoRA adapter folder (backend hf), e.g. the adapter/ of `personagen finetune`.")
@click.option("--base-url", default=None, help="OpenAI-compatible base URL (backend openai).")
@click.option("--model", default=None, help="Model name (required for backend openai).")
@click.option("--mode", type=click.Choice(["logprobs", "sample"]), default="logprobs", show_default=True)
@click.option("--samples", type=Count(1, 1000), default=1, show_default=True, help="Answers per persona and question (sample).")
@click.option("--temperature", type=Real(0.0, 10.0), default=1.0, show_default=True, help="Sampling temperature (sample).")
@click.option("--concurrency", type=Count(1, 1024), default=4, show_default=True)
@click.option("--limit", type=Count(1), default=None, help="Only the first N personas.")
@click.option("--max-questions", type=Count(1), default=None, help="Only the first Q questions of the split.")
@QUESTIONS
@PER_SPLIT
@click.option("--min-mass", type=Real(0.0, 1.0), default=0.5, show_default=True,
              help="Logprobs: least probability mass on option letters for a valid answer.")
@click.option("--fresh", is_flag=True, help="Ignore cached model answers (still records new ones).")
@click.option("--dry-run", is_flag=True, help="Print calls, tokens and cost estimated; send and write nothing.")
@click.option("--max-requests", type=Count(1), default=None, help="Stop after this many model requests.")
@click.option("--token-budget", "max_tokens_budget", type=Count(1), default=None,
              help="Stop after this many tokens in all (input + output) for the run.")
@OLD_MAX_TOKENS
@click.option("--prices", type=click.Path(dir_okay=False), default=None, help="Extra price table (YAML).")
@click.option("--timeout", type=Real(0.0, 86400.0, lo_open=True), default=120.0, show_default=True,
              help="Seconds to wait for one model request; one that timed out is sent again once.")
@click.option("--time-limit", type=Real(0.0, None, lo_open=True), default=None,
              help="Seconds for the whole run: then it stops, keeping every paid answer (rerun to go on).")
@click.option("--templates", type=click.Path(file_okay=False), default=None, help="Folder overriding templates.")
@click.option("--style", default="narrative", show_default=True,
              help="Persona text the model sees: narrative, qa, bio or portray (rendered by build --style).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object last.")
@click.option("--engine", type=click.Choice(["single", "ray"]), default="single", show_default=True,
              help="ray: the work list as a Ray Dataset answered by ray.data.llm (needs the [ray] extra).")
@click.option("--ray-address", default=None, help="Ray cluster to join (default: a local Ray instance).")
@click.option("--ray-workers", type=Count(1, 1024), default=2, show_default=True, help="Ray processor replicas.")
@click.option("--ray-batch-size", type=Count(1, 100_000), default=8, show_default=True,
              help="Requests per Ray block (results are cached a block at a time).")
@click.option("--ray-processor", type=click.Choice(["http", "vllm"]), default="http", show_default=True,
              help="http: the --base-url endpoint; vllm: vLLM engines on the cluster for --model (a path or id).")
@click.option("--vllm-engine", default=None, help="vLLM engine options as a JSON object (--ray-processor vllm).")
@_answer_options
def elicit(lib: str, survey_path: str, split: str, backend: str, adapter: str | None, base_url: str | None,
           model: str | None, mode: str,
           samples: int, temperature: float, concurrency: int, limit: int | None, max_questions: int | None,
           min_mass: float, fresh: bool, dry_run: bool, max_requests: int | None, max_tokens_budget: int | None,
           prices: str | None, templates: str | None, style: str, no_progress: bool, as_json: bool,
           engine: str, ray_address: str | None, ray_workers: int, ray_batch_size: int, ray_processor: str,
           vllm_engine: str | None, timeout: float, time_limit: float | None, questions: str | None,
           per_split: int | None, old_max_tokens: str | None, constrain: str, option_order: str,
           show_prompt: int | None) -> None:
    """Every persona in LIB answers the survey; answers go to LIB/responses.parquet."""
    from personagen.elicit import ElicitFailed
    from personagen.library import Library
    from personagen.surveys import load, parse_qids

    a = dict(locals())  # the options as parsed, handed to `_run` by name
    a["questions"] = parse_qids(questions)
    failed: ElicitFailed | None = None
    try:
        result = _run(Library.open(lib), load(survey_path), a)
    except ElicitFailed as e:  # the run's figures are printed first, then the failure (exit 1)
        failed, result = e, e.summary
    result.engine = engine
    summary = result.to_dict()
    if show_prompt is not None:
        _print_prompts(summary, as_json)
        return
    _print_summary(summary, dry_run, as_json, min_mass)
    if failed is not None:
        raise failed


def _run(library: Any, survey: Any, a: dict[str, Any]) -> Any:
    """The engine's client and `elicit_library` with the command's options `a` (closed afterwards)."""
    from personagen.elicit import ElicitOptions, elicit_library

    client = _engine_client(a["engine"], a["ray_address"], a["ray_workers"], a["ray_batch_size"], a["ray_processor"],
                            a["vllm_engine"], backend=a["backend"], base_url=a["base_url"], model=a["model"],
                            cache_path=library.llm_db, concurrency=a["concurrency"], fresh=a["fresh"],
                            max_requests=a["max_requests"], max_tokens_budget=a["max_tokens_budget"],
                            prices=a["prices"], progress=not a["no_progress"], timeout=a["timeout"],
                            time_limit_s=a["time_limit"])
    keys = ("backend", "base_url", "model", "mode", "samples", "temperature", "split", "limit", "max_questions",
            "concurrency", "fresh", "dry_run", "min_mass", "templates", "prices", "max_requests",
            "max_tokens_budget", "style", "adapter", "timeout", "time_limit", "questions", "per_split",
            "constrain", "option_order", "show_prompt")
    try:
        opts = ElicitOptions(progress=not a["no_progress"], **{k: a[k] for k in keys})
        return elicit_library(library, survey, opts, client=client)
    finally:
        if client is not None:
            client.close()


def _print_summary(summary: dict, dry_run: bool, as_json: bool, min_mass: float) -> None:
    """One human line (stderr under --json) and its warnings (unknown cost, no key, invalid share), then the
    JSON object last."""
    from personagen.elicit import invalid_warning

    if dry_run:
        est = summary["estimate"]
        click.echo(f"dry run: {summary['answers_todo']} answers to elicit ({summary['answers_skipped']} done), "
                   f"{est['requests']} calls ({est['cached']} cached), ~{est['input_tokens']} input + "
                   f"{est['output_tokens']} output tokens, "
                   + (f"~${est['cost_usd']:.4f}" if est.get("priced") else
                      f"cost unknown ({summary['model']!r} is not in the price table; give its prices with "
                      "--prices FILE.yaml)"), err=as_json)
        if not est.get("key_set", True):
            click.echo("warning: no API key set (export OPENAI_API_KEY or PERSONAGEN_API_KEY before the real run)",
                       err=True)
    else:
        click.echo(f"elicit: {summary['answers_written']} answers (persona x question) written as "
                   f"{summary['rows_written']} option rows ({summary['invalid']} invalid, "
                   f"{summary['answers_skipped']} already done), {summary['requests_sent']} calls sent, "
                   f"{summary['cache_hits']} cached, {summary['input_tokens']}+{summary['output_tokens']} tokens, "
                   f"${summary['cost_usd']:.4f}, {summary['seconds']:.1f}s", err=as_json)
        _print_figures(summary, as_json)
        if summary.get("rescored"):
            click.echo(f"elicit: --min-mass {min_mass:g} re-applied to stored answers: {summary['rescored']} "
                       "changed validity (no model calls)", err=True)
        warn = invalid_warning(summary, min_mass)
        if warn:
            click.echo(f"warning: {warn}", err=True)
    if as_json:
        click.echo(json.dumps(summary, default=str))


def _print_prompts(summary: dict, as_json: bool) -> None:
    """The rendered requests of --show-prompt, one block each (or the JSON object under --json)."""
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    for i, p in enumerate(summary["prompts"], 1):
        req = dict(p["request"])
        click.echo(f"--- request {i}: persona {p['persona_id']}, question {p['qid']} "
                   f"(options shown in survey order {p['option_order']})")
        for m in req.pop("messages"):
            click.echo(f"[{m['role']}]\n{m['content']}")
        click.echo("[parameters] " + json.dumps(req, default=str))
    click.echo(f"--- constraint: {summary['constrain']}")


def _print_figures(summary: dict, err: bool) -> None:
    """The constraint note, the position-bias figure and the covered-mass quantiles of a run (stderr)."""
    if summary.get("constraint_note"):
        click.echo(f"note: {summary['constraint_note']}", err=True)
    pb = summary.get("position_bias")
    if pb:
        click.echo(f"elicit: first letter shown got {pb['first_share']:.1%} of answers (expected from the options "
                   f"shown first {pb['expected_first_share']:.1%}, uniform {pb['uniform_first_share']:.1%}; "
                   f"option order {summary.get('option_order')})", err=err)
    mq = summary.get("mass_quantiles")
    if mq:
        click.echo(f"elicit: covered letter mass min {mq['min']:.3f}, p01 {mq['p01']:.3f}, p05 {mq['p05']:.3f}, "
                   f"p25 {mq['p25']:.3f}, median {mq['median']:.3f} ({'constrained: ' + summary['constraint'] if summary.get('constraint') else 'unconstrained'})",
                   err=err)


def _engine_client(engine: str, ray_address: str | None, ray_workers: int, ray_batch_size: int,
                   ray_processor: str, vllm_engine: str | None, **client_kw: object) -> object:
    """None for the default engine (the stage makes its own client), else the engine's client."""
    from personagen.elicit import EngineOptions, make_client
    from personagen.errors import BadInput

    try:
        engine_kwargs = json.loads(vllm_engine) if vllm_engine else {}
    except json.JSONDecodeError as e:
        raise BadInput(f"--vllm-engine: not JSON ({e.msg})") from None
    opts = EngineOptions(engine=engine, ray_address=ray_address, ray_workers=ray_workers,
                         ray_batch_size=ray_batch_size, ray_processor=ray_processor, vllm_engine=engine_kwargs)
    return None if engine == "single" else make_client(opts, **client_kw)


__all__ = ["elicit", "PersonagenError"]
