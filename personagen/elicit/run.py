"""Survey conductor: every persona answers every question through personagen.llm.

Work is ordered persona-major (one persona's questions back to back, so the server reuses the persona's
prompt prefix). Finished answers are written as small part files under LIB/.responses/ while the run goes
and consolidated into LIB/responses.parquet at the end (and first thing on the next run after a kill), so a
killed run loses no finished answer; the SQLite cache makes the rerun send nothing twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from personagen.elicit.matching import MAX_OPTIONS, letter_distribution, letters_for, match_answer
from personagen.elicit.order import ORDERS, PositionBias, display_order, order_text, to_survey
from personagen.elicit.rescore import rescore_logprobs, with_validity
from personagen.elicit.summary import ElicitSummary
from personagen.errors import BadInput
from personagen.library import RESPONSE_SCHEMA, Library
from personagen.llm import (
    CONSTRAINTS,
    BudgetExceeded,
    Capability,
    ChatRequest,
    ChatResult,
    LLMClient,
    chat_body,
    constraint_body,
    detect,
    redact,
    singles,
    unwrap_answer,
)
from personagen.locking import library_lock, remove_stale
from personagen.options import options_record, stage_options
from personagen.personas import STYLES
from personagen.store import atomic_write_parquet
from personagen.surveys import SPLITS as SURVEY_SPLITS
from personagen.surveys import Survey, select_questions
from personagen.templating import get_template, template_hash

MODES = ("logprobs", "sample")
SPLITS = (*SURVEY_SPLITS, "all")  # the survey's splits, or every question
PARTS_DIR = ".responses"
KEY = ["persona_id", "survey_id", "qid", "model", "mode", "style"]
SYSTEM_T = "elicit/system.j2"
USER_T = "elicit/user.j2"
SAMPLE_MAX_TOKENS = 12  # a letter, or a short option text, on one line
JSON_MAX_TOKENS = 24  # a structured-output answer: {"answer": "B"} with a server's whitespace
TOP_LOGPROBS = 20  # the OpenAI API maximum (llama.cpp serves more)
OUT_SCHEMA: dict[str, pl.DataType] = {**RESPONSE_SCHEMA, "mass": pl.Float64, "raw": pl.String, "style": pl.String,
                                      "constrained": pl.Boolean, "option_order": pl.String}


def _keys(df: pl.DataFrame) -> pl.DataFrame:
    """KEY columns; answers recorded before the `style` column existed were elicited with the narrative text."""
    if "style" not in df.columns:
        df = df.with_columns(pl.lit("narrative").alias("style"))
    return df.with_columns(pl.col("style").fill_null("narrative")).select(KEY)


# ---- responses part files --------------------------------------------------------------------------------
def _parts_dir(lib: Library) -> Path:
    return lib.path / PARTS_DIR


def consolidate_parts(lib: Library) -> int:
    """Merge leftover part files into responses.parquet (skipping keys already there); returns rows added.

    Runs under the library lock, so concurrent runs consolidate one at a time and never add a key twice."""
    d = _parts_dir(lib)
    if not d.is_dir():
        return 0
    with library_lock(lib.path):
        return _consolidate_locked(lib, d)


def _consolidate_locked(lib: Library, d: Path) -> int:
    remove_stale(d.glob(".part-*.tmp"))  # writes interrupted by a kill (never a live run's temp file)
    parts = sorted(d.glob("part-*.parquet"))
    if not parts:
        return 0
    frames = []
    for i, p in enumerate(parts):
        try:
            frames.append(pl.read_parquet(p).with_columns(pl.lit(i).alias("_part")))
        except (OSError, pl.exceptions.PolarsError) as e:  # a torn leftover: its answers are still in the cache
            warnings.warn(f"{p}: unreadable response part dropped ({e.__class__.__name__})", stacklevel=2)
            continue
    added = 0
    if frames:
        new = pl.concat(frames, how="diagonal_relaxed")
        new = new.filter(pl.col("_part") == pl.col("_part").min().over(KEY)).drop("_part")
        old = lib.responses()
        if old.height:
            new = new.join(_keys(old).unique(), on=KEY, how="anti", nulls_equal=True)
        if new.height:
            lib.append_responses(new)
        added = new.height
    for p in parts:
        p.unlink(missing_ok=True)
    return added


def _write_part(lib: Library, rows: list[dict]) -> None:
    d = _parts_dir(lib)
    d.mkdir(exist_ok=True)
    df = pl.DataFrame(rows, schema=OUT_SCHEMA)
    atomic_write_parquet(d / f"part-{time.time_ns():020d}-{os.getpid()}.parquet", df)


def _done_keys(lib: Library, survey_id: str, model: str, mode: str, style: str
               ) -> set[tuple[str, str]]:
    """(persona_id, qid) already answered for this survey/model/mode/style (responses + unconsolidated parts)."""
    frames = [_keys(lib.responses())]
    d = _parts_dir(lib)
    for p in sorted(d.glob("part-*.parquet")) if d.is_dir() else []:
        try:
            frames.append(_keys(pl.read_parquet(p)))
        except FileNotFoundError:  # consolidated meanwhile by another run: its keys are redone from the cache
            continue
    f = pl.concat(frames).filter((pl.col("survey_id") == survey_id) & (pl.col("model") == model) &
                                 (pl.col("mode") == mode) & (pl.col("style") == style))
    return set(f.select("persona_id", "qid").iter_rows())


# ---- prompts ---------------------------------------------------------------------------------------------
def build_messages(persona_text: str, question: str, options: Sequence[str], *,
                   templates: str | os.PathLike | None = None) -> list[dict]:
    """The chat messages for one persona and question (system: persona + instruction; user: the question)."""
    sys_t, user_t = get_template(SYSTEM_T, templates), get_template(USER_T, templates)
    opts = [{"letter": letter, "text": o} for letter, o in zip(letters_for(len(options)), options)]
    return [{"role": "system", "content": sys_t.render(persona=persona_text).strip()},
            {"role": "user", "content": user_t.render(question=question, options=opts).strip()}]


# ---- answers -> rows -------------------------------------------------------------------------------------
def _row(pid: str, sid: str, qid: str, option: str | None, prob: float | None, mode: str, model: str, n: int,
         valid: bool, mass: float | None, raw: str | None, how: tuple[bool, str | None] = (False, None)) -> dict:
    return {"persona_id": pid, "survey_id": sid, "qid": qid, "option": option, "prob": prob, "mode": mode,
            "model": model, "n": n, "valid": valid, "mass": mass, "raw": raw, "constrained": how[0],
            "option_order": how[1]}


def logprob_rows(pid: str, sid: str, qid: str, options: list[str], res: ChatResult, model: str,
                 min_mass: float, *, order: Sequence[int] | None = None, constrained: bool = False) -> list[dict]:
    """One row per option (renormalised letter probabilities, covered letter mass in `mass`), valid when
    mass >= min_mass -- kept either way so the threshold can be re-applied later without a model call
    (personagen.elicit.rescore); one invalid row without options when no letter got any mass.

    `order`: the survey option shown at each letter (`elicit --option-order`); letter probabilities are mapped
    back to the survey's options. `constrained`: the request restricted the answer to the letters."""
    order = list(order) if order is not None else list(range(len(options)))
    how = (constrained, order_text(order))
    tops = res.top_logprobs[0] if res.top_logprobs else None
    probs, mass = letter_distribution(tops, len(options))
    if tops is None or mass <= 0.0:
        return [_row(pid, sid, qid, None, None, "logprobs", model, 1, False, mass, res.text, how)]
    ok = mass >= min_mass
    return [_row(pid, sid, qid, o, p, "logprobs", model, 1, ok, mass, None if ok else res.text, how)
            for o, p in zip(options, to_survey(probs, order))]


