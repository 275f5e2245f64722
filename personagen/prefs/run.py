"""`personagen prefs`: curate prompts, optionally filter personas, and write LIB/preferences.parquet (PERSONA §3).

Resumable: pairs already in preferences.parquet are skipped, the file is rewritten (temp + rename) after every
chunk, and every model call is cached in LIB/llm.sqlite, so a rerun of a finished run sends no request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from personagen.errors import BadInput
from personagen.prefs import calls
from personagen.prefs.pairs import (
    PAIR_SCHEMA,
    SPLITS,
    PairOptions,
    PairsResult,
    plan_pairs,
    run_chunk,
    sample_personas,
)
from personagen.prefs.profile import consistency_filter, persona_profiles
from personagen.prefs.prompts import CurateOptions, curate
from personagen.store import atomic_write_json, atomic_write_parquet

PREFERENCES = "preferences.parquet"
PREFS_DIR = "prefs"
PROFILE_STYLES = ("attributes", "narrative", "bio", "qa", "portray")


@dataclass(frozen=True)
class PrefsOptions:
    """Everything `personagen prefs` needs; validated once here (the CLI and the API build the same object)."""

    curate: CurateOptions
    pairs: PairOptions = field(default_factory=PairOptions)
    backend: str = "local"
    base_url: str | None = None
    model: str | None = None
    concurrency: int = 4
    profile: str = "attributes"  # Appendix C: the persona as an attribute dictionary
    consistency_judge: bool = True  # §3.1 LLM filter of inconsistent demographic profiles (paper: ~8.5% removed)
    templates: str | None = None
    fresh: bool = False

    def __post_init__(self) -> None:
        if self.profile not in PROFILE_STYLES:
            raise BadInput(f"--profile {self.profile!r}: expected one of {', '.join(PROFILE_STYLES)}")
        if self.concurrency < 1:
            raise BadInput(f"--concurrency {self.concurrency}: must be >= 1")


@dataclass
class PrefsResult:
    """The run's report: curation counts, consistency filter, pairs, usage; also LIB/prefs/report.json."""

    path: Path
    curation: dict[str, Any]
    consistency: dict[str, Any] | None
    pairs: PairsResult
    model: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "curation": self.curation, "consistency": self.consistency,
                "pairs": self.pairs.to_dict(), "model": self.model, "seconds": self.seconds}


def read_preferences(lib: Any) -> pl.DataFrame:
    """LIB/preferences.parquet, or an empty frame of the pair schema."""
    p = Path(lib.path) / PREFERENCES
    return pl.read_parquet(p) if p.is_file() else pl.DataFrame(schema=PAIR_SCHEMA)


def _select_personas(lib: Any, opts: PrefsOptions, client: Any) -> tuple[pl.DataFrame, dict | None]:
    personas = lib.personas()
    report = None
    if opts.consistency_judge:
        res = consistency_filter(personas, client, max_retries=opts.pairs.max_retries, templates=opts.templates)
        atomic_write_parquet(Path(lib.path) / PREFS_DIR / "consistency.parquet", res.verdicts)
        personas = personas.filter(pl.col("persona_id").is_in(res.kept))
        report = res.to_dict()
    ids = sample_personas(personas["persona_id"].to_list(), opts.pairs.personas, opts.pairs.seed)
    return personas.filter(pl.col("persona_id").is_in(ids)), report


def _generate(lib: Any, plan: pl.DataFrame, client: Any, opts: PrefsOptions) -> tuple[pl.DataFrame, dict, int]:
    """Run the planned pairs not yet written, chunk by chunk; returns (all pairs, drops, new pairs)."""
    out_path = Path(lib.path) / PREFERENCES
    have = pl.DataFrame(schema=PAIR_SCHEMA) if opts.fresh else read_preferences(lib)
    done = set(zip(have["persona_id"].to_list(), have["prompt_id"].to_list()))
    todo = [r for r in plan.iter_rows(named=True) if (r["persona_id"], r["prompt_id"]) not in done]
    drops: dict[str, int] = {}
    new = 0
    for start in range(0, len(todo), opts.pairs.chunk):
        rows, d = run_chunk(todo[start:start + opts.pairs.chunk], client, opts.pairs, opts.templates)
        for k, v in d.items():
            drops[k] = drops.get(k, 0) + v
        if rows:
            frame = pl.DataFrame(rows, schema_overrides=PAIR_SCHEMA).select(list(PAIR_SCHEMA))
            have = pl.concat([have, frame], how="vertical_relaxed")
            atomic_write_parquet(out_path, have)
            new += len(rows)
    return have, drops, new


