"""Coverage of `estimate`'s two intervals of the human shares on real OpinionQA waves with the bundled model.

Per wave: `--personas` personas built from Vermont PUMS answer `--questions` seeded questions of the wave
(bundled SmolLM2 on the local llama.cpp server, logprobs mode); the library is kept under `--work` so a second
run only re-analyses. Then `--resplits` times: the questions are shuffled into `--new` "new" questions (never
shown to the calibration) and the rest, which are split train/valid/test 50/25/25 and calibrated on (simplex,
λ by CV, `--replicates` bootstrap replicate weights); `estimate` of the new questions gives the sampling interval
(lo/hi) and, from the calibration's held-out (valid + test) questions, the split-conformal prediction interval
(plo/phi). Reported per wave over every re-split's new (question, option) rows, overall group: the share of rows
whose human share lies in [lo, hi] and in [plo, phi], with the mean widths.

Usage: nice -n 19 .venv/bin/python benchmarks/estimate_real.py [--waves W41,W82] [--personas 30] [--questions 50]
       [--new 15] [--resplits 20] [--level 0.9] [--replicates 40] [--work /tmp/estimate_real]
Prints a Markdown table and one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

import personagen as pg
from personagen import Library
from personagen.calibrate import CalibrateOptions, EstimateOptions, calibrate_library, estimate_library
from personagen.elicit import ElicitOptions, elicit_library
from personagen.llm import LLMClient
from personagen.surveys import import_opinionqa

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WAVES = DATA / "opinionqa" / "human_resp"
PUMS = DATA / "acs_pums" / "psam_p50.csv.gz"


def elicited(wave: str, a: argparse.Namespace, client_box: list) -> tuple[Library, object]:
    """The wave's library under --work (built and elicited on first use) and the survey of its questions."""
    survey = import_opinionqa(WAVES / f"American_Trends_Panel_{wave}")
    qids = sorted(random.Random(a.seed).sample(survey.qids, min(a.questions, len(survey.qids))))
    survey = survey.subset(qids)
    root = Path(a.work) / f"{wave}_p{a.personas}_q{a.questions}_s{a.seed}"
    lib_dir = root / "lib"
    if (root / "done").is_file():
        return Library.open(lib_dir), survey
    root.mkdir(parents=True, exist_ok=True)
    if (lib_dir / "manifest.json").is_file():  # an interrupted run: elicit skips the answers already stored
        lib = Library.open(lib_dir)
    else:
        lib = pg.build(out=lib_dir, census=PUMS, n=a.personas, seed=a.seed)
    if not client_box:
        client_box.append(LLMClient.create(backend="local", progress=False))
    t0 = time.perf_counter()
    s = elicit_library(lib, survey, ElicitOptions(mode="logprobs", progress=False), client=client_box[0])
    print(json.dumps({"wave": wave, "elicit_seconds": round(time.perf_counter() - t0, 1),
                      "summary": {k: v for k, v in s.to_dict().items() if isinstance(v, int | float | str)}}),
          file=sys.stderr, flush=True)
    (root / "done").write_text("ok\n")
    return lib, survey


