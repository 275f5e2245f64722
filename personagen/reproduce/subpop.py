"""`personagen reproduce subpop`: SubPOP's protocol (paper 003, sec. 4, Tables 1, 2, 9, 10) on our data.

Fine-tune on the --train surveys' subgroup distributions (the paper's 22 groups of Table 3 unless --groups says
otherwise; their questions split 90/10 train/valid), then on the held-out --eval survey (other waves, or another
survey family), after leaving out eval questions a training question repeats (cosine >= 0.87, appendix A.5),
report the mean WD over its ordinal questions and groups for: the uniform upper bound, the training answer
prior per option count (`train_marginal`, no model: what fine-tuning learns first), the human lower bound
(respondent bootstrap), zero-shot QA/BIO/PORTRAY steering, few-shot (k similar training questions as JSON),
and the fine-tuned model (QA steering); per group, the relative improvement. The paper's Llama-2-7B numbers
are printed beside ours. `subpop_bounds` (--bounds-only) gives the two bounds per group over several waves
without a model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from personagen.errors import BadInput
from personagen.finetune import (
    BOUND_DISTANCES,
    OVERLAP_THRESHOLD,
    PAPER_GROUPS_22,
    Example,
    FinetuneOptions,
    example_wd,
    finetune,
    group_means,
    human_bound,
    open_survey,
    overlapping,
    predict,
    relative_improvement,
    resolve_embedder,
    respondents_for,
    survey_examples,
    train_marginal,
    training_examples,
    uniform_wd,
)
from personagen.llm import HFScorer
from personagen.surveys import opinionqa_respondents, select_questions

# Table 1, Llama-2-7B column (OpinionQA | SubPOP-Eval), and Tables 9 / 10 (Llama-2-7B: human, base, FT).
PAPER_TABLE1 = {
    "opinionqa": {"uniform": 0.178, "human_bound": 0.031, "zero_shot_qa": 0.173, "zero_shot_bio": 0.193,
                  "zero_shot_portray": 0.195, "few_shot": 0.186, "fine_tuned": 0.106},
    "subpop_eval": {"uniform": 0.208, "human_bound": 0.033, "zero_shot_qa": 0.206, "zero_shot_bio": 0.221,
                    "zero_shot_portray": 0.212, "few_shot": 0.217, "fine_tuned": 0.121},
}
PAPER_GROUPS = {  # group: (human bound, zero-shot QA, fine-tuned); Table 9's Protestant row is garbled, left out
    "opinionqa": {
        "Northeast": (.023, .165, .094), "South": (.017, .149, .092), "College graduate/some postgrad": (.018, .165, .099),
        "Less than high school": (.043, .161, .101), "Male": (.015, .182, .093), "Female": (.013, .162, .100),
        "Black": (.031, .151, .102), "White": (.012, .176, .097), "Asian": (.051, .165, .111),
        "Hispanic": (.044, .162, .102), "$100,000 or more": (.019, .172, .103), "Less than $30,000": (.021, .162, .091),
        "Democrat": (.016, .172, .099), "Republican": (.019, .196, .105), "Liberal": (.022, .192, .100),
        "Conservative": (.021, .169, .103), "Moderate": (.016, .151, .094), "Jewish": (.058, .182, .124),
        "Hindu": (.079, .211, .160), "Atheist": (.035, .202, .118), "Muslim": (.089, .202, .159)},
    "subpop_eval": {
        "Northeast": (.027, .196, .113), "South": (.018, .183, .108), "College graduate/some postgrad": (.019, .206, .105),
        "Less than high school": (.036, .191, .129), "Male": (.017, .186, .102), "Female": (.016, .184, .108),
        "Black": (.029, .200, .114), "White": (.014, .190, .105), "Asian": (.049, .201, .119),
        "Hispanic": (.050, .204, .133), "$100,000 or more": (.021, .210, .111), "Less than $30,000": (.026, .179, .115),
        "Democrat": (.020, .219, .103), "Republican": (.023, .205, .123), "Liberal": (.019, .224, .102),
        "Conservative": (.022, .184, .120), "Moderate": (.018, .191, .110), "Protestant": (.019, .187, .110),
        "Jewish": (.066, .245, .149), "Hindu": (.095, .264, .180), "Atheist": (.021, .222, .126),
        "Muslim": (.090, .253, .175)},
}
BASELINES = ("zero_shot_qa", "zero_shot_bio", "zero_shot_portray", "few_shot")


@dataclass(frozen=True)
class SubpopOptions:
    """Options of the SubPOP reproduction; CPU-sized defaults (the paper's are in docs/finetune.md)."""

    train: tuple[str, ...]
    eval: str
    out: str = "reproduce-subpop"
    model: str | None = None
    steps: int = 20
    batch_size: int = 8
    lr: float = 2e-4
    loss: str = "kl"
    max_questions: int | None = 10
    questions: tuple[str, ...] | None = None  # instead of the seeded draw: these eval questions
    per_split: int | None = None  # instead of the seeded draw: N (seeded) from each split of the eval survey
    groups: tuple[str, ...] | None = PAPER_GROUPS_22  # Table 3, for training and evaluation; None: every group
    assumed_n: int | None = None
    reps: int = 1000
    k_shots: int = 5
    baselines: tuple[str, ...] = BASELINES
    seed: int = 0
    threads: int | None = None
    micro_batch: int | None = None  # examples per forward pass (default min(8, batch_size)); memory ~ 0.6 GB each
    save_every: int | None = None  # checkpoint interval in steps (default min(10, steps))
    adapter: str | None = None  # evaluate this LoRA adapter (e.g. a kept checkpoint) instead of fine-tuning
    bound_distance: str = "paper"
    overlap_threshold: float | None = OVERLAP_THRESHOLD  # appendix A.5; None keeps every eval question
    overlap_embedder: str = "auto"

    def __post_init__(self) -> None:
        if self.bound_distance not in BOUND_DISTANCES:
            raise BadInput(f"--bound-distance {self.bound_distance!r}: expected one of {', '.join(BOUND_DISTANCES)}")
        if self.overlap_threshold is not None and not 0 < self.overlap_threshold <= 1:
            raise BadInput(f"--overlap-threshold {self.overlap_threshold}: must be in (0, 1]")
        resolve_embedder(self.overlap_embedder)
        if not Path(self.eval).exists():
            raise BadInput(f"--eval {self.eval}: does not exist")
        if self.adapter is not None and not (Path(self.adapter) / "adapter_config.json").is_file():
            raise BadInput(f"--adapter {self.adapter}: no adapter_config.json (not a LoRA adapter folder)")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise BadInput(f"--baselines {unknown[0]!r}: expected some of {', '.join(BASELINES)}")
        if self.max_questions is not None and self.max_questions < 1:
            raise BadInput(f"--max-questions {self.max_questions}: must be at least 1")
        if self.assumed_n is not None and self.assumed_n < 1:
            raise BadInput(f"--assume-respondents {self.assumed_n}: must be at least 1")
        if not 10 <= self.reps <= 100_000:
            raise BadInput(f"--reps {self.reps}: between 10 and 100,000 bootstrap replicates")
        self.finetune_options()  # validates train/steps/batch/loss once, here

    def finetune_options(self) -> FinetuneOptions:
        return FinetuneOptions(train=self.train, out=str(Path(self.out) / "finetune"), model=self.model,
                               steps=self.steps, batch_size=self.batch_size,
                               micro_batch=self.micro_batch or min(8, self.batch_size),
                               lr=self.lr, loss=self.loss, seed=self.seed, threads=self.threads,
                               save_every=self.save_every or max(1, min(10, self.steps)),
                               eval_every=max(1, min(10, self.steps)),
                               max_valid=64, groups=self.groups)


@dataclass
class SubpopResult:
    """Mean WD per method (None when not computable), per-group rows, the paper's numbers, paths."""

    wd: dict[str, float | None]
    groups: list[dict[str, Any]]
    paper: dict[str, float]
    family: str
    n_examples: int
    n_questions: int
    few_shot_invalid: int
    seconds: float
    adapter: str
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"wd": self.wd, "groups": self.groups, "paper": self.paper, "family": self.family,
                "n_examples": self.n_examples, "n_questions": self.n_questions,
                "few_shot_invalid": self.few_shot_invalid, "seconds": self.seconds, "adapter": self.adapter,
                "notes": self.notes}


