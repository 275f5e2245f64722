"""`personagen reproduce p2p`: the Prompts-to-Proxies protocol (paper 000) on ATP waves, Table 1/2/7/8 style.

Per wave and repeat r (paper §3.1, §4.2, Appendix G):
1. questions split 70/15/15 into Q_train / Q_valid / Q_test (seed r);
2. Stage 1, active endowment generation (personagen.endow, Alg. 1) with budget N_A on Q_train;
3. every pool agent answers every question once (the dummies d_{j,ik} of eq. 6);
4. Stage 2: constrained lasso and elastic net (eq. 6–7, personagen.calibrate p2p-lasso / p2p-enet, α by CV
   over 30 values) fitted on Q_train ∪ Q_valid, reported on Q_test.
Baselines through the same Stage 2: **vanilla** (topic-only endowments, §4.1), **persona** (a uniform sample of
N_A census personas, the PERSONA-style pool; needs a built library, `census_lib`), **average** (the P2P pool
with equal weights, the regression ablation of §4.4) and **kmeans** (Appendix G.3.1: a vanilla pool of
10/3·N_A endowments clustered to N_A by k-means on text embeddings, the members nearest the centroids kept;
the paper embeds with text-embedding-3-large, here a hashed TF-IDF bag of words, as no embedding model runs
offline).
Metrics on Q_test: MSE over (question, option) rows, 1 − JSD and MCPA (majority class match) per question,
and ECR (eq. 12): the mean normalised entropy of the fitted ensemble's distributions over all questions
divided by that of the human distributions. "Avg. entropy" is the mean eq. 4 entropy of the pool's answers.
Each cell is the mean over repeats with its sd over repeats and a 95% bootstrap interval over test questions.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.errors import BadInput

BASELINES = ("vanilla", "persona", "average", "kmeans")
ESTIMATORS = {"lasso": "p2p-lasso", "enet": "p2p-enet"}
KMEANS_EXPAND = 10 / 3  # Appendix G.3.1: 1000 personas reduced to 300


@dataclass(frozen=True)
class P2PReproOptions:
    """What `reproduce p2p` runs; defaults follow paper 000 (§4.2: N_A = 300, 3 repeats). n_updates None: the
    setting of the table printed beside the wave (5 update steps, Tables 2/8; 10 on W42, Table 7)."""

    waves: tuple[Path, ...]
    out: Path
    budget: int = 300
    repeats: int = 3
    n_updates: int | None = None
    baselines: tuple[str, ...] = BASELINES
    census_lib: Path | None = None
    max_questions: int | None = None
    questions: tuple[str, ...] | None = None  # only these question ids (each wave keeps those it has)
    per_split: int | None = None  # N questions (seeded) from each of train / valid / test of every wave
    backend: str = "local"
    base_url: str | None = None
    model: str | None = None
    seed: int = 0
    per_call: int = 2
    max_tokens: int = 320
    concurrency: int = 4

    def updates_for(self, wave: Path) -> int:
        """Alg. 1 update steps for this wave: --n-updates, else the paper's own for the wave's table."""
        from personagen.reproduce.published import paper_updates

        return self.n_updates if self.n_updates is not None else paper_updates(wave_name(wave))

    def __post_init__(self) -> None:
        if not self.waves:
            raise BadInput("WAVE_DIR: give at least one ATP wave folder")
        for w in self.waves:
            if not (Path(w) / "info.csv").is_file():
                raise BadInput(f"{w}: not an OpinionQA wave folder (no info.csv)")
        for name in ("budget", "repeats", "n_updates", "per_call"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise BadInput(f"--{name.replace('_', '-')}: must be at least 1")
        if self.budget < 2:
            raise BadInput("--budget: Stage 2 needs at least 2 agents")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise BadInput(f"--baselines: unknown {', '.join(bad)} (choose from {', '.join(BASELINES)})")
        if self.max_questions is not None and self.max_questions < 7:
            raise BadInput("--max-questions: at least 7 so that every split has a question")
        if self.census_lib is not None and not (Path(self.census_lib) / "personas.parquet").is_file():
            raise BadInput(f"--census-lib {self.census_lib}: no personas.parquet (build a library first)")


def wave_name(path: Path) -> str:
    """The wave's folder under --out: W<number> from an ATP folder name, else the folder's name made one safe
    path component (a wave given as '..' or 'a/..' never leads outside --out)."""
    name = Path(path).resolve().name
    m = re.search(r"W(\d+)$", name)
    return f"W{m.group(1)}" if m else (re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._-")[:128] or "wave")


def wave_survey(path: Path, seed: int, max_questions: int | None, questions: tuple[str, ...] | None = None,
                per_split: int | None = None) -> Any:
    """The wave as a Survey with a 70/15/15 split (seed), optionally subsampled to `max_questions` (CPU runs),
    then narrowed to `questions` (those of this wave) and `per_split` per split (surveys.select_questions)."""
    from personagen.surveys import import_opinionqa, select_questions

    s = import_opinionqa(path, seed=seed)
    if max_questions is not None and len(s.qids) > max_questions:
        rng = np.random.default_rng(seed)
        s = s.subset([s.qids[i] for i in sorted(rng.choice(len(s.qids), size=max_questions, replace=False))])
    s = s.with_splits(seed=seed)
    if questions is not None:
        mine = tuple(q for q in questions if q in s.qids)
        if not mine:
            raise BadInput(f"{path}: none of --questions is a question of this wave (ids look like {s.qids[0]})")
        s = s.subset(select_questions(s, questions=mine))
    if per_split is not None:
        s = s.subset(select_questions(s, per_split=per_split, seed=seed))
    return s


# ---- the design of eq. 6 and the metrics ------------------------------------------------------------------
def dummies(answers: np.ndarray, survey: Any, qids: list[str]) -> np.ndarray:
    """D[(i, k), j] = d_{j,ik} = 1 if agent j chose option k of question i (eq. 6); answers are option indices.

    An answer that matched no option (−1) counts 1/K_i on every option: eq. 7 assumes Σ_k d_{j,ik} = 1 for
    every agent, and a zero column would make the per-question constraints contradictory (infeasible)."""
    cols = []
    for j in range(answers.shape[0]):
        col = []
        for i, q in enumerate(qids):
            k = len(survey.options(q))
            v = np.zeros(k)
            if answers[j, i] >= 0:
                v[answers[j, i]] = 1.0
            else:
                v[:] = 1.0 / k
            col.append(v)
        cols.append(np.concatenate(col))
    return np.stack(cols, axis=1)


def split_dists(vec: np.ndarray, survey: Any, qids: list[str]) -> list[np.ndarray]:
    out, at = [], 0
    for q in qids:
        k = len(survey.options(q))
        out.append(vec[at:at + k])
        at += k
    return out


def question_metrics(pred: list[np.ndarray], target: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per test question: Σ squared error and K_i (for the row MSE), 1 − JSD, majority match (MCPA)."""
    from personagen.metrics import majority_match, one_minus_jsd

    clipped = [np.clip(p, 0, None) + 1e-12 for p in pred]
    return {"sq": np.array([((p - t) ** 2).sum() for p, t in zip(pred, target)]),
            "k": np.array([len(t) for t in target], dtype=float),
            "jsd": np.asarray(one_minus_jsd(clipped, target)), "mcpa": np.asarray(majority_match(clipped, target))}