def sample_rows(pid: str, sid: str, qid: str, options: list[str], texts: list[str | None],
                model: str, *, order: Sequence[int] | None = None, constrained: bool = False
                ) -> tuple[list[dict], int]:
    """Rows for K sampled answers: prob = count/K per option; each unmatched answer an invalid row with its
    raw text. Returns (rows, number unmatched). `order`/`constrained`: as for `logprob_rows` (an answer's
    letter, or its text, is matched against the options as shown, then mapped back)."""
    order = list(order) if order is not None else list(range(len(options)))
    how = (constrained, order_text(order))
    shown = [options[i] for i in order]
    k = len(texts)
    counts = [0] * len(options)
    unmatched: list[str | None] = []
    for t in texts:
        j, _how = match_answer(unwrap_answer(t) if constrained else t, shown)
        if j is None:
            unmatched.append(t)
        else:
            counts[order[j]] += 1
    rows = []
    if sum(counts):
        rows = [_row(pid, sid, qid, o, c / k, "sample", model, k, True, None, None, how)
                for o, c in zip(options, counts)]
    rows += [_row(pid, sid, qid, None, 1 / k, "sample", model, k, False, None, t if t is not None else "", how)
             for t in unmatched]
    return rows, len(unmatched)


# ---- the stage -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ElicitOptions:
    """Every option of `elicit_library` (docs/design.md §3 `elicit`), validated once when built.

    backend/base_url/model/concurrency/fresh/budgets/prices/progress only shape the client that
    `elicit_library` creates when it is not handed one.
    """

    backend: str = "local"
    base_url: str | None = None
    model: str | None = None
    adapter: str | os.PathLike | None = None  # LoRA adapter folder (backend "hf")
    mode: str = "logprobs"
    samples: int = 1
    temperature: float = 1.0
    split: str = "all"
    limit: int | None = None
    max_questions: int | None = None
    questions: Sequence[str] | None = None  # only these question ids (surveys.select_questions)
    per_split: int | None = None  # N questions (seeded by `seed`) from each of train / valid / test
    concurrency: int = 4
    fresh: bool = False
    dry_run: bool = False
    min_mass: float = 0.5
    progress: bool = True
    templates: str | os.PathLike | None = None
    text_column: str = "text_narrative"
    style: str | None = None  # the rendered text the model sees (text_<style>); None: from text_column
    prices: str | os.PathLike | None = None
    max_requests: int | None = None
    max_tokens_budget: int | None = None
    seed: int = 0
    flush_every_s: float = 2.0
    persona_ids: Sequence[str] | None = None
    timeout: float = 120.0  # seconds per HTTP request (llm.client.DEFAULT_TIMEOUT_S); a timed-out one is resent once
    time_limit: float | None = None  # seconds for the whole run: then it stops, keeping what was paid (resumable)
    constrain: str = "auto"  # restrict answers to the option letters where the server can (llm.constrain)
    option_order: str = "given"  # given (the paper protocols' choice) | shuffle | reverse (elicit.order)
    show_prompt: int | None = None  # build the first N requests and return them; send and write nothing

    def __post_init__(self) -> None:
        checks = [  # (bad, the field, what is wrong): the message names the Python argument (the CLI shows its flag)
            (self.mode not in MODES, "mode", f"{self.mode!r}: expected one of {', '.join(MODES)}"),
            (self.split not in SPLITS, "split", f"{self.split!r}: expected one of {', '.join(SPLITS)}"),
            (self.samples < 1, "samples", f"{self.samples}: must be at least 1"),
            (self.limit is not None and self.limit < 1, "limit", f"{self.limit}: must be at least 1"),
            (self.max_questions is not None and self.max_questions < 1, "max_questions",
             f"{self.max_questions}: must be at least 1"),
            (not 0.0 <= self.min_mass <= 1.0, "min_mass", f"{self.min_mass}: must be between 0 and 1"),
            (self.temperature < 0, "temperature", f"{self.temperature}: must be nonnegative"),
            (not 0 < self.timeout < float("inf"), "timeout", f"{self.timeout}: must be a positive number of seconds"),
            (self.time_limit is not None and not 0 < self.time_limit < float("inf"), "time_limit",
             f"{self.time_limit}: must be a positive number of seconds"),
            (self.constrain not in CONSTRAINTS, "constrain",
             f"{self.constrain!r}: expected one of {', '.join(CONSTRAINTS)}"),
            (self.option_order not in ORDERS, "option_order",
             f"{self.option_order!r}: expected one of {', '.join(ORDERS)}"),
            (self.show_prompt is not None and self.show_prompt < 1, "show_prompt",
             f"{self.show_prompt}: must be at least 1"),
        ]
        for bad, name, why in checks:
            if bad:
                raise BadInput(f"{name} {why}", field=name)
        if isinstance(self.persona_ids, str):
            object.__setattr__(self, "persona_ids", (self.persona_ids,))
        if self.style is None:
            col = self.text_column
            object.__setattr__(self, "style", col[5:] if col.startswith("text_") else col)
        elif self.style not in STYLES:
            raise BadInput(f"style {self.style}: unknown style (choose from {', '.join(STYLES)})", field="style")
        else:
            object.__setattr__(self, "text_column", f"text_{self.style}")

    @property
    def k(self) -> int:
        """Answers per (persona, question): `samples` in sample mode (one request with the API's `n`), 1 for
        logprobs."""
        return self.samples if self.mode == "sample" else 1