def _family(survey_id: str) -> str:
    return "subpop_eval" if survey_id.startswith("subpop") else "opinionqa"


def eval_examples(opts: SubpopOptions) -> tuple[list[Example], Any]:
    """The eval survey's (question, group) examples with ordinal positions, questions capped by a seeded draw.
    Questions with options off the scale are kept; the WD leaves those options out (the authors' ordinal_emd)."""
    sv = open_survey(opts.eval)
    qids = [q for q in sv.qids if sv.positions(q) is not None]
    if opts.questions is not None or opts.per_split is not None:
        qids = select_questions(sv.subset(qids), questions=opts.questions, per_split=opts.per_split, seed=opts.seed)
    elif opts.max_questions is not None and len(qids) > opts.max_questions:
        rng = np.random.default_rng(opts.seed)
        qids = [qids[i] for i in sorted(rng.choice(len(qids), opts.max_questions, replace=False))]
    exs = survey_examples(sv, split="test", qids=qids,
                          groups=[g for g in opts.groups if g in sv.groups()] if opts.groups else None)
    if not exs:
        raise BadInput(f"--eval {opts.eval}: no ordinal (question, group) pairs to evaluate")
    return exs, sv


def _drop_overlap(opts: SubpopOptions, tests: list[Example], train: list[Example]) -> tuple[list[Example], str]:
    """Leave out eval questions that a training question repeats (cosine >= threshold; appendix A.5)."""
    if opts.overlap_threshold is None:
        return tests, "train/eval overlap filter off"
    texts = list(dict.fromkeys(e.question for e in tests))
    hit = overlapping(texts, list(dict.fromkeys(e.question for e in train)), threshold=opts.overlap_threshold,
                      embedder=opts.overlap_embedder)
    same = {t for t, h in zip(texts, hit) if h}
    kept = [e for e in tests if e.question not in same]
    if not kept:
        raise BadInput(f"--eval {opts.eval}: every question repeats a training question (appendix A.5 filter)")
    return kept, (f"train/eval overlap (appendix A.5, {resolve_embedder(opts.overlap_embedder)} cosine >= "
                  f"{opts.overlap_threshold}): {len(same)} of {len(texts)} eval questions left out")


