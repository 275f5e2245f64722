"""The prompt-mixture stage's library command: a weighted set of system prompts whose answers match a target.

Paper 001 (distributional alignment with system-prompt mixtures) models a population's answers in a social
scenario as a mixture of the model's answers under K system prompts with weights on the simplex. The search
algorithms (EM, Alg. 1; gradient boosting, Alg. 2) and the SLSQP weight fit live in
personagen.mixture.algorithms; the two LLM primitives of Appendix A.3 (CraftSystemPrompt, GenerateSamples)
are `Primitives` here; the scenarios (Big Five on the 10-50 sum scale, MobLab games) in scenarios.py.

The target is one numeric column of a table, or (--ipip-domain E|N|A|C|O) each respondent's Big Five domain
score from IPIP 50-item responses (personagen.mixture.ipip), on the paper's 10-50 sum scale.

The result is a persona library (source = "mixture", text_narrative = the system prompt) plus a
calibration LIB/calibrations/<name>/ (weights.parquet, report.json in the calibration contract format).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen import llm as llmio
from personagen.calibration_report import CalibrationReport, weights_summary, write_report
from personagen.errors import BadInput
from personagen.llm import clean_text
from personagen.mixture.algorithms import MixtureOptions, MixtureResult, run_search, wasserstein1
from personagen.mixture.scenarios import Scenario, big5_scenario, read_table
from personagen.options import options_record, stage_options

METHODS = ("em", "gb")


# ---- target -------------------------------------------------------------------------------------------
def load_target(path: str | os.PathLike, column: str | None = None) -> tuple[np.ndarray, str]:
    """Numeric values of one column of a CSV/TSV/parquet file (nulls dropped); BadInput naming the problem."""
    p = Path(path)
    df = read_table(p)
    if column is None:
        nums = [c for c, t in df.schema.items() if t.is_numeric()]
        if len(nums) != 1:
            raise BadInput(f"{p}: has {len(nums)} numeric columns ({', '.join(nums[:8])}); choose one with --column")
        column = nums[0]
    if column not in df.columns:
        raise BadInput(f"{p}: no column {column!r} (columns: {', '.join(df.columns[:12])})")
    s = df[column]
    if not s.dtype.is_numeric():
        s = s.cast(pl.Float64, strict=False)
    v = s.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
    if v.size < 2:
        raise BadInput(f"{p}: column {column!r} has fewer than 2 numeric values")
    return v.astype(float), column


def load_ipip_target(path: str | os.PathLike, domain: str) -> tuple[np.ndarray, str, dict]:
    """Big Five domain scores (1-5 keyed item means, see personagen.mixture.ipip) of an IPIP item-response table.

    Returns (scores of respondents with all 10 items of the domain answered, label "ipip:D", info dict with
    domain, name, n_rows, n_scored, n_dropped).
    """
    from personagen.mixture import ipip

    keys = ipip.load_keys()
    letter = ipip.parse_domain(domain, keys)  # before reading: a bad domain fails fast
    p = Path(path)
    df = read_table(p)
    try:
        s = ipip.score_domain(df, letter, keys)
    except BadInput as e:
        raise BadInput(f"{p}: {e}") from None
    v = s.drop_nulls().to_numpy().astype(float)
    if v.size < 2:
        raise BadInput(f"{p}: fewer than 2 respondents answered every IPIP {letter} item")
    info = {"domain": letter, "name": keys["domains"][letter], "n_rows": df.height, "n_scored": int(v.size),
            "n_dropped": int(df.height - v.size), "scale": [keys["scale"]["min"], keys["scale"]["max"]],
            "keys": "census/priors/ipip_big5_keys.yaml"}
    return v, f"ipip:{letter}", info


# ---- LLM primitives (paper 001, Appendix A.3) ------------------------------------------------------------
class Primitives:
    """CraftSystemPrompt (crafting + improving, A.3.1) and GenerateSamples (A.3.2) for one scenario, with
    failure counters. Samples are asked with the scenario's question as the user prompt and z as the system
    prompt; invalid answers are counted and re-asked up to `max_retries` rounds, never fatal."""

    def __init__(self, client: Any, scenario: Scenario, *, templates: Any = None, max_retries: int = 2,
                 seed: int = 0, prompt_tokens: int = 120, tolerance: float = 0.05):
        self.c, self.sc = client, scenario
        self.lo, self.hi = scenario.lo, scenario.hi
        self.prompt_tokens, self.tolerance = prompt_tokens, tolerance
        self.templates, self.max_retries, self.seed = templates, max_retries, seed
        self.sample_tokens = 40 if scenario.signs else 8
        self.counts = {"craft_calls": 0, "improve_calls": 0, "prompt_fallbacks": 0, "sample_calls": 0,
                       "invalid_samples": 0}

    def _fmt(self, v: float) -> str:
        return f"{v:.4g}"

    def default_prompt(self) -> str:
        """z0 of Alg. 2 and the "Fixed System Prompt" baseline (paper 001, Appendix B.2)."""
        return self.sc.fixed_prompt

    def _prompt_or_fallback(self, text: str | None, value: float) -> str:
        p = clean_text(text, max_chars=700)
        if len(p.split()) < 4:
            self.counts["prompt_fallbacks"] += 1
            return llmio.prompt("mixture/fallback.j2", self.templates, question=self.sc.question,
                                value=self._fmt(value))
        return p

    def craft(self, values: list[float], keys: list[object]) -> list[str]:
        """Crafting stage; the request seed depends on (key, value) only, so the same aim gives the same prompt."""
        reqs = [llmio.request(llmio.prompt("mixture/craft.j2", self.templates, question=self.sc.question,
                                           value=self._fmt(v)),
                              temperature=0.9, max_tokens=self.prompt_tokens,
                              seed=llmio.seed_of("craft", self.seed, k, v))
                for k, v in zip(keys, values)]
        self.counts["craft_calls"] += len(reqs)
        return [self._prompt_or_fallback(t, v) for t, v in zip(llmio.texts(self.c, reqs, "mixture-craft"), values)]

    def improve(self, prompts: list[str], values: list[float], observed: list[np.ndarray]) -> list[str]:
        """Improving stage: "a chatbot outputs mostly [sampled behavior] instead of [desired behavior]"."""
        reqs = []
        for p, v, o in zip(prompts, values, observed):
            obs = llmio.prompt("mixture/observed.j2", self.templates,
                               mean=self._fmt(float(np.median(o))) if o.size else None,
                               lo=self._fmt(float(o.min())) if o.size else None,
                               hi=self._fmt(float(o.max())) if o.size else None)
            reqs.append(llmio.request(llmio.prompt("mixture/improve.j2", self.templates, question=self.sc.question,
                                                   prompt=p, value=self._fmt(v), observed=obs),
                                      temperature=0.9, max_tokens=self.prompt_tokens,
                                      seed=llmio.seed_of("improve", self.seed, p, v)))
        self.counts["improve_calls"] += len(reqs)
        outs = llmio.texts(self.c, reqs, "mixture-improve")
        return [self._prompt_or_fallback(t, v) if t else p for t, v, p in zip(outs, values, prompts)]

    def _missed(self, s: np.ndarray, v: float) -> bool:
        return not s.size or abs(float(np.median(s)) - v) > self.tolerance * (self.hi - self.lo)

    def craft_system_prompt(self, values: list[float], keys: list[object], n: int, improve_rounds: int
                            ) -> tuple[list[str], list[np.ndarray]]:
        """A.3.1: craft a prompt per desired value; while its n samples miss the value (median off by more than
        `tolerance` of the range), improve it, up to `improve_rounds` times. Returns prompts and samples."""
        prompts = self.craft(values, keys)
        smp = self.samples(prompts, n)
        for _ in range(improve_rounds):
            miss = [i for i, (s, v) in enumerate(zip(smp, values)) if self._missed(s, v)]
            if not miss:
                break
            better = self.improve([prompts[i] for i in miss], [values[i] for i in miss], [smp[i] for i in miss])
            for i, p, s in zip(miss, better, self.samples(better, n)):
                if s.size and (self._missed(smp[i], values[i]) or abs(np.median(s) - values[i]) <
                               abs(np.median(smp[i]) - values[i])):
                    prompts[i], smp[i] = p, s
        return prompts, smp

    def samples(self, prompts: list[str], n: int | list[int], salt: object = "train") -> list[np.ndarray]:
        """GenerateSamples (A.3.2): n valid answers per prompt (or n[i] for prompt i)."""
        ns = [n] * len(prompts) if isinstance(n, int) else list(n)
        got: list[list[float]] = [[] for _ in prompts]
        for attempt in range(self.max_retries + 1):
            todo = [(i, j) for i in range(len(prompts)) for j in range(len(got[i]), ns[i])]
            if not todo:
                break
            reqs = [llmio.request(self.sc.question, system=prompts[i], temperature=1.0, max_tokens=self.sample_tokens,
                                  seed=llmio.seed_of("sample", salt, prompts[i], j, attempt)) for i, j in todo]
            self.counts["sample_calls"] += len(reqs)
            for (i, _), t in zip(todo, llmio.texts(self.c, reqs, "mixture-sample")):
                v = self.sc.parse(t)
                if v is None:
                    self.counts["invalid_samples"] += 1
                else:
                    got[i].append(v)
        return [np.asarray(g, dtype=float) for g in got]


def search(client: Any, target: np.ndarray, scenario: Scenario, opts: MixtureOptions, *, templates: Any = None,
           max_retries: int = 2, prompt_tokens: int = 120) -> tuple[MixtureResult, Primitives]:
    """Run the EM or GB search of paper 001 for one scenario; returns the result and the primitives (counters)."""
    prim = Primitives(client, scenario, templates=templates, max_retries=max_retries, seed=opts.seed,
                      prompt_tokens=prompt_tokens)
    return run_search(prim, target, opts), prim


def generic_scenario(question: str, lo: float, hi: float, templates: Any = None) -> Scenario:
    """A scenario for any numeric target column: the question plus the answer range (templates/mixture/sample.j2)."""
    q = llmio.prompt("mixture/sample.j2", templates, question=question, lo=f"{lo:.4g}", hi=f"{hi:.4g}")
    return Scenario("custom", q, lo, hi, llmio.prompt("mixture/fixed_prompt.j2", templates))


# ---- library output ------------------------------------------------------------------------------------
def _metric(samples: list[np.ndarray], w: np.ndarray, target: np.ndarray, span: float, rng: np.random.Generator,
            n_boot: int = 200) -> dict:
    """Normalised W1 ("wd") with a bootstrap CI over the target values."""
    if not any(s.size for s in samples) or target.size == 0:
        return {"value": None, "ci_low": None, "ci_high": None}
    v = wasserstein1(samples, w, target) / span
    boots = [wasserstein1(samples, w, target[rng.integers(0, target.size, target.size)]) / span
             for _ in range(n_boot)]
    return {"value": v, "ci_low": float(np.quantile(boots, 0.025)), "ci_high": float(np.quantile(boots, 0.975))}


def _target(target_path: Any, column: str | None, question: str | None, ipip_domain: str | None,
            value_range: tuple[float, float] | None, templates: Any) -> tuple[np.ndarray, str, Scenario, dict | None]:
    """The target values, their label, the scenario asked and (IPIP) the scoring info."""
    if ipip_domain is not None:
        if column is not None:
            raise BadInput("--column and --ipip-domain are exclusive: the IPIP score is computed from the items")
        values, label, scoring = load_ipip_target(target_path, ipip_domain)
        return values * 10.0, label, big5_scenario(ipip_domain, templates), scoring  # 10-50 sum scale
    values, label = load_target(target_path, column)
    lo, hi = value_range if value_range else (float(values.min()), float(values.max()))
    q = question or llmio.prompt("mixture/default_question.j2", templates, column=label)
    return values, label, generic_scenario(q, lo, hi, templates), None


def _open_library(out: Any, seed: int) -> tuple[Any, bool]:
    from personagen.library import Library
    from personagen.store import staged_dir

    outp = Path(out)
    if (outp / "manifest.json").is_file():
        return Library.open(outp), False
    with staged_dir(outp) as tmp:
        Library.init(tmp, seed=seed, config={"created_by": "mixture"})
    return Library.open(outp), True


def _write_personas(lib: Any, res: MixtureResult, prefix: str, method: str, label: str) -> list[str]:
    """The mixture's prompts as personas (source "mixture"); a rerun replaces its own rows."""
    k = len(res.prompts)
    ids = [f"{prefix}-{i:02d}" for i in range(k)]
    new = pl.DataFrame({
        "persona_id": ids, "source": ["mixture"] * k, "mode": [f"mixture:{method}"] * k, "enriched": [False] * k,
        "weight_census": pl.Series([None] * k, dtype=pl.Float64), "text_narrative": res.prompts,
        "mixture_target": [label] * k, "mixture_aim": [None if a is None else float(a) for a in res.aims],
        "mixture_samples": [json.dumps(s.tolist()) for s in res.samples],
    }, schema_overrides={"weight_census": pl.Float64})
    lib.upsert_personas(new, replace_prefix=prefix)  # re-read under the lock: others' rows stay
    return ids