@dataclass(frozen=True)
class _Work:
    """The persona-major work list: (persona, question) items, their requests (1 or K per item), option lists."""

    items: list[tuple[str, str]]
    requests: list[ChatRequest]
    options: dict[str, list[str]]
    skipped: int
    orders: list[list[int]]  # per item: the survey option shown at each letter
    kind: str | None = None  # the constraint the requests carry (llm.constrain), None: unconstrained
    messages: list[list[dict]] = dataclasses.field(default_factory=list)  # per item: its chat messages


def elicit_library(lib: Library, survey: Survey, options: ElicitOptions | None = None, *,
                   client: LLMClient | None = None, **deprecated: Any) -> ElicitSummary:
    """Ask every persona every selected question; append answers to LIB/responses.parquet; return an
    ElicitSummary, or raise ElicitFailed (its `summary` attached) when answers failed after retries.

    options: an `ElicitOptions` (None: the defaults; keyword arguments instead are deprecated, one release).
    The manifest entry records it whole (`options`, secrets redacted). `persona_ids` restricts the run to those personas (library order;
    `limit` then applies to them; an id not in the library is a BadInput). `client` reuses an already created
    (or open) LLMClient instead of creating one from backend/base_url/model/concurrency/fresh/budgets/prices/
    progress (those are then ignored; its own cache is used) and is left open for the caller to close.

    mode "logprobs": one request per (persona, question), max_tokens 1, distribution over option letters
    from the top-20 logprobs (renormalised; covered mass below `min_mass` -> invalid row).
    mode "sample": `samples` requests per (persona, question) with distinct seeds at `temperature`, matched to
    options (letter, exact text, fuzzy); unmatched answers are kept as invalid rows with the raw text.
    `constrain` "auto" restricts answers to the letters where the server can (probed once, llm.constrain);
    `option_order` shows the options as given, shuffled or reversed (answers mapped back, elicit.order);
    `show_prompt` N returns the first N requests (`prompts`) without sending or writing anything."""
    o = stage_options(ElicitOptions, options, deprecated, "elicit_library")
    personas = _select_personas(lib, o)
    qids = _select_questions(survey, o)
    hashes = {SYSTEM_T: template_hash(SYSTEM_T, o.templates), USER_T: template_hash(USER_T, o.templates)}
    own_client = client is None
    if client is None:
        client = LLMClient.create(backend=o.backend, base_url=o.base_url, model=o.model, cache_path=lib.llm_db,
                                  concurrency=o.concurrency, fresh=o.fresh, max_requests=o.max_requests,
                                  max_tokens_budget=o.max_tokens_budget, prices=o.prices, progress=o.progress,
                                  adapter=o.adapter, timeout=o.timeout, time_limit_s=o.time_limit)
    if o.show_prompt is not None:
        return ElicitSummary(**_show_prompts(personas, survey, qids, o, client))
    rescored = 0
    if not o.dry_run:
        lib.recover_runs()  # the history entry of a killed run (its answers are consolidated next)
        consolidate_parts(lib)
        if o.mode == "logprobs":  # the threshold is a scoring choice: re-apply it to stored answers
            rescored = rescore_logprobs(lib, survey.survey_id, client.model_name, o.min_mass).changed
    done = _done_keys(lib, survey.survey_id, client.model_name, o.mode, o.style)
    work = _work_list(personas, survey, qids, done, o)
    cap = _capability(client, o, own_client) if work.items else NONE_CAP
    work = _with_requests(work, o, cap.kind(o.mode), use_n=client.handles_n())
    summary = _new_summary(survey, client, o, personas.height, len(qids), work, rescored, cap)
    if o.dry_run:
        summary["estimate"] = client.estimate(work.requests)
        return ElicitSummary(**summary)
    if not work.requests:
        return ElicitSummary(**with_validity(lib, summary))
    t0 = time.perf_counter()
    stats0 = dict(client.stats)  # a reused client's earlier counts are not this run's
    stopped: BudgetExceeded | None = None
    refused = False  # a failure before any answer (unknown model, rejected key, full disk): nothing recorded
    entry = {**_entry(survey, client, o, hashes), "constraint": summary.get("constraint")}
    run = lib.begin_run("elicit", **entry, **_counts(summary))  # a kill -9 cannot lose the record

    def checkpoint() -> None:  # each flush of answers updates the pending record's counts
        _sync_stats(summary, client, stats0)
        lib.update_run(run, **_counts(summary))

    try:
        with client if own_client else contextlib.nullcontext(client):
            stopped = _collect(lib, client, survey.survey_id, work, o, summary, checkpoint)
    except BaseException:
        refused = summary["answers_written"] == 0 and client.stats["requests_sent"] == stats0.get("requests_sent", 0)
        raise
    finally:
        consolidate_parts(lib)
        _sync_stats(summary, client, stats0)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        if refused:
            lib.end_run(run)
        else:
            lib.record("elicit", run=run, **entry, **_counts(summary))
    if stopped is not None:
        raise stopped
    return ElicitSummary(**with_validity(lib, summary)).raise_for_errors()