def _bound(opts: SubpopOptions, exs: list[Example]) -> tuple[dict, list[str]]:
    counts = opinionqa_respondents(opts.eval) if Path(opts.eval).is_dir() else None
    notes = []
    if counts is None:
        notes.append("human bound: " + ("no respondent counts in the eval survey (weighted shares); "
                                        "pass --assume-respondents N" if opts.assumed_n is None else
                                        f"multinomial noise of an assumed {opts.assumed_n} respondents per group"))
    if opts.bound_distance == "paper":
        notes.append("human bound: W1 on the ordinal positions, not divided by their range (reproduces Table 9; "
                     "--bound-distance normalised puts it on the models' scale)")
    return human_bound(exs, respondents_for(exs, counts, opts.assumed_n), reps=opts.reps, seed=opts.seed,
                       distance=opts.bound_distance), notes


def reproduce_subpop(opts: SubpopOptions, *, progress: Any = None) -> SubpopResult:
    """Run the protocol end to end (resumable fine-tune; every model answer cached in OUT/llm.sqlite)."""
    t0 = time.perf_counter()
    out = Path(opts.out)
    tests, sv = eval_examples(opts)
    train, _ = training_examples([open_survey(p) for p in opts.train], seed=opts.seed, groups=opts.groups)
    tests, overlap_note = _drop_overlap(opts, tests, train)
    out.mkdir(parents=True, exist_ok=True)  # only once the surveys are known to be usable
    wd: dict[str, np.ndarray] = {"uniform": uniform_wd(tests), "train_marginal": example_wd(tests, train_marginal(train, tests))}
    bound, notes = _bound(opts, tests)
    notes = [overlap_note, *notes]
    cache = out / "llm.sqlite"
    base = HFScorer(opts.model, cache_path=cache, threads=opts.threads)
    invalid = 0
    for b in opts.baselines:
        pr = predict(b, base, tests, train, opts.k_shots)
        invalid += pr.invalid
        wd[b] = example_wd(tests, pr.dists)
        if progress:
            progress(f"{b}: mean WD {wd[b].mean():.4f}")
    base.unload()  # free the base model before training
    adapter = opts.adapter
    if adapter is None:
        show = (lambda r: progress(f"fine-tune step {r['step']}: train {r['train']:.4f}, valid {r['valid']:.4f}")
                if "valid" in r else None) if progress else None
        adapter = str(finetune(opts.finetune_options(), progress=show).adapter)
    else:
        notes.append(f"fine-tuned: the given adapter {adapter} (no training in this run)")
    tuned = HFScorer(opts.model, adapter, cache_path=cache, threads=opts.threads)
    wd["fine_tuned"] = example_wd(tests, predict("zero_shot_qa", tuned, tests).dists)
    return _result(opts, tests, sv, wd, bound, notes, invalid, time.perf_counter() - t0, adapter)