def _split_metrics(res: MixtureResult, splits: dict[str, np.ndarray], lo: float, hi: float, seed: int
                   ) -> tuple[dict, dict]:
    """Normalised W1 of the mixture and of the equal-weight / uniform-distribution baselines per split."""
    span, brng, smp = hi - lo, np.random.default_rng(seed + 1), res.samples
    uni_w = np.array([1.0 if s.size else 0.0 for s in smp])
    uni_w = uni_w / uni_w.sum() if uni_w.sum() else uni_w
    grid = [np.linspace(lo, hi, 101)]
    metrics = {sp: {"wd": _metric(smp, res.weights, tv, span, brng)} for sp, tv in splits.items()}
    baselines = {"uniform_average": {sp: {"wd": _metric(smp, uni_w, tv, span, brng)} for sp, tv in splits.items()},
                 "uniform_distribution": {sp: {"wd": _metric(grid, np.ones(1), tv, span, brng)}
                                          for sp, tv in splits.items()}}
    return metrics, baselines


def _report_md(name: str, method: str, target: str, question: str, ids: list[str], res: MixtureResult,
               metrics: dict) -> str:
    md = [f"## Prompt mixture `{name}` ({method})", "", f"Target: {target}; question: {question}",
          "", "| persona | weight | aim | sample mean | prompt |", "|---|---|---|---|---|"]
    for pid, wk, a, s, p in zip(ids, res.weights, res.aims, res.samples, res.prompts):
        aim = "z0" if a is None else f"{a:.3g}"
        md.append(f"| {pid} | {wk:.3f} | {aim} | {(f'{s.mean():.3g}' if s.size else '—')} | "
                  f"{p[:80].replace('|', '/')} |")
    md += ["", "Normalised W1 (lower is better): " + ", ".join(
        f"{sp} {metrics[sp]['wd']['value']:.4f}" for sp in metrics if metrics[sp]['wd']['value'] is not None)]
    return "\n".join(md) + "\n"