NONE_CAP = Capability(None, None)


def _capability(client: LLMClient, o: ElicitOptions, own_client: bool) -> Capability:
    """What the server can constrain (probed once; nothing for --constrain none or a dry run)."""
    if o.constrain == "none" or o.dry_run:
        return NONE_CAP
    try:
        return detect(client)
    except BaseException:
        if own_client:
            client.close()
        raise


def _new_summary(survey: Survey, client: LLMClient, o: ElicitOptions, n_personas: int, n_questions: int,
                 work: _Work, rescored: int, cap: Capability) -> dict[str, Any]:
    return {
        "survey_id": survey.survey_id, "model": client.model_name, "backend": client.backend, "mode": o.mode,
        "style": o.style, "samples": o.k, "personas": n_personas, "questions": n_questions,
        "answers_skipped": work.skipped,
        "answers_todo": len(work.items), "requests": len(work.requests), "requests_sent": 0, "cache_hits": 0,
        "answers_written": 0, "rows_written": 0, "invalid": 0, "errors": 0, "input_tokens": 0,
        "output_tokens": 0, "cost_usd": 0.0, "http_requests": 0, "paid_calls": 0, "dry_run": o.dry_run,
        "estimate": None, "seconds": 0.0,
        "rescored": rescored, "constrain": o.constrain, "constraint": work.kind,
        "constraint_note": cap.note if o.constrain == "auto" and work.kind is None else None,
        "option_order": o.option_order, "position_bias": None, "mass_quantiles": None}


