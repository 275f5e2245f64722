"""Synthetic test fixtures, generated (never copied from real data): PUMS-shaped person rows and a mini
OpinionQA-shaped wave, so the core path (build -> elicit -> calibrate -> publish) runs from the repository alone.

Every value is drawn with a seeded generator from the codes of the shipped codebook (census/codebook_<year>.yaml)
and from invented questions; no record, count or question text comes from ../shared/data.

    python tests/data/make_fixtures.py OUT_DIR [--rows 400] [--state VT] [--year 2021] [--seed 0]

writes OUT_DIR/psam_p<FIPS>.csv (PUMS person file layout) and OUT_DIR/American_Trends_Panel_W99/ (info.csv and
<ATTR>_data.json respondent counts). Tests call `make_pums` / `make_opinionqa_wave` directly (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from personagen.census.codebook import codebook, resolve_state  # noqa: E402

# decoded PUMS variables drawn uniformly from the codebook's labelled codes (adults' values; see _person)
CODED = ("SEX", "RAC1P", "HISP", "SCHL", "MAR", "CIT", "NATIVITY", "DIS", "ENG", "ESR", "COW", "MIL")
COLUMNS = ("RT", "SERIALNO", "SPORDER", "PUMA", "ST", "ADJINC", "PWGTP", "AGEP", *CODED, "OCCP", "INDP", "PINCP",
           "HICOV", "HINS1", "HINS2", "HINS3", "LANX")


def _codes(cb: dict[str, dict[int, str | None]], var: str) -> list[int]:
    return sorted(k for k, v in cb[var].items() if v is not None)


def _person(rng: np.random.Generator, cb: dict, i: int, year: int, fips: int) -> dict[str, object]:
    age = int(rng.integers(18, 96)) if rng.random() < 0.9 else int(rng.integers(0, 18))
    row: dict[str, object] = {c: "" for c in COLUMNS}
    row.update(RT="P", SERIALNO=f"{year}HU{i // 2 + 1:07d}", SPORDER=i % 2 + 1, PUMA=f"{100 + i % 4:05d}",
               ST=f"{fips:02d}", ADJINC="1029928", PWGTP=int(rng.integers(5, 200)), AGEP=age)
    for var in ("SEX", "RAC1P", "HISP", "MAR", "CIT", "NATIVITY", "DIS", "HICOV", "LANX"):
        if var in cb:
            row[var] = int(rng.choice(_codes(cb, var)))
    if age >= 18:  # education, work, income, languages: only where the PUMS universe has them (rules.yaml)
        row["SCHL"] = int(rng.choice([c for c in _codes(cb, "SCHL") if c >= 16]))
        row["ESR"] = int(rng.choice([c for c in _codes(cb, "ESR") if c in (1, 3, 6)]))
        if row["ESR"] == 1:
            row["COW"] = int(rng.choice(_codes(cb, "COW")[:7]))
            row["OCCP"] = int(rng.choice(_codes(cb, "OCCP")))
            row["INDP"] = int(rng.choice(_codes(cb, "INDP")))
        row["PINCP"] = int(rng.integers(0, 150_000))
        row["MIL"] = int(rng.choice(_codes(cb, "MIL")))
        row["ENG"] = "" if row["LANX"] == 2 else int(rng.choice(_codes(cb, "ENG")))
    for h in ("HINS1", "HINS2", "HINS3"):
        row[h] = int(rng.choice([1, 2]))
    return row


def make_pums(out: str | Path, rows: int = 400, *, state: str = "VT", year: int = 2021, seed: int = 0) -> Path:
    """Write `rows` synthetic PUMS person records of one state as OUT/psam_p<FIPS>.csv; returns the path."""
    _, fips, _ = resolve_state(state)
    cb = codebook(year)
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"psam_p{fips}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for i in range(rows):
            w.writerow(_person(rng, cb, i, year, int(fips)))
    return path


# an invented wave: questions, ordered options, the groups of each single-attribute count file
QUESTIONS = [
    ("PARKS_W99", "Should the town spend more on public parks?", ["Yes", "No"]),
    ("TRAIN_W99", "How often do you take the train?", ["Often", "Sometimes", "Never"]),
    ("COFFEE_W99", "How many cups of coffee do you drink on a usual day?", ["None", "One", "Two or more"]),
    ("BOOKS_W99", "Did you read a book for pleasure last month?", ["Yes", "No"]),
    ("GARDEN_W99", "How much do you enjoy gardening?", ["A lot", "A little", "Not at all"]),
    ("BIKE_W99", "Would you use a bike lane on your street?", ["Yes", "No", "Not sure"]),
    ("RADIO_W99", "How often do you listen to the radio?", ["Daily", "Weekly", "Rarely", "Never"]),
    ("MARKET_W99", "Do you shop at a farmers market?", ["Often", "Sometimes", "Never"]),
]
GROUPS = {"CREGION": ["Northeast", "Midwest", "South", "West"], "SEX": ["Male", "Female"],
          "AGE": ["18-29", "30-49", "50-64", "65+"]}


def make_opinionqa_wave(out: str | Path, *, seed: int = 0, name: str = "American_Trends_Panel_W99") -> Path:
    """Write an OpinionQA-shaped wave folder OUT/NAME (info.csv, <ATTR>_data.json counts); returns it."""
    rng = np.random.default_rng(seed)
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "info.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["", "key", "question", "references", "option_ordinal"])
        for i, (key, text, opts) in enumerate(QUESTIONS):
            w.writerow([i, key, text, repr([*opts, "Refused"]), repr([float(k + 1) for k in range(len(opts))])])
    for attr, groups in GROUPS.items():
        data = {}
        for key, text, opts in QUESTIONS:
            entry: dict[str, object] = {"MC_options": [*opts, "Refused"], "question_text": text}
            for g in groups:
                counts = rng.multinomial(int(rng.integers(80, 400)), rng.dirichlet(np.ones(len(opts) + 1) * 3))
                entry[g] = {o: float(c) for o, c in zip([*opts, "Refused"], counts)}
            data[key] = entry
        (folder / f"{attr}_data.json").write_text(json.dumps(data), encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--state", default="VT")
    ap.add_argument("--year", type=int, default=2021)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(make_pums(a.out, a.rows, state=a.state, year=a.year, seed=a.seed))
    print(make_opinionqa_wave(a.out, seed=a.seed))


if __name__ == "__main__":
    main()
