"""The survey schema: questions, ordered options, ordinal positions, target distributions per group, splits.

Stored as one long parquet table, one row per (question, group, option):
survey_id, qid, question, option, option_index, ordinal (float|null), attribute, group, share, split,
keep_last (bool: the option stays last when options are reordered; files written before it existed get it from
the rule in `refusals.py`). The group "overall" (attribute "overall") is the whole population. The file's
parquet metadata key `personagen.provenance` holds where the survey came from and its licence (JSON).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.errors import BadInput
from personagen.store import atomic_write_parquet, read_parquet
from personagen.surveys.refusals import keep_last_flags

SURVEY_SCHEMA: dict[str, pl.DataType] = {
    "survey_id": pl.String,
    "qid": pl.String,
    "question": pl.String,
    "option": pl.String,
    "option_index": pl.Int32,
    "ordinal": pl.Float64,
    "attribute": pl.String,
    "group": pl.String,
    "share": pl.Float64,
    "split": pl.String,
}
KEEP_LAST = "keep_last"  # optional column (bool per option); absent in files written before it existed
PROVENANCE_KEY = "personagen.provenance"
SPLITS = ("train", "valid", "test")
OVERALL = "overall"


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    options: tuple[str, ...]
    ordinal: tuple[float, ...] | None
    split: str
    keep_last: tuple[bool, ...] = ()  # per option: stays last when the options are reordered


@dataclass(frozen=True)
class QuestionRecord:
    """One question as a loader produces it: options in survey order, shares per group, typed (no private keys).

    targets: {group: {option: share}}; attributes: {group: attribute} (default "group", "overall" for overall);
    ordinal: one position per option or None; split: None for the seeded 70/15/15 draw; keep_last: per option,
    None for the rule of `refusals.keep_last_flags`."""

    qid: str
    question: str
    options: tuple[str, ...]
    targets: Mapping[str, Mapping[str, float]]
    attributes: Mapping[str, str] = field(default_factory=dict)
    ordinal: tuple[float, ...] | None = None
    split: str | None = None
    keep_last: tuple[bool, ...] | None = None

    @classmethod
    def of(cls, q: Mapping[str, Any] | QuestionRecord) -> QuestionRecord:
        """A record from a record or from the documented dict form of `Survey.from_records`."""
        if isinstance(q, QuestionRecord):
            return q
        ords, kl = q.get("ordinal"), q.get("keep_last")
        return cls(str(q["qid"]), q["question"], tuple(q["options"]), q["targets"], dict(q.get("attributes") or {}),
                   None if ords is None else tuple(ords), q.get("split") or None,
                   None if kl is None else tuple(bool(x) for x in kl))


class Survey:
    """An in-memory survey (validated). Build with `Survey.from_records` or load with `load(path)`."""

    def __init__(self, frame: pl.DataFrame, *, source: str = "<memory>", provenance: Mapping[str, Any] | None = None):
        missing = [c for c in SURVEY_SCHEMA if c not in frame.columns]
        if missing:
            raise BadInput(f"{source}: survey table lacks column(s) {', '.join(missing)}")
        has_flag = KEEP_LAST in frame.columns
        frame = frame.select([pl.col(c).cast(t) for c, t in SURVEY_SCHEMA.items()]
                             + ([pl.col(KEEP_LAST).cast(pl.Boolean).fill_null(False)] if has_flag else []))
        self.provenance: dict[str, Any] | None = dict(provenance) if provenance else None
        self.skipped_questions: list[str] = []  # set by the loaders: what an import left out, and why
        self.import_notes: list[str] = []
        order: list[str] = frame["qid"].unique(maintain_order=True).to_list()  # first-appearance order
        rank = {q: i for i, q in enumerate(order)}
        frame = (frame.with_columns(pl.col("qid").replace_strict(rank, return_dtype=pl.Int64).alias("_q"))
                 .sort(["_q", "attribute", "group", "option_index"], maintain_order=True).drop("_q"))
        self.frame = frame
        self.source = source
        self._questions: dict[str, Question] = {}
        self._positions: dict[str, tuple[float, ...]] = {}
        ids = frame["survey_id"].unique().to_list()
        if len(ids) != 1:
            raise BadInput(f"{source}: survey_id must be one value, found {ids[:5]}")
        self.survey_id: str = ids[0]
        first = frame.filter(pl.col("group") == pl.first("group").over("qid"))
        for qid, sub in first.group_by("qid", maintain_order=True):
            qid = qid[0]
            sub = sub.sort("option_index")
            opts = tuple(sub["option"].to_list())
            if len(opts) < 2:
                raise BadInput(f"{source}: question {qid!r} has {len(opts)} option(s); at least 2 are needed")
            if len(set(opts)) != len(opts):
                raise BadInput(f"{source}: question {qid!r} has duplicate options")
            ords = sub["ordinal"].to_list()
            ordinal = None if any(o is None or (isinstance(o, float) and math.isnan(o)) for o in ords) \
                else tuple(float(o) for o in ords)
            pos = tuple(float("nan") if o is None else float(o) for o in ords)
            if len({o for o in pos if not math.isnan(o)}) >= 2:
                self._positions[qid] = pos
            split = sub["split"][0]
            if split not in SPLITS:
                raise BadInput(f"{source}: question {qid!r} has split {split!r}; expected one of {SPLITS}")
            last = tuple(sub[KEEP_LAST].to_list()) if has_flag else tuple(keep_last_flags(opts))
            self._questions[qid] = Question(qid, sub["question"][0], opts, ordinal, split, last)
        self.qids: list[str] = order
        if not has_flag:  # a file from before the flag: the rule's flags, so `save` writes them
            flags = pl.DataFrame([(q, o, f) for q, qq in self._questions.items()
                                  for o, f in zip(qq.options, qq.keep_last)],
                                 schema={"qid": pl.String, "option": pl.String, KEEP_LAST: pl.Boolean}, orient="row")
            self.frame = frame.join(flags, on=["qid", "option"], how="left", maintain_order="left")
        mixed = frame.group_by("qid").agg(pl.col("split").n_unique().alias("n")).filter(pl.col("n") > 1)
        if mixed.height:
            raise BadInput(f"{source}: question {mixed['qid'][0]!r} has rows in more than one split")
        if has_flag:
            odd = frame.group_by("qid", "option").agg(pl.col(KEEP_LAST).n_unique().alias("n")).filter(pl.col("n") > 1)
            if odd.height:
                raise BadInput(f"{source}: option {odd['option'][0]!r} of {odd['qid'][0]!r} has different "
                               f"{KEEP_LAST} values in different groups")
        self._validate_shares()

    def _validate_shares(self) -> None:
        f = self.frame
        bad = f.filter(pl.col("share").is_null() | pl.col("share").is_nan() | (pl.col("share") < 0))
        if bad.height:
            r = bad.row(0, named=True)
            raise BadInput(f"{self.source}: share of {r['qid']!r}/{r['group']!r}/{r['option']!r} is "
                           f"{r['share']!r} (NaN, null or negative)")
        sums = f.group_by(["qid", "group"]).agg(pl.col("share").sum().alias("s"))
        off = sums.filter((pl.col("s") - 1.0).abs() > 1e-3)
        if off.height:
            r = off.row(0, named=True)
            raise BadInput(f"{self.source}: options of {r['qid']!r} for group {r['group']!r} sum to "
                           f"{r['s']:.4f}, not 1")
        # every group of a question lists exactly the question's options (vectorised join, not a loop)
        opts = pl.DataFrame(
            [(q, o) for q, qq in self._questions.items() for o in qq.options],
            schema={"qid": pl.String, "option": pl.String}, orient="row",
        )
        n_opts = opts.group_by("qid").len().rename({"len": "k"})
        got = (f.join(opts, on=["qid", "option"], how="semi").group_by(["qid", "group"]).len()
               .join(n_opts, on="qid"))
        groups = f.select("qid", "group").unique()
        chk = groups.join(got, on=["qid", "group"], how="left").join(n_opts, on="qid", suffix="_q")
        wrong = chk.filter(pl.col("len").is_null() | (pl.col("len") != pl.col("k_q")))
        extra = f.join(opts, on=["qid", "option"], how="anti")
        if wrong.height or extra.height:
            r = (wrong if wrong.height else extra).row(0, named=True)
            raise BadInput(f"{self.source}: group {r['group']!r} of {r['qid']!r} does not list exactly the "
                           f"question's options")

    # ---- accessors ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.qids)

    def __repr__(self) -> str:
        return f"Survey({self.survey_id!r}, {len(self.qids)} questions, groups={len(self.groups())})"

    def question(self, qid: str) -> Question:
        try:
            return self._questions[qid]
        except KeyError:
            raise BadInput(f"{self.source}: no question {qid!r} in survey {self.survey_id!r}") from None

    def options(self, qid: str) -> list[str]:
        return list(self.question(qid).options)

    def ordinal(self, qid: str) -> list[float] | None:
        o = self.question(qid).ordinal
        return list(o) if o is not None else None

    def positions(self, qid: str) -> tuple[float, ...] | None:
        """Ordinal positions per option with NaN for options outside the scale ("Refused", "Not sure": the
        SubPOP authors' ordinal of -1); None when fewer than two distinct positions. `ordinal` is the
        all-ordinal special case."""
        self.question(qid)
        return self._positions.get(qid)

    def split_of(self, qid: str) -> str:
        return self.question(qid).split

    def keep_last(self, qid: str) -> list[bool]:
        """Per option of `qid`: True where the option must stay last when options are shown in another order
        ("Refused", "Don't know" at the end of the list; see `refusals.py`)."""
        return list(self.question(qid).keep_last)

    def split_qids(self, split: str | Iterable[str]) -> list[str]:
        """Question ids in a split ("train", "valid", "test", "all", or several)."""
        if isinstance(split, str):
            if split == "all":
                return list(self.qids)
            split = [split]
        want = set(split)
        return [q for q in self.qids if self._questions[q].split in want]

    def groups(self) -> list[str]:
        return self.frame["group"].unique(maintain_order=True).to_list()

    def attributes(self) -> dict[str, list[str]]:
        """{attribute: [groups]} (e.g. {"CREGION": ["Northeast", ...], "overall": ["overall"]})."""
        g = self.frame.select("attribute", "group").unique(maintain_order=True)
        out: dict[str, list[str]] = {}
        for a, grp in g.iter_rows():
            out.setdefault(a, []).append(grp)
        return out

    def distributions(self, group: str = OVERALL) -> dict[str, dict[str, float]]:
        """{qid: {option: share}} for one group; BadInput if the group is absent."""
        sub = self.frame.filter(pl.col("group") == group)
        if sub.height == 0:
            raise BadInput(f"{self.source}: group {group!r} not in survey (groups: {', '.join(self.groups()[:12])})")
        out: dict[str, dict[str, float]] = {}
        for qid, opt, share in sub.select("qid", "option", "share").iter_rows():
            out.setdefault(qid, {})[opt] = share
        return {q: {o: out[q][o] for o in self.options(q)} for q in self.qids if q in out}

    def target(self, qids: Sequence[str], group: str = OVERALL) -> np.ndarray:
        """Stacked target vector r over (question, option) rows, questions in `qids` order."""
        d = self.distributions(group)
        rows: list[float] = []
        for q in qids:
            if q not in d:
                raise BadInput(f"{self.source}: group {group!r} has no distribution for {q!r}")
            rows.extend(d[q][o] for o in self.options(q))
        return np.asarray(rows, dtype=float)

    def row_index(self, qids: Sequence[str]) -> list[tuple[str, str]]:
        """The (qid, option) pairs matching `target(qids)` row by row."""
        return [(q, o) for q in qids for o in self.options(q)]

    def subset(self, qids: Iterable[str]) -> Survey:
        keep = list(qids)
        return Survey(self.frame.filter(pl.col("qid").is_in(keep)), source=self.source, provenance=self.provenance)

    def with_splits(self, *, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Survey:
        s = assign_splits(self.qids, seed=seed, fractions=fractions)
        f = self.frame.with_columns(pl.col("qid").replace_strict(s, return_dtype=pl.String).alias("split"))
        return Survey(f, source=self.source, provenance=self.provenance)

    def save(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        if not p.parent.exists():
            raise BadInput(f"{p}: directory {p.parent} does not exist")
        meta = {PROVENANCE_KEY: json.dumps(self.provenance, sort_keys=True)} if self.provenance else None
        atomic_write_parquet(p, self.frame, metadata=meta)
        return p

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_records(cls, survey_id: str, questions: Sequence[Mapping[str, Any] | QuestionRecord], *, seed: int = 0,
                     fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), source: str = "<memory>",
                     provenance: Mapping[str, Any] | None = None) -> Survey:
        """Build from `QuestionRecord`s or dicts of the same fields ({qid, question, options, ordinal (opt),
        split (opt), targets: {group: {opt: share}}, attributes (opt): {group: attribute}, keep_last (opt)}).
        Missing splits are assigned deterministically by `seed`."""
        recs = [QuestionRecord.of(q) for q in questions]
        splits = assign_splits([r.qid for r in recs], seed=seed, fractions=fractions)
        rows = []
        for q in recs:
            opts, ords = list(q.options), q.ordinal
            if ords is not None and len(ords) != len(opts):
                raise BadInput(f"{source}: question {q.qid!r} has {len(opts)} options but {len(ords)} ordinals")
            last = list(q.keep_last) if q.keep_last is not None else keep_last_flags(opts)
            if len(last) != len(opts):
                raise BadInput(f"{source}: question {q.qid!r} has {len(opts)} options but {len(last)} keep_last flags")
            for group, dist in q.targets.items():
                for i, o in enumerate(opts):
                    rows.append({
                        "survey_id": survey_id, "qid": q.qid, "question": q.question, "option": o,
                        "option_index": i, "ordinal": None if ords is None or ords[i] is None else float(ords[i]),
                        "attribute": q.attributes.get(group, OVERALL if group == OVERALL else "group"),
                        "group": group, "share": float(dist.get(o, 0.0)),
                        "split": q.split or splits[q.qid], KEEP_LAST: last[i],
                    })
        if not rows:
            raise BadInput(f"{source}: survey has no questions")
        return cls(pl.DataFrame(rows, schema={**SURVEY_SCHEMA, KEEP_LAST: pl.Boolean}), source=source,
                   provenance=provenance)


def assign_splits(qids: Sequence[str], *, seed: int = 0,
                  fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, str]:
    """Deterministic train/valid/test assignment by question: order by a seeded hash, cut by fractions.

    Independent of input order; every split gets at least one question when there are ≥ 3 questions.
    """
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise BadInput(f"split fractions {fractions} must be nonnegative and sum to 1")
    keyed = sorted(qids, key=lambda q: hashlib.sha256(f"{seed}:{q}".encode()).hexdigest())
    n = len(keyed)
    n_train = int(round(fractions[0] * n))
    n_valid = int(round(fractions[1] * n))
    if n >= 3:
        n_train = min(max(n_train, 1), n - 2) if fractions[1] > 0 and fractions[2] > 0 else n_train
        n_valid = min(max(n_valid, 1 if fractions[1] > 0 else 0), n - n_train - (1 if fractions[2] > 0 else 0))
    out = {}
    for i, q in enumerate(keyed):
        out[q] = "train" if i < n_train else ("valid" if i < n_train + n_valid else "test")
    return out


def kfold_groups(qids: Sequence[str], k: int = 5, *, seed: int = 0) -> list[list[str]]:
    """Split question ids into k folds (whole questions per fold), deterministic by seed."""
    if k < 2:
        raise BadInput(f"k={k}: cross-validation needs at least 2 folds")
    keyed = sorted(qids, key=lambda q: hashlib.sha256(f"fold{seed}:{q}".encode()).hexdigest())
    k = min(k, len(keyed))
    return [keyed[i::k] for i in range(k)]


def load(path: str | os.PathLike) -> Survey:
    """Load a survey parquet written by `Survey.save` / `personagen surveys import`."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p}: survey file does not exist")
    frame = read_parquet(p, "survey")
    check_file_frame(frame, p)
    return Survey(frame, source=str(p), provenance=_read_provenance(p))