def resplit(lib: Library, survey: object, s: int, a: argparse.Namespace) -> dict:
    """One re-split: calibrate on the non-new questions, estimate the new ones; their rows' hits and widths."""
    qids = list(survey.qids)
    random.Random(1000 + s).shuffle(qids)
    new, rest = sorted(qids[:a.new]), sorted(qids[a.new:])
    cal_survey = survey.subset(rest).with_splits(seed=s, fractions=(0.5, 0.25, 0.25))
    name = f"resplit{s}"
    opts = EstimateOptions(calibration=name, level=a.level)
    with warnings.catch_warnings():  # the caveats (few personas keep weight, ...) are expected at this size
        warnings.simplefilter("ignore")
        cal = calibrate_library(lib, cal_survey, CalibrateOptions(
            name=name, replicates=a.replicates, n_boot=50, overwrite=True, seed=s,
            replicate_penalty=a.replicate_penalty))
        ho = estimate_library(lib, cal_survey, opts)
        est = estimate_library(lib, survey.subset(new), opts).table
    g = ho.prediction["groups"]["overall"]
    q = g["halfwidth"]
    t = est.filter((pl.col("group") == "overall") & pl.col("target").is_not_null())
    err = (t["estimate"] - t["target"]).abs().to_numpy()
    inside = ((t["target"] >= t["lo"]) & (t["target"] <= t["hi"])).to_numpy()
    return {"resplit": s, "rows": t.height, "lam": cal.report.lam, "ess": cal.report.ess, "heldout_questions": g["heldout_questions"], "halfwidth": q,
            "prediction_hits": int(np.sum(err <= q)) if q is not None else None, "sampling_hits": int(inside.sum()),
            "sampling_halfwidth": float(((t["hi"] - t["lo"]) / 2).mean()), "mean_abs_error": float(err.mean()),
            "heldout_loqo_coverage": g["coverage"], "heldout_sampling_coverage": g["sampling_coverage"]}


def summary(wave: str, runs: list[dict]) -> dict:
    """Coverage over every re-split's new rows (prediction only where a half-width could be formed)."""
    ok = [r for r in runs if r["halfwidth"] is not None]
    rows = sum(r["rows"] for r in runs)
    prow = sum(r["rows"] for r in ok)
    return {"wave": wave, "resplits": len(runs), "new_rows": rows,
            "prediction_coverage": sum(r["prediction_hits"] for r in ok) / prow if prow else None,
            "sampling_coverage": sum(r["sampling_hits"] for r in runs) / rows,
            "mean_prediction_halfwidth": float(np.mean([r["halfwidth"] for r in ok])) if ok else None,
            "mean_sampling_halfwidth": float(np.mean([r["sampling_halfwidth"] for r in runs])),
            "mean_abs_error": float(np.mean([r["mean_abs_error"] for r in runs])),
            "resplits_without_prediction": len(runs) - len(ok),
            "median_ess": float(np.median([r["ess"] for r in runs if r["ess"] is not None] or [np.nan]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--waves", default="W41,W82")
    for name, default in (("personas", 30), ("questions", 50), ("new", 15), ("resplits", 20), ("replicates", 40),
                          ("seed", 0)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--work", default="/tmp/estimate_real")
    ap.add_argument("--elicit-only", action="store_true")
    ap.add_argument("--replicate-penalty", default="fixed", choices=("fixed", "cv"))
    a = ap.parse_args()
    box: list = []
    libs = {}
    try:
        for w in a.waves.split(","):
            libs[w] = elicited(w, a, box)
    finally:
        for c in box:
            c.close()
    if a.elicit_only:
        return
    t0 = time.process_time()
    out = []
    for w, (lib, survey) in libs.items():
        runs = [resplit(lib, survey, s, a) for s in range(a.resplits)]
        out.append(summary(w, runs))
        print(json.dumps({"wave": w, "runs": runs}), file=sys.stderr, flush=True)
    print("| wave | re-splits | new rows | prediction [plo, phi] covers | sampling [lo, hi] covers | "
          "mean half-widths (prediction / sampling) | mean abs error |")
    print("|---|---|---|---|---|---|---|")
    for o in out:
        pc = "-" if o["prediction_coverage"] is None else f"{o['prediction_coverage']:.3f}"
        ph = "-" if o["mean_prediction_halfwidth"] is None else f"{o['mean_prediction_halfwidth']:.3f}"
        print(f"| {o['wave']} | {o['resplits']} | {o['new_rows']} | {pc} | {o['sampling_coverage']:.3f} | "
              f"{ph} / {o['mean_sampling_halfwidth']:.4f} | {o['mean_abs_error']:.3f} |")
    print(json.dumps({"settings": vars(a), "cpu_seconds": round(time.process_time() - t0, 1), "waves": out}))


if __name__ == "__main__":
    main()
