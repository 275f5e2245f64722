"""Prompt-mixture search: a weighted set of system prompts whose answers match a scalar target distribution.

The prompt-mixture approach models a population's answer distribution to one numeric question (a Big Five
domain score, a dictator-game offer, ...) as a mixture Σ_k π_k P(y | system prompt s_k) of what the model
answers under K system prompts, with weights π on the simplex, and searches the prompts with two outer
loops built from three primitives:

- CraftSystemPrompt: *craft* a persona prompt aimed at a target value (templates/mixture/craft.j2) and
  *improve* one given the answers it produced (templates/mixture/improve.j2);
- GenerateSamples: ask the model the question S times under a prompt and parse numbers robustly
  (invalid answers are counted and retried, never fatal) (templates/mixture/sample.j2);
- the loss: Wasserstein-1 between the π-weighted mixture of the sample distributions and the target's
  empirical distribution, W1 = ∫ |F_mix(x) − F_target(x)| dx. W1 is convex in π, so π is fitted by
  exponentiated gradient on the simplex (∂W1/∂π_k = ∫ sign(F_mix − F_target) F_k dx).

Methods:
- em: start from K prompts crafted at the target's K quantile midpoints; each iteration samples, fits π,
  computes responsibilities r_nk ∝ π_k N(y_n; μ_k, σ_k) of the target values (E-step), and moves every
  prompt toward its responsibility-weighted target mean with an improve call (M-step); the best
  iteration (lowest W1) is kept;
- gb (gradient boosting): add one prompt per round aimed at the region where the target has the most
  mass the current mixture lacks (largest positive histogram residual), improve it up to iters − 1 times
  while its mean misses the aim, then refit π over all prompts.

The target is one numeric column of a table, or (ipip_domain / --ipip-domain E|N|A|C|O) each respondent's
Big Five domain score computed from IPIP 50-item responses (personagen.mixture.ipip; range 1-5).

The result is a persona library (source = "mixture", text_narrative = the system prompt) plus a
calibration LIB/calibrations/<name>/ (weights.parquet, report.json in the calibration contract format).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen import llm as llmio
from personagen.errors import BadInput
from personagen.llm import clean_text, parse_number

METHODS = ("em", "gb")


# ---- target -------------------------------------------------------------------------------------------
def _read_table(path: str | os.PathLike) -> pl.DataFrame:
    """A CSV/TSV (separator sniffed from the header line) or parquet file; BadInput naming the problem."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: target file does not exist")
    try:
        if p.suffix == ".parquet":
            return pl.read_parquet(p)
        with open(p, encoding="utf-8", errors="replace") as fh:
            head = fh.readline()
        sep = "\t" if head.count("\t") > head.count(",") else ","
        return pl.read_csv(p, separator=sep, infer_schema_length=10000, null_values=["", "NA", "N/A", "null"])
    except Exception as e:  # noqa: BLE001 - any decode failure is bad input
        raise BadInput(f"{p}: cannot read target table ({type(e).__name__})") from None


def load_target(path: str | os.PathLike, column: str | None = None) -> tuple[np.ndarray, str]:
    """Numeric values of one column of a CSV/TSV/parquet file (nulls dropped); BadInput naming the problem."""
    p = Path(path)
    df = _read_table(p)
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
    df = _read_table(p)
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