@dataclass(frozen=True)
class MixtureRunOptions:
    """Every option of `mixture_library` (docs/design.md §3 `mixture`), validated once when built.

    The search's own options (method, components, iters, samples, weights, improve_rounds, seed) become a
    `MixtureOptions` (`search()`); backend/base_url/model/concurrency shape the client made when none is given.
    With ipip_domain (E|N|A|C|O) the target is each respondent's Big Five domain score on the paper's 10-50 sum
    scale and the model takes the domain's 10-item test (scenarios.big5_scenario). `components` None = the
    paper's K (EM 10, GB 200); `iters` caps the EM iterations (paper: 20)."""

    column: str | None = None
    question: str | None = None
    method: str = "em"
    components: int | None = None
    iters: int = 20
    samples: int = 10
    weights: str = "slsqp"
    improve_rounds: int = 1
    backend: str = "local"
    base_url: str | None = None
    model: str | None = None
    seed: int = 0
    name: str = "mixture"
    max_target: int = 2000
    test_fraction: float = 0.2
    templates: str | os.PathLike | None = None
    concurrency: int = 4
    value_range: tuple[float, float] | None = None
    prompt_tokens: int = 120
    ipip_domain: str | None = None

    def __post_init__(self) -> None:
        self.search()  # the search options' rules, once
        if self.max_target < 1:
            raise BadInput(f"max_target {self.max_target}: must be at least 1", field="max_target")
        if not 0 <= self.test_fraction < 1:
            raise BadInput(f"test_fraction {self.test_fraction}: must be in [0, 1)", field="test_fraction")
        if self.value_range is not None and not (len(self.value_range) == 2
                                                 and self.value_range[0] < self.value_range[1]):
            raise BadInput(f"value_range {self.value_range!r}: expected (LO, HI) with LO < HI", field="value_range")

    def search(self) -> MixtureOptions:
        return MixtureOptions(method=self.method, components=self.components, samples=self.samples,
                              max_iters=self.iters, weights=self.weights, improve_rounds=self.improve_rounds,
                              seed=self.seed)


