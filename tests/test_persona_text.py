"""Persona texts read like a person: phrase coverage of every codebook code, the checker's rules, and the
checker run over 20,000 rendered personas per state (VT, WY, HI) in every style (rendering only, no model)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from personagen.census import load_population, make_phrases
from personagen.errors import BadInput
from personagen.personas import STYLES, CheckOptions, check_personas, render_personas
from personagen.resources import census_dir

CENSUS = census_dir()
VINTAGES = ("2018", "2021")


def _yaml(name: str) -> dict:
    return yaml.safe_load((CENSUS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("vintage", VINTAGES)
def test_every_occupation_and_industry_code_has_a_phrase(vintage: str) -> None:
    labels = _yaml(f"codebook_{vintage}.yaml")["variables"]
    jobs = _yaml(f"jobs_{vintage}.yaml")
    for var, key, starts in (("OCCP", "occupation", ("a ", "an ")), ("INDP", "industry", ("in ", "at ", "as "))):
        for code, label in labels[var]["labels"].items():
            if label is None or code == 9920:  # 9920: did not work in the past five years -> nothing to say
                continue
            phrase = jobs[key].get(code)
            assert phrase, (var, code, label)
            assert phrase.startswith(starts), (code, phrase)
            for bad in ("N.E.C", "(", ")", "all other", "  ", "Not specified", "not specified", "--"):
                assert bad not in phrase, (code, label, phrase)
        assert jobs[key].get(9920) is None


def test_generated_job_files_are_current_and_rules_singularise() -> None:
    assert make_phrases.main(["--check"]) == 0  # committed YAML == generator output
    assert make_phrases.occupation_phrase("Marketing managers") == "a marketing manager"
    assert make_phrases.occupation_phrase("Hairdressers, hairstylists, and cosmetologists") == \
        "a hairdresser, hairstylist, or cosmetologist"
    assert make_phrases.occupation_phrase("Bus drivers, school") == "a school bus driver"
    assert make_phrases.occupation_phrase("Computer, automated teller, and office machine repairers") == \
        "a computer, automated teller, and office machine repairer"
    assert make_phrases.occupation_phrase("Actuaries") == "an actuary"
    assert make_phrases.industry_phrase(4880, "Hardware stores") == "at a hardware store"
    assert make_phrases.industry_phrase(1170, "Dairy products") == "in dairy products manufacturing"
    assert make_phrases.industry_phrase(1280, "Seafood and other miscellaneous foods, N.E.C.") == \
        "in seafood and other miscellaneous foods manufacturing"


@pytest.mark.parametrize("vintage", VINTAGES)
def test_every_small_vocabulary_label_has_a_phrase(vintage: str) -> None:
    labels = _yaml(f"codebook_{vintage}.yaml")["variables"]
    phrases = _yaml("phrases.yaml")
    for var, key in (("SCHL", "education"), ("ESR", "employment"), ("COW", "class_of_worker"),
                     ("MAR", "marital_status"), ("MIL", "veteran"), ("DIS", "disability"), ("FER", "fertility"),
                     ("CIT", "citizenship"), ("NATIVITY", "nativity"), ("ENG", "english_ability")):
        for label in labels[var]["labels"].values():
            if label is not None:
                assert label in phrases[key]["say"], (var, label)
    assert set(labels["ESR"]["labels"].values()) <= set(phrases["employment"]["status"])


# Texts in the census-form style the issue reported; each must be flagged by the named rule.
_ROW = {"employment": "Not in labor force", "occupation": "Cashiers", "industry": "Hardware stores",
        "citizenship": "Born in the US"}
BAD = [
    ("bio", "I currently reside in Vermont. My employment status is Not in labor force. I work as Cashiers.",
     {"contradiction", "raw_label", "form_like", "plural_title"}),
    ("narrative", "You are a man. Employment: Not in labor force. Your occupation: Cashiers, in Hardware stores",
     {"form_like", "raw_label", "plural_title"}),
    ("narrative", "You were born in Vermont (Native-born). Your citizenship status: Born in the US.",
     {"raw_label", "form_like"}),
    ("narrative", "You are a man.  Military service: Never served.", {"artifact", "form_like", "raw_label"}),
    ("bio", "I am {{ age }} years old , and my income is None.", {"artifact"}),
    ("qa", "Question: Are you a citizen of the United States?\nAnswer: Born in the US", {"qa_misfit"}),
    ("qa", "Question: Are you of Hispanic, Latino or Spanish origin?\nAnswer: Not Hispanic", {"qa_misfit"}),
    ("qa", "Question: What is your occupation?\nAnswer: Yes\n\nQuestion: How old are you?\nAnswer:",
     {"qa_misfit", "artifact"}),
    ("portray", "Answer the following question as if your employment status were Employed; you were a engineer.",
     {"grammar", "form_like"}),
    ("bio", "I work in Seafood and other miscellaneous foods, N.E.C.", {"raw_label", "contradiction"}),
]


@pytest.mark.parametrize(("style", "text", "rules"), BAD)
def test_checker_flags_each_defect_class(style: str, text: str, rules: set[str]) -> None:
    df = pl.DataFrame([{**_ROW, f"text_{style}": text}])
    res = check_personas(df, CheckOptions(styles=(style,)))
    flagged = {r for r, k in res.counts[style].items() if k}
    assert rules <= flagged, (flagged, text)
    assert res.rate(style) == 1.0 and res.any_style == 1


def test_checker_passes_natural_texts_and_validates_options() -> None:
    good = {"text_bio": "I currently reside in Vermont. I am not working and not looking for work. I last worked as "
                        "a cashier at a hardware store, for a private company. I was born in Vermont.",
            "text_qa": "Question: Are you a citizen of the United States?\nAnswer: Yes, by birth\n\n"
                       "Question: What was your most recent occupation?\nAnswer: Cashier"}
    res = check_personas(pl.DataFrame([{**_ROW, **good}]), CheckOptions(styles=("bio", "qa")))
    assert res.any_style == 0, res.examples
    with pytest.raises(BadInput, match="styles"):
        CheckOptions(styles=("essay",))
    with pytest.raises(BadInput, match="text_portray"):
        check_personas(pl.DataFrame([good]), CheckOptions(styles=("portray",)))


STATES = {"VT": "psam_p50.csv.gz", "WY": "psam_p56.csv.gz", "HI": "psam_p15.csv.gz"}


@pytest.mark.parametrize("state", sorted(STATES))
def test_rendered_personas_read_like_a_person(shared_data: Path, state: str) -> None:
    """≥ 20,000 personas per state, all ages 15+, every style: fewer than 1 in 100 with any defect."""
    path = shared_data / "acs_pums" / STATES[state]
    if not path.is_file():
        pytest.skip(f"{path} not present")
    people = load_population(path, min_age=15).sample(20_000, with_replacement=True, seed=11)
    res = check_personas(render_personas(people, STYLES))
    rates = {s: res.rate(s) for s in STYLES}
    print(f"{state}: any-style defect rate {res.rate():.4f}; per style {rates}; counts {res.counts}")
    assert res.n == 20_000
    assert res.rate() < 0.01, (rates, res.counts, res.examples)