# ---- Wasserstein-1 on the line and simplex weights ---------------------------------------------------------
def _cdfs(samples: list[np.ndarray], target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.unique(np.concatenate([target, *[s for s in samples if s.size]]))
    fk = np.stack([np.searchsorted(np.sort(s), grid, side="right") / s.size if s.size else np.zeros(grid.size)
                   for s in samples]) if samples else np.zeros((0, grid.size))
    ft = np.searchsorted(np.sort(target), grid, side="right") / target.size
    return fk[:, :-1], ft[:-1], np.diff(grid)


def wasserstein1(samples: list[np.ndarray], weights: np.ndarray, target: np.ndarray) -> float:
    """W1 between the weighted mixture of empirical sample distributions and the target's empirical one."""
    fk, ft, dx = _cdfs(samples, target)
    if dx.size == 0:
        return 0.0
    return float((dx * np.abs(np.asarray(weights) @ fk - ft)).sum())


def fit_simplex_weights(samples: list[np.ndarray], target: np.ndarray, *, iters: int = 400,
                        step: float = 1.0) -> tuple[np.ndarray, float]:
    """Minimise W1 over π on the simplex by exponentiated gradient (best iterate kept).

    Components without samples get weight 0. Gradient g_k = Σ_j dx_j sign(F_mix − F_t)_j F_k,j, scaled by
    the target range; step size step/√t.
    """
    k = len(samples)
    ok = np.array([s.size > 0 for s in samples])
    if not ok.any():
        return np.full(k, 1.0 / k) if k else np.zeros(0), float("nan")
    fk, ft, dx = _cdfs(samples, target)
    scale = max(dx.sum(), 1e-12)
    w = np.where(ok, 1.0, 0.0)
    w /= w.sum()
    best_w, best = w.copy(), float((dx * np.abs(w @ fk - ft)).sum())
    for t in range(1, iters + 1):
        diff = w @ fk - ft
        g = fk @ (dx * np.sign(diff)) / scale
        w = w * np.exp(-step / np.sqrt(t) * (g - g[ok].min()))
        w = np.where(ok, w, 0.0)
        w /= w.sum()
        loss = float((dx * np.abs(w @ fk - ft)).sum())
        if loss < best - 1e-15:
            best, best_w = loss, w.copy()
    return best_w, best


# ---- LLM primitives ------------------------------------------------------------------------------------------
class Primitives:
    """CraftSystemPrompt (craft/improve) and GenerateSamples over one client, with failure counters."""

    def __init__(self, client: Any, *, question: str, lo: float, hi: float, templates: Any = None,
                 max_retries: int = 2, seed: int = 0, prompt_tokens: int = 120):
        self.c, self.question, self.lo, self.hi = client, question, lo, hi
        self.prompt_tokens = prompt_tokens
        self.templates, self.max_retries, self.seed = templates, max_retries, seed
        self.counts = {"craft_calls": 0, "improve_calls": 0, "prompt_fallbacks": 0, "sample_calls": 0,
                       "invalid_samples": 0}

    def _fmt(self, v: float) -> str:
        return f"{v:.4g}"

    def _prompt_or_fallback(self, text: str | None, value: float) -> str:
        p = clean_text(text, max_chars=700)
        if len(p.split()) < 4:
            self.counts["prompt_fallbacks"] += 1
            return llmio.prompt("mixture/fallback.j2", self.templates, question=self.question,
                                value=self._fmt(value))
        return p

    def craft(self, values: list[float], salt: object = 0) -> list[str]:
        reqs = [llmio.request(llmio.prompt("mixture/craft.j2", self.templates, question=self.question,
                                           value=self._fmt(v), lo=self._fmt(self.lo), hi=self._fmt(self.hi)),
                              temperature=0.9, max_tokens=self.prompt_tokens, seed=llmio.seed_of("craft", self.seed, salt, i, v))
                for i, v in enumerate(values)]
        self.counts["craft_calls"] += len(reqs)
        return [self._prompt_or_fallback(t, v) for t, v in zip(llmio.texts(self.c, reqs, "mixture-craft"), values)]

    def improve(self, prompts: list[str], values: list[float], observed: list[np.ndarray], salt: object = 0
                ) -> list[str]:
        reqs = []
        for i, (p, v, o) in enumerate(zip(prompts, values, observed)):
            obs = llmio.prompt("mixture/observed.j2", self.templates,
                               mean=self._fmt(float(np.mean(o))) if o.size else None,
                               lo=self._fmt(float(o.min())) if o.size else None,
                               hi=self._fmt(float(o.max())) if o.size else None)
            reqs.append(llmio.request(llmio.prompt("mixture/improve.j2", self.templates, question=self.question,
                                                   prompt=p, value=self._fmt(v), observed=obs,
                                                   lo=self._fmt(self.lo), hi=self._fmt(self.hi)),
                                      temperature=0.9, max_tokens=self.prompt_tokens,
                                      seed=llmio.seed_of("improve", self.seed, salt, i, p)))
        self.counts["improve_calls"] += len(reqs)
        outs = llmio.texts(self.c, reqs, "mixture-improve")
        return [self._prompt_or_fallback(t, v) if t else p for t, v, p in zip(outs, values, prompts)]

    def samples(self, prompts: list[str], n: int) -> list[np.ndarray]:
        """n parsed numbers in [lo, hi] per prompt; invalid answers are retried up to max_retries rounds."""
        got: list[list[float]] = [[] for _ in prompts]
        user = llmio.prompt("mixture/sample.j2", self.templates, question=self.question,
                            lo=self._fmt(self.lo), hi=self._fmt(self.hi))
        for attempt in range(self.max_retries + 1):
            todo = [(i, j) for i in range(len(prompts)) for j in range(n - len(got[i]))]
            if not todo:
                break
            reqs = [llmio.request(user, system=prompts[i], temperature=1.0, max_tokens=8,
                                  seed=llmio.seed_of("sample", prompts[i], j, attempt)) for i, j in todo]
            self.counts["sample_calls"] += len(reqs)
            for (i, _), t in zip(todo, llmio.texts(self.c, reqs, "mixture-sample")):
                v = parse_number(t, lo=self.lo, hi=self.hi)
                if v is None:
                    self.counts["invalid_samples"] += 1
                else:
                    got[i].append(v)
        return [np.asarray(g, dtype=float) for g in got]


def _responsibilities(target: np.ndarray, samples: list[np.ndarray], w: np.ndarray, span: float) -> np.ndarray:
    """E-step: r_nk ∝ π_k N(y_n; μ_k, σ_k) (σ floored at 5% of the range); components without samples get 0."""
    k = len(samples)
    logp = np.full((target.size, k), -np.inf)
    for j, s in enumerate(samples):
        if s.size == 0 or w[j] <= 0:
            continue
        mu, sd = float(s.mean()), max(float(s.std()), 0.05 * span, 1e-9)
        logp[:, j] = np.log(w[j]) - 0.5 * ((target - mu) / sd) ** 2 - np.log(sd)
    m = logp.max(axis=1, keepdims=True)
    m[~np.isfinite(m)] = 0.0
    r = np.exp(logp - m)
    s = r.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    return r / s


def search(client: Any, target: np.ndarray, *, question: str, method: str = "em", components: int = 4,
           iters: int = 3, samples: int = 10, lo: float | None = None, hi: float | None = None, seed: int = 0,
           templates: Any = None, max_retries: int = 2, prompt_tokens: int = 120) -> dict:
    """Run the EM or GB prompt-mixture search; returns prompts, samples, weights, loss history, counters."""
    if method not in METHODS:
        raise BadInput(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if components < 1 or iters < 1 or samples < 1:
        raise BadInput("--components, --iters and --samples must be at least 1")
    lo = float(np.min(target)) if lo is None else lo
    hi = float(np.max(target)) if hi is None else hi
    if hi <= lo:
        hi = lo + 1.0
    span = hi - lo
    prim = Primitives(client, question=question, lo=lo, hi=hi, templates=templates, max_retries=max_retries,
                      seed=seed, prompt_tokens=prompt_tokens)
    history: list[dict] = []
    if method == "em":
        aims = [float(np.quantile(target, (k + 0.5) / components)) for k in range(components)]
        prompts = prim.craft(aims)
        best: dict | None = None
        for it in range(iters):
            smp = prim.samples(prompts, samples)
            w, loss = fit_simplex_weights(smp, target)
            history.append({"iter": it, "w1": loss, "weights": w.round(6).tolist(),
                            "means": [float(s.mean()) if s.size else None for s in smp]})
            if best is None or (np.isfinite(loss) and (not np.isfinite(best["w1"]) or loss < best["w1"])):
                best = {"prompts": list(prompts), "samples": smp, "weights": w, "w1": loss, "aims": list(aims)}
            if it == iters - 1:
                break
            r = _responsibilities(target, smp, w, span)
            mass = r.sum(axis=0)
            aims = [float((r[:, k] * target).sum() / mass[k]) if mass[k] > 0 else aims[k] for k in range(components)]
            prompts = prim.improve(prompts, aims, smp, salt=it)
        assert best is not None
    else:
        prompts, smp, aims = [], [], []
        w, loss = np.zeros(0), float("nan")
        edges = np.linspace(lo, hi, 11)
        t_hist = np.histogram(np.clip(target, lo, hi), bins=edges)[0] / target.size
        for rnd in range(components):
            if not prompts or not np.isfinite(loss):
                aim = float(np.median(target))
            else:
                mix = sum(wk * np.histogram(np.clip(s, lo, hi), bins=edges)[0] / max(s.size, 1)
                          for wk, s in zip(w, smp))
                b = int(np.argmax(t_hist - mix))
                in_bin = target[(target >= edges[b]) & (target <= edges[b + 1])]
                aim = float(in_bin.mean()) if in_bin.size else float((edges[b] + edges[b + 1]) / 2)
            [p] = prim.craft([aim], salt=("gb", rnd))
            [s] = prim.samples([p], samples)
            for it in range(1, iters):
                if s.size and abs(float(s.mean()) - aim) <= 0.1 * span:
                    break
                [p2] = prim.improve([p], [aim], [s], salt=("gb", rnd, it))
                [s2] = prim.samples([p2], samples)
                if s2.size and (not s.size or abs(s2.mean() - aim) < abs(s.mean() - aim)):
                    p, s = p2, s2
            prompts.append(p)
            smp.append(s)
            aims.append(aim)
            w, loss = fit_simplex_weights(smp, target)
            history.append({"iter": rnd, "w1": loss, "weights": w.round(6).tolist(), "aim": aim,
                            "means": [float(x.mean()) if x.size else None for x in smp]})
        best = {"prompts": prompts, "samples": smp, "weights": w, "w1": loss, "aims": aims}
    best.update({"history": history, "counts": prim.counts, "lo": lo, "hi": hi, "method": method})
    return best


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


def mixture_library(target_path: str | os.PathLike, out: str | os.PathLike, *, column: str | None = None,
                    question: str | None = None, method: str = "em", components: int = 4, iters: int = 3,
                    samples: int = 10, backend: str = "local", base_url: str | None = None,
                    model: str | None = None, seed: int = 0, name: str = "mixture", max_target: int = 2000,
                    test_fraction: float = 0.2, templates: Any = None, client: Any = None,
                    concurrency: int = 4, value_range: tuple[float, float] | None = None,
                    prompt_tokens: int = 120, ipip_domain: str | None = None) -> dict:
    """Search a prompt mixture for the target column and write it as a weighted persona library at `out`.

    With ipip_domain (E|N|A|C|O) the target is each respondent's Big Five domain score computed from the IPIP
    item columns (load_ipip_target) instead of one column; the answer range then defaults to the 1-5 scale.
    """
    from personagen.library import Library
    from personagen.store import (
        atomic_write_json,
        atomic_write_parquet,
        atomic_write_text,
        now_iso,
        staged_dir,
    )

    if method not in METHODS:
        raise BadInput(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    scoring = None
    if ipip_domain is not None:
        if column is not None:
            raise BadInput("--column and --ipip-domain are exclusive: the IPIP score is computed from the items")
        values, column, scoring = load_ipip_target(target_path, ipip_domain)
        if value_range is None:
            value_range = (float(scoring["scale"][0]), float(scoring["scale"][1]))
        if question is None:
            question = llmio.prompt("mixture/default_question.j2", templates, scale=scoring["scale"],
                                    trait=scoring["name"])
    else:
        values, column = load_target(target_path, column)
    rng = np.random.default_rng(seed)
    if values.size > max_target:
        values = rng.choice(values, size=max_target, replace=False)
    perm = rng.permutation(values.size)
    n_test = int(round(test_fraction * values.size)) if values.size >= 10 else 0
    test, train = values[perm[:n_test]], values[perm[n_test:]]
    lo, hi = value_range if value_range else (float(values.min()), float(values.max()))
    question = question or llmio.prompt("mixture/default_question.j2", templates, column=column)
    outp = Path(out)
    created = False
    if (outp / "manifest.json").is_file():
        lib = Library.open(outp)
    else:
        with staged_dir(outp) as tmp:
            Library.init(tmp, seed=seed, config={"created_by": "mixture"})
        lib = Library.open(outp)
        created = True
    t0 = time.time()
    with llmio.open_client(backend, base_url=base_url, model=model, cache_path=lib.llm_db, client=client,
                           concurrency=concurrency) as c:
        res = search(c, train, question=question, method=method, components=components, iters=iters,
                     samples=samples, lo=lo, hi=hi, seed=seed, templates=templates, prompt_tokens=prompt_tokens)
        stats = llmio.client_stats(c)
        mname = llmio.model_name(c)
    seconds = round(time.time() - t0, 2)
    prefix = f"mixture-{method}-s{seed}"
    k = len(res["prompts"])
    ids = [f"{prefix}-{i:02d}" for i in range(k)]
    w = np.asarray(res["weights"], dtype=float)
    new = pl.DataFrame({
        "persona_id": ids, "source": ["mixture"] * k, "mode": [f"mixture:{method}"] * k, "enriched": [False] * k,
        "weight_census": pl.Series([None] * k, dtype=pl.Float64), "text_narrative": res["prompts"],
        "mixture_target": [f"{Path(target_path).name}:{column}"] * k, "mixture_aim": [float(a) for a in res["aims"]],
        "mixture_samples": [json.dumps(s.tolist()) for s in res["samples"]],
    }, schema_overrides={"weight_census": pl.Float64})
    try:
        old = lib.personas()
        old = old.filter(~pl.col("persona_id").str.starts_with(prefix + "-"))
        merged = pl.concat([old, new], how="diagonal_relaxed") if old.height else new
    except BadInput:
        merged = new
    lib.write_personas(merged)

    span = hi - lo
    brng = np.random.default_rng(seed + 1)
    smp = res["samples"]
    uni_w = np.array([1.0 if s.size else 0.0 for s in smp])
    uni_w = uni_w / uni_w.sum() if uni_w.sum() else uni_w
    grid = [np.linspace(lo, hi, 101)]
    splits = {"train": train, **({"test": test} if test.size else {})}
    metrics = {sp: {"wd": _metric(smp, w, tv, span, brng)} for sp, tv in splits.items()}
    baselines = {"uniform_average": {sp: {"wd": _metric(smp, uni_w, tv, span, brng)} for sp, tv in splits.items()},
                 "uniform_distribution": {sp: {"wd": _metric(grid, np.ones(1), tv, span, brng)}
                                          for sp, tv in splits.items()}}
    cal = lib.calibration_dir(name)
    cal.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(cal / "weights.parquet", pl.DataFrame({"persona_id": ids, "weight": w.tolist()},
                                                               schema={"persona_id": pl.String, "weight": pl.Float64}))
    nz = int((w > 1e-9).sum())
    report = {
        "name": name, "method": f"mixture-{method}", "survey_id": None, "group": None,
        "created": now_iso(), "lam": None, "alpha": None,
        "n_personas": k, "nonzeros": nz, "ess": float(1.0 / (w ** 2).sum()) if w.sum() > 0 else 0.0,
        "negative_weights": 0, "solver": "exponentiated-gradient", "solver_seconds": seconds,
        "metrics": metrics, "baselines": baselines,
        "target": {"file": str(target_path), "column": column, "n_train": int(train.size), "n_test": int(test.size),
                   "lo": lo, "hi": hi, "question": question, "scoring": scoring},
        "mixture": {"components": components, "iters": iters, "samples": samples, "history": res["history"],
                    "counts": res["counts"], "w1_train": res["w1"]},
        "model": mname, "llm": stats,
    }
    atomic_write_json(cal / "report.json", report)
    md = [f"# Prompt mixture `{name}` ({method})", "", f"Target: {target_path} column `{column}`; question: {question}",
          "", "| persona | weight | aim | sample mean | prompt |", "|---|---|---|---|---|"]
    for pid, wk, a, s, p in zip(ids, w, res["aims"], smp, res["prompts"]):
        md.append(f"| {pid} | {wk:.3f} | {a:.3g} | {(f'{s.mean():.3g}' if s.size else '—')} | "
                  f"{p[:80].replace('|', '/')} |")
    md += ["", "Normalised W1 (lower is better): " + ", ".join(
        f"{sp} {metrics[sp]['wd']['value']:.4f}" for sp in metrics if metrics[sp]['wd']['value'] is not None)]
    atomic_write_text(cal / "report.md", "\n".join(md) + "\n")
    _plot(smp, w, train, lo, hi, cal / "mixture.png")
    lib.record("mixture", target=str(target_path), column=column, method=method, components=components,
               iters=iters, samples=samples, model=mname, calibration=name, created_library=created)
    return report


def _plot(samples: list[np.ndarray], w: np.ndarray, target: np.ndarray, lo: float, hi: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(lo, hi, 21)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(target, bins=edges, density=True, alpha=0.5, label="target")
    mix = sum(wk * np.histogram(s, bins=edges, density=True)[0] for wk, s in zip(w, samples) if s.size)
    if not np.isscalar(mix):
        ax.stairs(mix, edges, label="weighted mixture", linewidth=2)
    ax.set_xlabel("value")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