def _show_prompts(personas: pl.DataFrame, survey: Survey, qids: list[str], o: ElicitOptions,
                  client: LLMClient) -> dict[str, Any]:
    """The first N requests as they would be sent (bodies with messages and sampling parameters); nothing is
    sent, started or written. A constraint is probed only when a run starts, so it is described, not shown."""
    n = int(o.show_prompt or 0)
    work = _work_list(personas.head(n), survey, qids, set(), o)
    work = _with_requests(work, o, None, use_n=True)
    per = len(work.requests) // max(len(work.items), 1)
    shown = [{"persona_id": pid, "qid": q, "option_order": order_text(order),
              "request": chat_body(client.model, work.requests[i * per])}
             for i, ((pid, q), order) in enumerate(zip(work.items[:n], work.orders[:n]))]
    note = ("none" if o.constrain == "none" else "auto: the server is probed when a run starts; where it takes "
            "one, the request also carries a grammar (llama.cpp), guided_choice (vLLM) or a JSON-schema enum "
            "(structured outputs) restricting the answer to the option letters")
    return {"survey_id": survey.survey_id, "model": client.model_name, "backend": client.backend,
            "mode": o.mode, "show_prompt": n, "constrain": note, "prompts": shown}


def _select_personas(lib: Library, o: ElicitOptions) -> pl.DataFrame:
    personas = lib.personas()
    if o.text_column not in personas.columns and o.style in STYLES:
        built = [c[5:] for c in personas.columns if c.startswith("text_")]
        raise BadInput(f"{lib.personas_path}: the library has no {o.style} text (rendered: "
                       f"{', '.join(built) or 'none'}); rebuild with --style {o.style} or choose another --style")
    for col in ("persona_id", o.text_column):
        if col not in personas.columns:
            raise BadInput(f"{lib.personas_path}: no column {col!r} (the persona text used to elicit)")
    if o.persona_ids is not None:
        want = [str(p) for p in o.persona_ids]
        have = set(personas["persona_id"].to_list())
        missing = [p for p in want if p not in have]
        if missing:
            raise BadInput(f"{lib.personas_path}: no persona {missing[0]!r} (persona_ids)")
        personas = personas.filter(pl.col("persona_id").is_in(want))
    if o.limit is not None:
        personas = personas.head(o.limit)
    nulls = personas.filter(pl.col(o.text_column).is_null())
    if nulls.height:
        raise BadInput(f"{lib.personas_path}: persona {nulls['persona_id'][0]!r} has no {o.text_column}")
    return personas