def mixture_library(target_path: str | os.PathLike, out: str | os.PathLike, options: MixtureRunOptions | None = None,
                    *, client: Any = None, **deprecated: Any) -> CalibrationReport:
    """Search a prompt mixture for the target column and write it as a weighted persona library at `out`;
    returns the calibration's report (written to LIB/calibrations/NAME/report.json through `write_report`).

    options: a `MixtureRunOptions` (None: the defaults; keyword arguments instead are deprecated, one release),
    recorded whole in the manifest entry; `client` reuses an open LLM client (left open).
    """
    from personagen.store import atomic_write_parquet, now_iso

    o = stage_options(MixtureRunOptions, options, deprecated, "mixture_library")
    column, question, method, iters, samples, seed, name = o.column, o.question, o.method, o.iters, o.samples, \
        o.seed, o.name
    templates, value_range, ipip_domain, max_target, test_fraction = o.templates, o.value_range, o.ipip_domain, \
        o.max_target, o.test_fraction
    backend, base_url, model, concurrency, prompt_tokens = o.backend, o.base_url, o.model, o.concurrency, \
        o.prompt_tokens
    opts = o.search()
    values, column, scenario, scoring = _target(target_path, column, question, ipip_domain, value_range, templates)
    rng = np.random.default_rng(seed)
    if values.size > max_target:
        values = rng.choice(values, size=max_target, replace=False)
    perm = rng.permutation(values.size)
    n_test = int(round(test_fraction * values.size)) if values.size >= 10 else 0
    test, train = values[perm[:n_test]], values[perm[n_test:]]
    lib, created = _open_library(out, seed)
    t0 = time.time()
    with llmio.open_client(backend, base_url=base_url, model=model, cache_path=lib.llm_db, client=client,
                           concurrency=concurrency) as c:
        res, prim = search(c, train, scenario, opts, templates=templates, prompt_tokens=prompt_tokens)
        stats, mname = llmio.client_stats(c), llmio.model_name(c)
    seconds = round(time.time() - t0, 2)
    ids = _write_personas(lib, res, f"mixture-{method}-s{seed}", method, f"{Path(target_path).name}:{column}")
    w = np.asarray(res.weights, dtype=float)
    metrics, baselines = _split_metrics(res, {"train": train, **({"test": test} if test.size else {})},
                                        scenario.lo, scenario.hi, seed)
    cal = lib.calibration_dir(name)
    cal.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(cal / "weights.parquet", pl.DataFrame({"persona_id": ids, "weight": w.tolist()},
                                                               schema={"persona_id": pl.String, "weight": pl.Float64}))
    report = CalibrationReport(
        name=name, method=f"mixture-{method}", created=now_iso(), **weights_summary(w), solver=opts.weights,
        solver_seconds=seconds, metrics=metrics, baselines=baselines, model=mname, llm=stats,
        target={"file": str(target_path), "column": column, "n_train": int(train.size), "n_test": int(test.size),
                "lo": scenario.lo, "hi": scenario.hi, "question": scenario.question, "scoring": scoring},
        mixture={"components": opts.k, "iters": iters, "samples": samples, "history": res.history,
                 "converged": res.converged, "weights_fit": opts.weights, "counts": prim.counts, "w1_train": res.w1})
    write_report(cal, report, _report_md(name, method, f"{target_path} column `{column}`", scenario.question, ids,
                                         res, metrics))
    _plot(res.samples, w, train, scenario.lo, scenario.hi, cal / "mixture.png")
    lib.record("mixture", target=str(target_path), column=column, method=method, components=opts.k,
               iters=iters, samples=samples, model=mname, calibration=name, created_library=created,
               options=options_record(o, llmio.redact))
    return report


def _plot(samples: list[np.ndarray], w: np.ndarray, target: np.ndarray, lo: float, hi: float, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    edges = np.linspace(lo, hi, 21)
    fig = Figure(figsize=(6, 3.5))  # its own Agg canvas: the caller's pyplot backend is left alone
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.hist(target, bins=edges, density=True, alpha=0.5, label="target")
    mix = sum(wk * np.histogram(s, bins=edges, density=True)[0] for wk, s in zip(w, samples) if s.size)
    if not np.isscalar(mix):
        ax.stairs(mix, edges, label="weighted mixture", linewidth=2)
    ax.set_xlabel("value")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
