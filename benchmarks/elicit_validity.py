"""Invalid answers per OpinionQA wave with the bundled model, without and with `--constrain auto`.

For every wave under ../shared/data/opinionqa/human_resp: a few personas (built from Vermont PUMS) answer a
seeded sample of the wave's questions in both modes, once with `--constrain none` (the free answers that
earlier releases elicited) and once with `--constrain auto` (on the bundled llama.cpp server: a GBNF grammar
over the option letters; in logprob mode the distribution after the grammar). Printed per wave and mode:
the share of persona-question answers that are invalid, and for logprobs the covered letter mass (min, p05,
median) of the unconstrained answers, which is what `--min-mass` judges. Each configuration answers into its
own fresh library; one local server (default settings) serves every run.

`--bias-wave W26` instead measures the position-bias figure on one wave: logprob answers (constrained) with
the options in the given order and shuffled per persona and question; the share of answer probability on the
first letter shown, beside the share expected from the options that were shown first.

Usage: .venv/bin/python benchmarks/elicit_validity.py [--personas 3] [--questions 4] [--waves W26,W82] [--seed 0]
       [--bias-wave W26]
Prints a Markdown table and one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

import personagen as pg
from personagen import Library
from personagen.elicit import ElicitOptions, elicit_library
from personagen.llm import LLMClient
from personagen.surveys import import_opinionqa

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WAVES = DATA / "opinionqa" / "human_resp"
PUMS = DATA / "acs_pums" / "psam_p50.csv.gz"


def _invalid_share(lib: Library, mode: str) -> tuple[int, int]:
    r = lib.responses().filter(pl.col("mode") == mode)
    per = r.group_by("persona_id", "qid").agg(pl.col("valid").fill_null(False).any().alias("ok"))
    return per.height, int((~per["ok"]).sum())


def run_wave(wave: Path, personas: pl.DataFrame, client: LLMClient, n_questions: int, seed: int) -> list[dict]:
    """Both modes x both constrain settings on one wave; a row per (mode, constrain)."""
    survey = import_opinionqa(wave)
    qids = sorted(random.Random(seed).sample(survey.qids, min(n_questions, len(survey.qids))))
    survey = survey.subset(qids)
    out = []
    for mode in ("logprobs", "sample"):
        for constrain in ("none", "auto"):
            with tempfile.TemporaryDirectory() as d:
                lib = Library.init(Path(d) / "lib", seed=seed)
                lib.write_personas(personas)
                t0 = time.perf_counter()
                s = elicit_library(lib, survey, ElicitOptions(mode=mode, constrain=constrain, progress=False), client=client)
                n, bad = _invalid_share(lib, mode)
                out.append({"wave": wave.name.rsplit("_", 1)[-1], "mode": mode, "constrain": constrain,
                            "constraint": s.constraint, "answers": n, "invalid": bad,
                            "invalid_share": round(bad / n, 4) if n else None, "mass": s.mass_quantiles,
                            "seconds": round(time.perf_counter() - t0, 1)})
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def position_bias(wave: Path, personas: pl.DataFrame, client: LLMClient, n_questions: int, seed: int) -> list[dict]:
    """Logprob answers of one wave with the given and the shuffled option order; the summary's position bias."""
    survey = import_opinionqa(wave)
    survey = survey.subset(sorted(random.Random(seed).sample(survey.qids, min(n_questions, len(survey.qids)))))
    out = []
    for order in ("given", "shuffle"):
        with tempfile.TemporaryDirectory() as d:
            lib = Library.init(Path(d) / "lib", seed=seed)
            lib.write_personas(personas)
            s = elicit_library(lib, survey, ElicitOptions(option_order=order, progress=False), client=client)
            out.append({"wave": wave.name.rsplit("_", 1)[-1], "option_order": order, "constraint": s.constraint,
                        **s.position_bias})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=3)
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--waves", default=None, help="comma-separated wave tags (default: every wave found)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bias-wave", default=None, help="measure the position bias on this wave only (e.g. W26)")
    a = ap.parse_args()
    waves = sorted(p for p in WAVES.glob("American_Trends_Panel_W*") if p.is_dir())
    if a.waves:
        want = set(a.waves.split(","))
        waves = [w for w in waves if w.name.rsplit("_", 1)[-1] in want]
    with tempfile.TemporaryDirectory() as d:
        personas = pg.build(out=Path(d) / "pool", census=PUMS, n=a.personas, seed=a.seed).personas()
    rows: list[dict] = []
    if a.bias_wave:
        with LLMClient.create(backend="local", progress=False) as client:
            bias = position_bias(WAVES / f"American_Trends_Panel_{a.bias_wave}", personas, client, a.questions, a.seed)
        print("| wave | option order | first letter shown | expected from the options shown first | uniform |")
        print("|---|---|---|---|---|")
        for b in bias:
            print(f"| {b['wave']} | {b['option_order']} | {b['first_share']:.1%} | {b['expected_first_share']:.1%} "
                  f"| {b['uniform_first_share']:.1%} |")
        print(json.dumps({"personas": a.personas, "questions": a.questions, "seed": a.seed, "bias": bias}))
        return
    with LLMClient.create(backend="local", progress=False) as client:
        for w in waves:
            rows += run_wave(w, personas, client, a.questions, a.seed)
    print("| wave | mode | invalid, --constrain none | invalid, --constrain auto | covered mass (none): min / p05 / median |")
    print("|---|---|---|---|---|")
    for i in range(0, len(rows), 2):
        before, after = rows[i], rows[i + 1]
        m = before["mass"]
        mass = f"{m['min']:.2f} / {m['p05']:.2f} / {m['median']:.2f}" if m else "-"
        print(f"| {before['wave']} | {before['mode']} | {before['invalid']}/{before['answers']} "
              f"({before['invalid_share']:.0%}) | {after['invalid']}/{after['answers']} ({after['invalid_share']:.0%}"
              f", {after['constraint'] or 'unconstrained'}) | {mass} |")
    print(json.dumps({"personas": a.personas, "questions": a.questions, "seed": a.seed, "rows": rows}))


if __name__ == "__main__":
    main()