def _select_questions(survey: Survey, o: ElicitOptions) -> list[str]:
    qids = select_questions(survey, split=o.split, questions=o.questions, per_split=o.per_split,
                            max_questions=o.max_questions, seed=o.seed)
    for q in qids:
        if len(survey.options(q)) > MAX_OPTIONS:
            raise BadInput(f"{survey.source}: question {q!r} has {len(survey.options(q))} options; "
                           f"at most {MAX_OPTIONS} can be lettered")
    return qids


def _work_list(personas: pl.DataFrame, survey: Survey, qids: list[str], done: set[tuple[str, str]],
               o: ElicitOptions) -> _Work:
    """Messages for every (persona, question) not answered yet, persona-major (the cache keeps prefixes warm),
    the options shown in the order `option_order` gives each persona and question."""
    sys_t, user_t = get_template(SYSTEM_T, o.templates), get_template(USER_T, o.templates)
    options = {q: survey.options(q) for q in qids}
    keep = {q: survey.keep_last(q) for q in qids}
    given: dict[str, str] = {}

    def user_text(pid: str, q: str, order: list[int]) -> str:
        if o.option_order == "given" and q in given:
            return given[q]
        opts = options[q]
        text = user_t.render(question=survey.question(q).text,
                             options=[{"letter": a, "text": opts[i]}
                                      for a, i in zip(letters_for(len(opts)), order)]).strip()
        if o.option_order == "given":
            given[q] = text
        return text

    items: list[tuple[str, str]] = []
    messages: list[list[dict]] = []
    orders: list[list[int]] = []
    skipped = 0
    for pid, text in personas.select("persona_id", o.text_column).iter_rows():
        system = {"role": "system", "content": sys_t.render(persona=text).strip()}
        for q in qids:
            if (pid, q) in done:
                skipped += 1
                continue
            order = display_order(options[q], o.option_order, o.seed, pid, q, keep_last=keep[q])
            items.append((pid, q))
            orders.append(order)
            messages.append([system, {"role": "user", "content": user_text(pid, q, order)}])
    return _Work(items, [], options, skipped, orders, messages=messages)


