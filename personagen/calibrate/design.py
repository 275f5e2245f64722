"""The design matrix D of docs/design.md §5: rows are (question, option) pairs, columns are personas.

Two sources feed it:
* elicited answers (LIB/responses.parquet, long format) for the questions of a survey — `survey_design`;
* persona attributes recast as questions (one-hot columns) for census margins — `attribute_design`,
  with the PWGTP-weighted population shares as targets — `attribute_targets`.

Why a separate module: the calibration stage, the census benchmark and `--census-margins` all need the
same validated (D, r, row -> question) triple, and every bad-input case (missing answers, options that do
not sum to 1, survey mismatch) is caught here once, with a one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from personagen.errors import BadInput

SUM_TOL = 1e-3
MISSING_LABEL = "(not applicable)"


@dataclass
class Design:
    """D (rows × personas), the (qid, option) of each row and the question id of each row (CV groups)."""

    D: np.ndarray
    rows: list[tuple[str, str]]
    persona_ids: list[str]
    qids: list[str]
    options: dict[str, list[str]] = field(default_factory=dict)

    @property
    def groups(self) -> np.ndarray:
        """Question id of every row (CV folds and block weights group rows by question)."""
        return np.asarray([q for q, _ in self.rows], dtype=object)

    def take(self, qids: Sequence[str]) -> Design:
        """The rows of a subset of questions (e.g. one split), columns unchanged."""
        keep = set(qids)
        idx = [i for i, (q, _) in enumerate(self.rows) if q in keep]
        order = [q for q in self.qids if q in keep]
        return Design(self.D[idx], [self.rows[i] for i in idx], self.persona_ids, order,
                      {q: self.options[q] for q in order})

    def columns(self, idx: np.ndarray) -> Design:
        """A subset of personas (columns)."""
        return Design(self.D[:, idx], self.rows, [self.persona_ids[i] for i in idx], self.qids, self.options)

    def predict(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """{qid: predicted distribution} = D w split by question."""
        p = self.D @ np.asarray(w, dtype=float)
        out: dict[str, list[float]] = {}
        for (q, _), v in zip(self.rows, p):
            out.setdefault(q, []).append(float(v))
        return {q: np.asarray(v) for q, v in out.items()}


def block_row_weights(groups: Sequence) -> np.ndarray:
    """Row weights 1/K_q (K_q = rows of the row's question q) so every question counts equally (block weighting).

    `groups` is the question id of each row (Design.groups); the one definition, used by the library
    calibration, the census benchmark and `fit_weights(row_weights=...)` callers.
    """
    g = np.asarray([str(x) for x in groups])
    _, inv, counts = np.unique(g, return_inverse=True, return_counts=True)
    return 1.0 / counts[inv]


def select_responses(responses: pl.DataFrame, *, survey_id: str, model: str | None = None,
                     mode: str | None = None, source: str = "responses.parquet") -> tuple[pl.DataFrame, str, str]:
    """Valid rows of one (model, mode) for `survey_id`; BadInput if none or if the choice is ambiguous."""
    if responses.height == 0:
        raise BadInput(f"{source}: library has no responses (run `personagen elicit` first)")
    ids = sorted(responses["survey_id"].unique().drop_nulls().to_list())
    sub = responses.filter(pl.col("survey_id") == survey_id)
    if sub.height == 0:
        raise BadInput(f"{source}: no responses for survey {survey_id!r} (library has {', '.join(ids[:5]) or 'none'})")
    sub = sub.filter(pl.col("valid").fill_null(False))
    if sub.height == 0:
        raise BadInput(f"{source}: no valid responses for survey {survey_id!r}; re-run elicit with a lower "
                       f"--min-mass such as 0.2 (no new model calls)")
    if model is not None:
        sub = sub.filter(pl.col("model") == model)
    if mode is not None:
        sub = sub.filter(pl.col("mode") == mode)
    combos = sub.select("model", "mode").unique(maintain_order=True).rows()
    if not combos:
        raise BadInput(f"{source}: no valid responses for survey {survey_id!r} with model={model!r} mode={mode!r}")
    if len(combos) > 1:
        listed = "; ".join(f"{m}/{d}" for m, d in combos[:6])
        raise BadInput(f"{source}: responses from several model/mode pairs ({listed}); choose with --model/--mode")
    m, d = combos[0]
    return sub, m, d


def survey_design(responses: pl.DataFrame, survey, qids: Sequence[str], persona_ids: Sequence[str], *,  # noqa: ANN001
                  drop_incomplete: bool = False, source: str = "responses.parquet"
                  ) -> tuple[Design, list[str]]:
    """Build D over `qids` × `persona_ids` from one model/mode's long responses.

    Returns (design, dropped persona ids). Personas lacking an answer to any of `qids` are an error unless
    `drop_incomplete` (then they are excluded). Each persona's answer to a question must be a distribution
    over the survey's options (sums to 1 within 1e-3, no unknown options, no NaN).
    """
    qids = list(qids)
    opts = {q: survey.options(q) for q in qids}
    sub = responses.filter(pl.col("qid").is_in(qids)).select("persona_id", "qid", "option", "prob")
    bad = sub.filter(pl.col("prob").is_null() | pl.col("prob").is_nan() | (pl.col("prob") < 0)
                     | (pl.col("prob") > 1 + SUM_TOL))
    if bad.height:
        r = bad.row(0, named=True)
        raise BadInput(f"{source}: prob of persona {r['persona_id']!r} on {r['qid']!r}/{r['option']!r} is "
                       f"{r['prob']!r} (NaN, null or outside [0, 1]); {bad.height} such rows")
    known = pl.DataFrame({"qid": [q for q in qids for _ in opts[q]], "option": [o for q in qids for o in opts[q]],
                          "_row": list(range(sum(len(opts[q]) for q in qids)))},
                         schema={"qid": pl.String, "option": pl.String, "_row": pl.Int64})
    j = sub.join(known, on=["qid", "option"], how="left")
    unk = j.filter(pl.col("_row").is_null())
    if unk.height:
        r = unk.row(0, named=True)
        raise BadInput(f"{source}: option {r['option']!r} of {r['qid']!r} is not one of the survey's options "
                       f"({unk.height} such rows)")
    j = j.group_by("persona_id", "qid", "option", "_row").agg(pl.col("prob").sum())
    sums = j.group_by("persona_id", "qid").agg(pl.col("prob").sum().alias("s"))
    off = sums.filter((pl.col("s") - 1.0).abs() > SUM_TOL)
    if off.height:
        r = off.row(0, named=True)
        raise BadInput(f"{source}: answer options of persona {r['persona_id']!r} on {r['qid']!r} sum to "
                       f"{r['s']:.4f}, not 1 ({off.height} such persona-question pairs)")
    pids = list(persona_ids)
    counts = sums.filter(pl.col("persona_id").is_in(pids)).group_by("persona_id").len()
    have = dict(counts.rows())
    incomplete = [p for p in pids if have.get(p, 0) < len(qids)]
    if incomplete:
        if not drop_incomplete:
            n_missing = len(pids) * len(qids) - int(sum(have.get(p, 0) for p in pids))
            raise BadInput(f"{source}: {len(incomplete)} of {len(pids)} personas lack answers to some of the "
                           f"{len(qids)} questions ({n_missing} persona-question pairs missing, e.g. persona "
                           f"{incomplete[0]!r}); elicit them, re-run elicit with a lower --min-mass such as 0.2 (re-scores "
                           f"stored logprobs, no new model calls), or pass --drop-incomplete")
        drop = set(incomplete)
        pids = [p for p in pids if p not in drop]
        if not pids:
            raise BadInput(f"{source}: no persona has valid answers to all {len(qids)} questions; re-run elicit "
                           f"with a lower --min-mass such as 0.2 (no new model calls) or elicit the missing answers")
    col = {p: i for i, p in enumerate(pids)}
    D = np.zeros((known.height, len(pids)))
    jj = j.filter(pl.col("persona_id").is_in(pids))
    ci = np.fromiter((col[p] for p in jj["persona_id"].to_list()), dtype=np.int64, count=jj.height)
    D[jj["_row"].to_numpy(), ci] = jj["prob"].to_numpy()
    rows = [(q, o) for q in qids for o in opts[q]]
    return Design(D, rows, pids, qids, opts), incomplete


def _labels(s: pl.Series) -> list[str]:
    return [MISSING_LABEL if v is None else str(v) for v in s.cast(pl.String).to_list()]


def attribute_options(population: pl.DataFrame, variables: Sequence[str],
                      order: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """Categories of each variable as found in the population (nulls become MISSING_LABEL).

    `order` fixes the option order of ordinal variables (unknown categories go last, sorted)."""
    out: dict[str, list[str]] = {}
    for v in variables:
        if v not in population.columns:
            raise BadInput(f"census population has no column {v!r}")
        cats = sorted(set(_labels(population[v])))
        if order and v in order:
            pos = {c: i for i, c in enumerate(order[v])}
            cats = sorted(cats, key=lambda c: (pos.get(c, len(pos)), c))
        out[v] = cats
    return out


def attribute_design(personas: pl.DataFrame, options: Mapping[str, Sequence[str]], *,
                     id_col: str = "persona_id") -> Design:
    """One-hot D: row (variable, category), column persona; a persona's 'answer' is its own attribute."""
    missing = [v for v in options if v not in personas.columns]
    if missing:
        raise BadInput(f"personas have no column(s) {', '.join(missing)}")
    rows: list[tuple[str, str]] = []
    blocks = []
    for v, cats in options.items():
        lab = np.asarray(_labels(personas[v]), dtype=object)
        for c in cats:
            rows.append((v, c))
            blocks.append((lab == c).astype(float))
    pids = personas[id_col].cast(pl.String).to_list() if id_col in personas.columns else \
        [str(i) for i in range(personas.height)]
    return Design(np.vstack(blocks), rows, pids, list(options), {v: list(c) for v, c in options.items()})


def attribute_targets(population: pl.DataFrame, options: Mapping[str, Sequence[str]], *,
                      weight: str = "pwgtp") -> dict[str, np.ndarray]:
    """{variable: weighted share of each category} from a population frame (PWGTP-weighted by default)."""
    if weight not in population.columns:
        raise BadInput(f"census population has no weight column {weight!r}")
    w = population[weight].cast(pl.Float64).fill_null(0.0).to_numpy()
    tot = w.sum()
    if not tot > 0:
        raise BadInput("census population has zero total weight")
    out = {}
    for v, cats in options.items():
        lab = np.asarray(_labels(population[v]), dtype=object)
        out[v] = np.asarray([w[lab == c].sum() / tot for c in cats], dtype=float)
    return out


def stack(targets: Mapping[str, np.ndarray], qids: Sequence[str]) -> np.ndarray:
    """Stack per-question target vectors in `qids` order (the r of a Design built on the same qids)."""
    return np.concatenate([np.asarray(targets[q], dtype=float) for q in qids]) if qids else np.zeros(0)