def ecr(pred_all: list[np.ndarray], target_all: list[np.ndarray]) -> float:
    """Eq. 12 on real data: group entropy of the fitted ensemble over all questions / that of the humans."""
    from personagen.metrics import group_entropy

    p = [np.clip(x, 0, None) + 1e-12 for x in pred_all]
    return group_entropy([x / x.sum() for x in p]) / max(group_entropy(target_all), 1e-12)


def score_pool(answers: np.ndarray, survey: Any, weights_by: dict[str, np.ndarray | None]) -> dict[str, dict]:
    """Stage 2 for one pool: fit each estimator on Q_train ∪ Q_valid (or equal weights), score Q_test."""
    from personagen.calibrate import fit_weights
    from personagen.metrics import normalised_entropy

    qids = list(survey.qids)
    trval = [q for q in qids if survey.split_of(q) in ("train", "valid")]
    test = [q for q in qids if survey.split_of(q) == "test"]
    col = {q: i for i, q in enumerate(qids)}
    d_all = dummies(answers, survey, qids)
    d_tv = dummies(answers[:, [col[q] for q in trval]], survey, trval)
    d_te = dummies(answers[:, [col[q] for q in test]], survey, test)
    groups = np.array([q for q, _ in survey.row_index(trval)])
    pool_h = normalised_entropy([m.mean(axis=1) + 1e-12 for m in split_dists(d_all, survey, qids)])
    out = {}
    for name, fixed in weights_by.items():
        if fixed is None:
            res = fit_weights(d_tv, survey.target(trval), groups=groups, method=ESTIMATORS[name])
            w = np.asarray(res.weights, dtype=float)
        else:
            w = fixed
        m = question_metrics(split_dists(d_te @ w, survey, test), split_dists(survey.target(test), survey, test))
        out[name] = {**m, "invalid_share": float((answers < 0).mean()), "ecr": ecr(split_dists(d_all @ w, survey, qids), split_dists(survey.target(qids), survey,
                                                                                           qids)),
                     "entropy": float(pool_h.mean()), "nonzeros": int((np.abs(w) > 1e-9).sum())}
    return out