def make_preferences(lib: Any, opts: PrefsOptions, client: Any = None) -> PrefsResult:
    """Curate prompts, (optionally) judge personas, plan and generate DPF pairs; write and record the stage."""
    from personagen.prefs.prompts import read_prompts

    t0 = time.time()
    read_prompts(opts.curate)  # a missing or malformed --prompts fails before the library is touched
    with calls.open_client(opts.backend, base_url=opts.base_url, model=opts.model, cache_path=lib.llm_db,
                           concurrency=opts.concurrency, client=client) as c:
        cur = curate(opts.curate, c, opts.templates)
        if cur.prompts.height == 0:
            raise BadInput(f"--prompts {opts.curate.source}: no prompt survived curation ({cur.counts})")
        (Path(lib.path) / PREFS_DIR).mkdir(exist_ok=True)
        atomic_write_parquet(Path(lib.path) / PREFS_DIR / "prompts.parquet", cur.prompts)
        personas, consistency = _select_personas(lib, opts, c)
        profiles = persona_profiles(personas, opts.profile, opts.templates)
        plan = plan_pairs(list(profiles), cur.prompts, opts.pairs).with_columns(
            pl.col("persona_id").replace_strict(profiles, return_dtype=pl.String).alias("persona"))
        allp, drops, new = _generate(lib, plan, c, opts)
        usage = calls.stats(c)
        model = calls.model_of(c)
    splits = {s: int((allp["split"] == s).sum()) for s in SPLITS}
    pairs = PairsResult(new, allp.height, plan.height, drops, splits, usage)
    res = PrefsResult(Path(lib.path) / PREFERENCES, cur.to_dict(), consistency, pairs, model,
                      round(time.time() - t0, 2))
    atomic_write_json(Path(lib.path) / PREFS_DIR / "report.json", res.to_dict())
    lib.record("prefs", prompts=cur.source, n_pairs=allp.height, new_pairs=new, model=model,
               per_persona=opts.pairs.per_persona, heldout_per_persona=opts.pairs.heldout_per_persona,
               profile=opts.profile, consistency_judge=opts.consistency_judge)
    return res


@dataclass(frozen=True)
class ModelSpec:
    """Which model a step talks to (backend local|openai, URL, name, parallel requests)."""

    backend: str = "local"
    base_url: str | None = None
    model: str | None = None
    concurrency: int = 4

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise BadInput(f"--concurrency {self.concurrency}: must be >= 1")


def evaluate_library(lib: Any, opts: Any, spec: ModelSpec = ModelSpec(), second: ModelSpec | None = None,
                     client: Any = None, second_client: Any = None) -> Any:
    """Validate LIB/preferences.parquet (personagen.prefs.evaluation) and write LIB/prefs/eval/*."""
    from personagen.prefs.evaluation import evaluate, write_report

    prompts_path = Path(lib.path) / PREFS_DIR / "prompts.parquet"
    if not prompts_path.is_file():
        raise BadInput(f"{prompts_path}: no curated prompts (run `personagen prefs` first)")
    pairs, personas, prompts = read_preferences(lib), lib.personas(), pl.read_parquet(prompts_path)
    with calls.open_client(spec.backend, base_url=spec.base_url, model=spec.model, cache_path=lib.llm_db,
                           concurrency=spec.concurrency, client=client) as c:
        if second is None:
            res = evaluate(pairs, personas, prompts, c, opts, second_client)
        else:
            with calls.open_client(second.backend, base_url=second.base_url, model=second.model,
                                   cache_path=lib.llm_db, concurrency=second.concurrency) as c2:
                res = evaluate(pairs, personas, prompts, c, opts, c2)
    res.files = write_report(res, Path(lib.path) / PREFS_DIR / "eval")
    lib.record("prefs-eval", evaluator_rate=res.evaluator["rate"], kappa=res.agreement["kappa"],
               loo_attributes=list(res.loo))
    return res


def dry_run_library(lib: Any, opts: PrefsOptions, price_model: str) -> dict[str, Any]:
    """`--dry-run`: rule-filter and split the prompts (no classifier call), sample personas, and estimate the
    calls, tokens and cost of this run and of the paper's full configuration; nothing is sent or written."""
    from personagen.prefs.estimate import dry_run
    from personagen.prefs.profile import attributes
    from personagen.prefs.prompts import prompt_id, read_prompts, rule_filter, split_by_topic

    raw, _info = read_prompts(opts.curate)
    df, counts = rule_filter(raw, opts.curate.min_words)
    if opts.curate.limit is not None:  # as curate(): the classifier sees at most --prompt-limit prompts
        df = df.head(opts.curate.limit)
    if df.height == 0:
        raise BadInput(f"--prompts {opts.curate.source}: no prompt survives the rule filter ({counts})")
    df = split_by_topic(df, opts.curate.heldout_fraction, opts.curate.seed)
    personas = lib.personas()
    ids = sample_personas(personas["persona_id"].to_list(), opts.pairs.personas, opts.pairs.seed)
    profiles = persona_profiles(personas.filter(pl.col("persona_id").is_in(ids[:64])), opts.profile,
                                opts.templates)
    n_base = None
    if opts.pairs.base_per_prompt:  # one base answer per distinct planned prompt (the rest are cache hits)
        with_ids = df.with_columns(pl.col("prompt").map_elements(prompt_id, return_dtype=pl.String).alias("prompt_id"))
        n_base = plan_pairs(ids, with_ids, opts.pairs)["prompt_id"].n_unique()
    est = dry_run(df, list(profiles.values()), len(ids), opts.pairs, price_model, opts.templates,
                  judge=[attributes(r) for r in personas.head(64).iter_rows(named=True)],
                  n_judged=personas.height if opts.consistency_judge else 0,
                  n_classified=df.height if opts.curate.classify else 0, n_base=n_base)
    notes = ["the classifier keeps an unknown share of prompts; this run's figures assume it keeps them all "
             "(an upper bound)" if opts.curate.classify else "classifier off (--no-classify)"]
    if opts.consistency_judge:
        notes.append(f"the consistency judge asks about all {personas.height:,} personas of the library; the "
                     "pairs assume it keeps them all (the paper removed about 8.5%)")
    return {**est, "curation": counts, "note": "; ".join(notes)}