def _with_requests(work: _Work, o: ElicitOptions, kind: str | None, use_n: bool = True) -> _Work:
    """The requests of the work list (1 or K per item), carrying the constraint `kind` where it is not None.

    Sample mode: one request with the API's `n` per answer when `use_n`, else K seeded single requests."""
    requests: list[ChatRequest] = []
    for (_pid, q), msgs in zip(work.items, work.messages):
        extra = constraint_body(kind, letters_for(len(work.options[q])), o.mode) if kind else None
        if o.mode == "logprobs":
            requests.append(ChatRequest(messages=msgs, temperature=0.0, max_tokens=1, logprobs=True,
                                        top_logprobs=TOP_LOGPROBS, extra=extra))
        else:  # one request for the K answers (the API's `n`; K seeded calls where it is unsupported)
            structured = kind == "json_schema"
            one = ChatRequest(messages=msgs, temperature=o.temperature,
                              max_tokens=JSON_MAX_TOKENS if structured else SAMPLE_MAX_TOKENS,
                              seed=o.seed, stop=None if structured else ["\n"], n=o.k, extra=extra)
            requests.extend([one] if use_n else singles(one))
    return dataclasses.replace(work, requests=requests, kind=kind)


def _collect(lib: Library, client: LLMClient, sid: str, work: _Work, o: ElicitOptions, summary: dict[str, Any],
             checkpoint: Callable[[], None] | None = None) -> BudgetExceeded | None:
    """Run the requests; turn each finished item into response rows, flushed to part files every few seconds.

    Counts go into `summary` (with the position-bias figure and, for logprobs, the covered-mass quantiles);
    a budget stop is returned (the caller raises it once the run is recorded)."""
    per = len(work.requests) // max(len(work.items), 1)  # requests per answer: 1 (the API's `n`) or K singles
    pending: dict[int, list[ChatResult | None]] = {}
    buffer: list[dict] = []
    last_flush = time.perf_counter()
    tally = _Tally()

    def flush() -> None:
        nonlocal buffer, last_flush
        if buffer:
            _write_part(lib, buffer)
            summary["rows_written"] += len(buffer)
            buffer = []
            if checkpoint is not None:
                checkpoint()
        last_flush = time.perf_counter()

    try:
        for i, res in client.run_iter(work.requests, desc=f"elicit {o.mode}"):
            got = pending.setdefault(i // per, [None] * per)
            got[i % per] = res
            if any(r is None for r in got):
                continue
            del pending[i // per]
            errs = [r.error for r in got if r.error and not r.invalid]
            if errs:
                summary["errors"] += 1
                summary.setdefault("first_error", errs[0])
                continue
            rows = _item_rows(work, i // per, got, o, client.model_name, sid, summary, tally)
            buffer.extend({**r, "style": o.style} for r in rows)
            summary["answers_written"] += 1
            if time.perf_counter() - last_flush >= o.flush_every_s:
                flush()
    except BudgetExceeded as e:
        return e
    finally:
        flush()
        summary["position_bias"] = tally.bias.summary()
        summary["mass_quantiles"] = tally.mass_quantiles()
    return None


@dataclass
class _Tally:
    """What a run's summary reports beyond counts: first-letter answers and logprob answers' covered mass."""

    bias: PositionBias = dataclasses.field(default_factory=PositionBias)
    masses: list[float] = dataclasses.field(default_factory=list)

    def mass_quantiles(self) -> dict[str, float] | None:
        if not self.masses:
            return None
        m = sorted(self.masses)
        at = {"min": 0.0, "p01": 0.01, "p05": 0.05, "p25": 0.25, "median": 0.5}
        return {k: round(m[min(len(m) - 1, int(q * len(m)))], 4) for k, q in at.items()} | {"n": len(m)}


def _item_rows(work: _Work, idx: int, got: list[ChatResult], o: ElicitOptions, model_name: str, sid: str,
               summary: dict[str, Any], tally: _Tally) -> list[dict]:
    """The response rows of one finished (persona, question); counts invalid answers and feeds the tally."""
    pid, q = work.items[idx]
    how = {"order": work.orders[idx], "constrained": work.kind is not None}
    bad = [r.invalid for r in got if r.invalid]  # paid, body unusable: kept as invalid rows with the reason
    shown = (how["constrained"], order_text(list(how["order"]) if how["order"] is not None
                                            else list(range(len(work.options[q])))))
    if bad and (o.mode == "logprobs" or len(got) == 1):
        summary["invalid"] += 1 if o.mode == "logprobs" else o.k
        return [_row(pid, sid, q, None, None if o.mode == "logprobs" else 1.0, o.mode, model_name,
                     1 if o.mode == "logprobs" else o.k, False, None, bad[0], shown)]
    if o.mode == "logprobs":
        rows = logprob_rows(pid, sid, q, work.options[q], got[0], model_name, o.min_mass, **how)
        summary["invalid"] += int(not rows[0]["valid"])
        tally.masses.append(rows[0]["mass"] or 0.0)
    else:
        texts = _texts([r for r in got if not r.invalid], o.k)
        rows, unmatched = sample_rows(pid, sid, q, work.options[q], texts + [None] * len(bad), model_name, **how)
        if bad:  # the unusable answers' rows say why, instead of an empty text
            rows = [r for r in rows if r["valid"]] + [r for r in rows if not r["valid"]][:unmatched - len(bad)]
            rows += [_row(pid, sid, q, None, 1 / o.k, "sample", model_name, o.k, False, None, why, shown)
                     for why in bad]
        summary["invalid"] += unmatched
    probs = [r["prob"] for r in rows if r["option"] is not None and r["valid"]]
    if probs and sum(probs) > 0:
        tally.bias.add(q, work.orders[idx][0], [p / sum(probs) for p in probs])
    return rows


def _texts(got: list[ChatResult], k: int) -> list[str | None]:
    """The K sampled answers of one item: one result's `n` completions, or K single results."""
    if len(got) == 1 and k > 1 and got[0].texts is not None:
        return list(got[0].texts)
    return [r.text for r in got]


_COUNTS = ("answers_written", "invalid", "errors", "requests_sent", "cache_hits", "input_tokens", "output_tokens",
           "cost_usd")


def _entry(survey: Survey, client: LLMClient, o: ElicitOptions, hashes: dict[str, str]) -> dict[str, Any]:
    """The manifest history entry of an elicit run, less its counts (no credentials: the base URL loses any
    user:password@ part)."""
    backend = client.backend
    return dict(survey_id=survey.survey_id, survey_source=str(survey.source), backend=backend,
                base_url=_public_url(client.base_url) if backend != "local" else None, model=client.model_name,
                model_identity=client.identity, mode=o.mode, samples=o.k,
                temperature=o.temperature if o.mode == "sample" else 0.0, split=o.split, limit=o.limit,
                max_questions=o.max_questions, questions=list(o.questions) if o.questions else None,
                per_split=o.per_split, min_mass=o.min_mass, text_column=o.text_column, style=o.style,
                templates=hashes, constrain=o.constrain, option_order=o.option_order,
                options=options_record(o, redact, leave_out=("progress",)))


def _counts(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in _COUNTS}


def _sync_stats(summary: dict[str, Any], client: LLMClient, stats0: dict[str, Any]) -> None:
    """This run's share of the client's counters (a reused client's earlier counts are not this run's)."""
    st = client.stats
    for key in ("requests_sent", "cache_hits", "input_tokens", "output_tokens", "cost_usd", "http_requests",
                "paid_calls"):
        summary[key] = st.get(key, 0) - stats0.get(key, 0)


def _public_url(url: str | None) -> str | None:
    """The URL without any user:password@ part (never record credentials)."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    host = u.hostname or ""
    netloc = host + (f":{u.port}" if u.port else "")
    return urlunsplit((u.scheme, netloc, u.path, "", ""))


def check_errors(summary: ElicitSummary | dict[str, Any]) -> None:
    """Raise ElicitFailed (a PersonagenError) when requests failed (finished answers are already saved)."""
    s = summary if isinstance(summary, ElicitSummary) else ElicitSummary(**summary)
    s.raise_for_errors()