# ---- k-means on text embeddings (Appendix G.3.1) ----------------------------------------------------------
def embed_texts(texts: list[str], dim: int = 512) -> np.ndarray:
    """Hashed TF-IDF of word unigrams and bigrams, L2-normalised (a stand-in for text-embedding-3-large)."""
    import hashlib

    tf = np.zeros((len(texts), dim))
    for i, t in enumerate(texts):
        w = re.findall(r"[a-z']+", t.lower())
        for tok in w + [a + " " + b for a, b in zip(w, w[1:])]:
            tf[i, int.from_bytes(hashlib.md5(tok.encode()).digest()[:4], "big") % dim] += 1.0
    idf = np.log((1 + len(texts)) / (1 + (tf > 0).sum(axis=0))) + 1.0
    x = tf * idf
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kmeans_medoids(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> list[int]:
    """Lloyd's k-means (k-means++ start); returns, per cluster, the member nearest its centroid."""
    rng = np.random.default_rng(seed)
    k = min(k, x.shape[0])
    cent = [x[rng.integers(x.shape[0])]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(cent)[None]) ** 2).sum(-1), axis=1)
        cent.append(x[rng.choice(x.shape[0], p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(x.shape[0])])
    c = np.array(cent)
    for _ in range(iters):
        lab = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(axis=1)
        new = np.array([x[lab == j].mean(axis=0) if (lab == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    lab = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(axis=1)
    out = []
    for j in range(k):
        idx = np.flatnonzero(lab == j)
        if idx.size:
            out.append(int(idx[((x[idx] - c[j]) ** 2).sum(-1).argmin()]))
    return sorted(set(out))


@dataclass
class P2PReproResult:
    """Per wave: the Table-1-style rows; plus where they were written."""

    tables: dict[str, dict] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _run_repeat(c: Any, opts: P2PReproOptions, wave: Path, r: int) -> dict[str, dict]:
    """One repeat of one wave: every pool, Stage 2, the test metrics per method."""
    from personagen.endow import EndowOptions, elicit_pool, endow_library
    from personagen.library import Library

    survey = wave_survey(wave, opts.seed + r, opts.max_questions, opts.questions, opts.per_split)
    qids = list(survey.qids)
    root = Path(opts.out) / wave_name(wave) / f"repeat{r}"
    kw = dict(seed=opts.seed + r, split="train", per_call=opts.per_call, max_tokens=opts.max_tokens)

    def pool(strategy: str, budget: int, **extra: Any) -> tuple[list[str], list[str]]:
        lib = Library.init(root / strategy, seed=opts.seed + r) if not (root / strategy).exists() else \
            Library.open(root / strategy)
        log = endow_library(lib, survey, EndowOptions(budget=budget, strategy=strategy, **kw, **extra), client=c)
        df = lib.personas().filter(pl.col("persona_id").is_in(log["persona_ids"]))
        return df["persona_id"].to_list(), df["text_narrative"].to_list()

    def answers(ids: list[str], texts: list[str]) -> np.ndarray:
        return elicit_pool(c, texts, ids, survey, qids)

    out: dict[str, dict] = {}
    ids, texts = pool("active", opts.budget, n_updates=opts.updates_for(wave))
    a = answers(ids, texts)
    out["P2P"] = score_pool(a, survey, {"lasso": None, "enet": None})
    if "average" in opts.baselines:
        out["Equal-weight average"] = score_pool(a, survey, {"lasso": np.full(len(ids), 1 / len(ids))})
    if "vanilla" in opts.baselines:
        vi, vt = pool("vanilla", opts.budget)
        out["Vanilla"] = score_pool(answers(vi, vt), survey, {"lasso": None, "enet": None})
    if "persona" in opts.baselines and opts.census_lib is not None:
        cen = Library.open(opts.census_lib).personas().filter(pl.col("source") == "census")
        take = np.random.default_rng(opts.seed + r).choice(cen.height, size=min(opts.budget, cen.height), replace=False)
        sub = cen[sorted(int(i) for i in take)]
        out["PERSONA-style census"] = score_pool(answers(sub["persona_id"].to_list(), sub["text_narrative"].to_list()),
                                                 survey, {"lasso": None, "enet": None})
    if "kmeans" in opts.baselines:
        ki, kt = pool("vanilla", math.ceil(opts.budget * KMEANS_EXPAND))
        keep = kmeans_medoids(embed_texts(kt), opts.budget, seed=opts.seed + r)
        out["Vanilla k-means"] = score_pool(answers([ki[i] for i in keep], [kt[i] for i in keep]), survey,
                                            {"lasso": None, "enet": None})
    return out


def reproduce_p2p(opts: P2PReproOptions) -> P2PReproResult:
    """Run the protocol on every wave (see module docstring); write JSON + markdown under `opts.out`."""
    from personagen.llm import LLMClient, progress_bar
    from personagen.reproduce.tables import p2p_table, write_table

    t0 = time.time()
    result = P2PReproResult()
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    client = LLMClient.create(backend=opts.backend, base_url=opts.base_url, model=opts.model,
                              cache_path=Path(opts.out) / "llm.sqlite", concurrency=opts.concurrency, progress=True)
    # the whole run's counts, rate and time left, also while no model call is out (fits, metrics)
    with client as c, progress_bar(len(opts.waves) * opts.repeats, "reproduce p2p", True, unit="repeat") as bar:
        for wave in opts.waves:
            reps = []
            for r in range(opts.repeats):
                reps.append(_run_repeat(c, opts, Path(wave), r))
                bar.update(1)
            table = p2p_table(wave_name(wave), reps, seed=opts.seed, n_updates=opts.updates_for(Path(wave)))
            result.tables[wave_name(wave)] = table
            result.paths.update(write_table(Path(opts.out) / wave_name(wave), table))
    result.seconds = round(time.time() - t0, 2)
    return result