def _read_provenance(p: Path) -> dict[str, Any] | None:
    """The provenance a survey file carries in its parquet metadata (None for files written before it did)."""
    try:
        raw = pl.read_parquet_metadata(p).get(PROVENANCE_KEY)
        out = json.loads(raw) if raw else None
    except (OSError, ValueError, pl.exceptions.PolarsError):
        raise BadInput(f"{p}: unreadable provenance metadata ({PROVENANCE_KEY})") from None
    if out is not None and not isinstance(out, dict):
        raise BadInput(f"{p}: provenance metadata ({PROVENANCE_KEY}) is not a JSON object")
    return out


_REQUIRED = ("survey_id", "qid", "option", "option_index", "group", "split")


def check_file_frame(frame: pl.DataFrame, where: object) -> None:
    """A survey file is untrusted: each column of the declared dtype (text stays text, numbers numbers; no
    silent casts) and no nulls in the identifying columns."""
    for c, t in SURVEY_SCHEMA.items():
        if c not in frame.columns:
            continue
        got = frame.schema[c]
        if (t == pl.String) != (got == pl.String) or (t != pl.String and not (got.is_numeric() or got == pl.Null)):
            raise BadInput(f"{where}: column {c!r} has dtype {got}, expected {t}")
    if KEEP_LAST in frame.columns and frame.schema[KEEP_LAST] not in (pl.Boolean, pl.Null):
        raise BadInput(f"{where}: column {KEEP_LAST!r} has dtype {frame.schema[KEEP_LAST]}, expected Boolean")
    for c in _REQUIRED:
        if c in frame.columns and frame[c].null_count():
            raise BadInput(f"{where}: column {c!r} has {frame[c].null_count()} null value(s)")