def _result(opts: SubpopOptions, tests: list[Example], sv: Any, wd: dict[str, np.ndarray], bound: dict,
            notes: list[str], invalid: int, seconds: float, adapter: str) -> SubpopResult:
    fam = _family(sv.survey_id)
    per = {m: group_means(tests, v) for m, v in wd.items()}
    groups = []
    for g in dict.fromkeys(e.group for e in tests):
        hb = bound.get(g)
        row: dict[str, Any] = {"group": g, **{m: per[m][g] for m in per},
                               "human_bound": hb.mean if hb else None,
                               "human_bound_ci": [hb.lo, hb.hi] if hb else None}
        if hb and "zero_shot_qa" in per:
            row["relative_improvement"] = relative_improvement(per["zero_shot_qa"][g], per["fine_tuned"][g], hb.mean)
        paper = PAPER_GROUPS[fam].get(g)
        row["paper"] = dict(zip(("human_bound", "zero_shot_qa", "fine_tuned"), paper)) if paper else None
        groups.append(row)
    means = {m: float(v.mean()) for m, v in wd.items()}
    hb_all = [b.mean for b in bound.values()]
    means["human_bound"] = float(np.mean(hb_all)) if len(hb_all) == len(groups) else None
    if "zero_shot_qa" in means:
        means["zero_shot"] = means["zero_shot_qa"]  # the paper's main zero-shot row is QA (appendix D)
    return SubpopResult(wd=means, groups=groups, paper=PAPER_TABLE1[fam], family=fam, n_examples=len(tests),
                        n_questions=len({e.qid for e in tests}), few_shot_invalid=invalid, seconds=seconds,
                        adapter=adapter, notes=notes)


def subpop_markdown(res: SubpopResult) -> str:
    """Table-1-style rows (ours beside the paper's Llama-2-7B), then Table-2-style per-group rows."""
    fmt = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
    rows = ["| method | ours | paper (Llama-2-7B) |", "|---|---|---|"]
    for m in ("uniform", "train_marginal", "human_bound", *BASELINES, "fine_tuned"):
        if m in res.wd:
            rows.append(f"| {m} | {fmt(res.wd[m])} | {fmt(res.paper.get(m))} |")
    rows += ["", "| group | human bound | zero-shot QA | fine-tuned | rel. improvement | paper (bound / zero / FT) |",
             "|---|---|---|---|---|---|"]
    for g in res.groups:
        p = g["paper"]
        pp = " / ".join(fmt(p[k]) for k in ("human_bound", "zero_shot_qa", "fine_tuned")) if p else "—"
        rows.append(f"| {g['group']} | {fmt(g['human_bound'])} | {fmt(g.get('zero_shot_qa'))} | "
                    f"{fmt(g.get('fine_tuned'))} | {fmt(g.get('relative_improvement'))} | {pp} |")
    head = (f"SubPOP on {res.family}: {res.n_questions} questions, {res.n_examples} (question, group) pairs; "
            f"mean WD (lower is better); {res.seconds:.0f} s")
    return "\n".join([head, "", *rows, *[f"note: {n}" for n in res.notes]])


@dataclass(frozen=True)
class BoundsOptions:
    """`reproduce subpop --bounds-only`: the bounds of paper 003 (sec. 4.1, appendix D) over one or more
    evaluation waves, without a model."""

    evals: tuple[str, ...]
    groups: tuple[str, ...] | None = None
    assumed_n: int | None = None
    reps: int = 1000
    seed: int = 0
    bound_distance: str = "paper"

    def __post_init__(self) -> None:
        if not self.evals:
            raise BadInput("--eval: give at least one evaluation survey")
        for e in self.evals:
            if not Path(e).exists():
                raise BadInput(f"--eval {e}: does not exist")
        if self.bound_distance not in BOUND_DISTANCES:
            raise BadInput(f"--bound-distance {self.bound_distance!r}: expected one of {', '.join(BOUND_DISTANCES)}")
        if self.assumed_n is not None and self.assumed_n < 1:
            raise BadInput(f"--assume-respondents {self.assumed_n}: must be at least 1")
        if not 10 <= self.reps <= 100_000:
            raise BadInput(f"--reps {self.reps}: between 10 and 100,000 bootstrap replicates")


def subpop_bounds(opts: BoundsOptions) -> dict[str, Any]:
    """Per group over every ordinal question of the given waves (the paper's "all questions Q across all
    waves", appendix D): the human lower bound (mean, 95% interval), the uniform upper bound, and the
    paper's Table 9/10 bound. JSON-ready: {"family", "bound_distance", "n_questions", "groups": [...], "notes"}."""
    exs: list[Example] = []
    resp: list[int | None] = []
    fams = set()
    for path in opts.evals:
        sv = open_survey(path)
        fams.add(_family(sv.survey_id))
        part = survey_examples(sv, qids=[q for q in sv.qids if sv.positions(q) is not None],
                               groups=[g for g in opts.groups if g in sv.groups()] if opts.groups else None)
        counts = opinionqa_respondents(path) if Path(path).is_dir() else None
        exs += part
        resp += respondents_for(part, counts, opts.assumed_n)
    if not exs:
        raise BadInput(f"--eval {opts.evals[0]}: no ordinal (question, group) pairs")
    fam = sorted(fams)[0] if len(fams) == 1 else "mixed"
    bound = human_bound(exs, resp, reps=opts.reps, seed=opts.seed, distance=opts.bound_distance)
    uni = group_means(exs, uniform_wd(exs))
    groups = []
    for g in dict.fromkeys(e.group for e in exs):
        hb = bound.get(g)
        paper = PAPER_GROUPS.get(fam, {}).get(g)
        groups.append({"group": g, "human_bound": hb.mean if hb else None,
                       "human_bound_ci": [hb.lo, hb.hi] if hb else None, "uniform": uni[g],
                       "n_questions": sum(1 for e in exs if e.group == g),
                       "paper": {"human_bound": paper[0]} if paper else None})
    notes = [] if all(r is not None for r in resp) else [
        "human bound left out where the survey has no respondent counts; pass --assume-respondents N"]
    return {"family": fam, "bound_distance": opts.bound_distance, "n_questions": len({(e.survey_id, e.qid) for e in exs}),
            "groups": groups, "notes": notes}


def bounds_markdown(res: dict[str, Any]) -> str:
    """One row per group: our human bound (95% interval), the uniform bound, Table 9/10's human bound."""
    fmt = lambda x: "—" if x is None else f"{x:.4f}"  # noqa: E731
    rows = [f"SubPOP bounds on {res['family']}: {res['n_questions']} questions; human bound distance "
            f"{res['bound_distance']}", "", "| group | human bound | 95% interval | uniform | paper human bound |",
            "|---|---|---|---|---|"]
    for g in res["groups"]:
        ci = "—" if g["human_bound_ci"] is None else f"{g['human_bound_ci'][0]:.4f}–{g['human_bound_ci'][1]:.4f}"
        paper = g["paper"]["human_bound"] if g["paper"] else None
        rows.append(f"| {g['group']} | {fmt(g['human_bound'])} | {ci} | {fmt(g['uniform'])} | {fmt(paper)} |")
    return "\n".join(rows + [f"note: {n}" for n in res["notes"]])
