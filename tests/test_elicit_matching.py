"""Answer matching and logprob distributions (pure functions; the model runs in test_elicit.py)."""

from __future__ import annotations

import math

import pytest

from personagen.elicit import letter_distribution, letters_for, logprob_rows, match_answer, sample_rows
from personagen.llm import ChatResult

OPTS = ["Very good", "Somewhat good", "Somewhat bad", "Very bad"]


@pytest.mark.parametrize("text,idx,how", [
    ("A", 0, "letter"), (" B.", 1, "letter"), ("(C)", 2, "letter"), ("Answer: D", 3, "letter"),
    ("The answer is B", 1, "letter"), ("somewhat good", 1, "exact"), ("Somewhat  Good!", 1, "exact"),
    ("It is very bad indeed", 3, "contains"), ("Very goood", 0, "fuzzy"), ("I think", None, "unmatched"),
    ("E", None, "unmatched"), ("good", None, "unmatched"), ("", None, "unmatched"), (None, None, "unmatched"),
    ("banana", None, "unmatched"),
])
def test_match_answer(text, idx, how):
    assert match_answer(text, OPTS) == (idx, how)


def test_letter_distribution_strips_spaces_and_renormalises():
    tops = {"A": math.log(0.3), " A": math.log(0.1), "B": math.log(0.2), "a": math.log(0.2), "The": math.log(0.1)}
    probs, mass = letter_distribution(tops, 3)
    assert mass == pytest.approx(0.6)
    assert probs == pytest.approx([0.4 / 0.6, 0.2 / 0.6, 0.0])
    assert letter_distribution({"Hello": -0.1}, 2) == ([0.0, 0.0], 0.0)
    with pytest.raises(ValueError):
        letters_for(27)


def test_rows_from_results_malformed_output_is_invalid():
    ok = ChatResult(text="A", top_logprobs=[{"A": math.log(0.5), "B": math.log(0.3)}], cached=False, error=None)
    rows = logprob_rows("p", "s", "q", OPTS, ok, "m", 0.5)
    assert [r["option"] for r in rows] == OPTS and all(r["valid"] for r in rows)
    assert rows[0]["prob"] == pytest.approx(0.625) and rows[0]["mass"] == pytest.approx(0.8)
    junk = ChatResult(text="\u00bf", top_logprobs=[{"\u00bf": -0.01}], cached=False, error=None)
    [bad] = logprob_rows("p", "s", "q", OPTS, junk, "m", 0.5)
    assert not bad["valid"] and bad["option"] is None and bad["raw"] == "\u00bf"
    nolp = ChatResult(text="A", top_logprobs=None, cached=False, error=None)
    assert not logprob_rows("p", "s", "q", OPTS, nolp, "m", 0.0)[0]["valid"]
    rows, unmatched = sample_rows("p", "s", "q", OPTS, ["A", "Very bad", "lorem ipsum", None], "m")
    assert unmatched == 2
    valid = {r["option"]: r["prob"] for r in rows if r["valid"]}
    assert valid == {"Very good": 0.25, "Somewhat good": 0.0, "Somewhat bad": 0.0, "Very bad": 0.25}
    assert [r["raw"] for r in rows if not r["valid"]] == ["lorem ipsum", ""]
    assert sum(r["prob"] for r in rows) == pytest.approx(1.0)


# ---- the documented rules, each pinned by a case that breaks when the rule is dropped ----------------------
NESTED = ["Good", "Very good", "Bad"]


@pytest.mark.parametrize("text,options,expected", [
    # several options inside the text: the longest wins when it contains the others, otherwise ambiguous
    ("I'd say very good overall", NESTED, (1, "contains")),
    ("good and bad in equal parts", NESTED, (None, "unmatched")),
    # options match as whole words only: "art" inside "partial" is not the option "Art"
    ("partial answers only", ["Art", "Science"], (None, "unmatched")),
    ("mostly art, I suppose", ["Art", "Science"], (0, "contains")),
    # a lower-case letter is a word, not an option letter
    ("a", OPTS, (None, "unmatched")),
    ("b", OPTS, (None, "unmatched")),
    # ... but "b) Somewhat good" is still the option by its text after the letter
    ("b) somewhat good", OPTS, (1, "exact")),
    # letters and exact text are read from the first line only
    ("B\nA", OPTS, (1, "letter")),
    ("Somewhat good\nVery bad", OPTS, (1, "exact")),
    # fuzzy: best ratio >= 0.8 and >= 0.1 ahead of the runner-up (difflib ratios by hand below)
    ("v good", OPTS, (0, "fuzzy")),          # 0.800 vs 0.526
    ("vree good", OPTS, (None, "unmatched")),  # 0.778 < 0.8
    ("very gd", OPTS, (None, "unmatched")),    # 0.875 vs 0.800: not 0.1 ahead
    ("Très  BIEN", ["tres bien", "pas bien"], (0, "exact")),  # accents, case and spaces normalised
    ("Z", OPTS, (None, "unmatched")),
    # the longest option wins by its length, not by its position in the list
    ("very good overall", ["Very good", "Good", "Bad"], (0, "contains")),
    # "b) x": the text after a lower-case letter is the option itself (exact, not merely contained)
    ("b) x", ["X", "Y"], (0, "exact")),
    # fuzzy with one option (no runner-up) and with two close ones
    ("Yess", ["Yes"], (0, "fuzzy")),
    ("very gd", ["Very good", "Very bad"], (None, "unmatched")),
])
def test_match_answer_rules(text, options, expected):
    assert match_answer(text, options) == expected


def test_fuzzy_ratios_behind_the_cases():
    import difflib

    def ratio(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a, b).ratio()
    assert ratio("v good", "very good") == pytest.approx(0.8)
    assert ratio("vree good", "very good") == pytest.approx(7 / 9)
    assert (ratio("very gd", "very good"), ratio("very gd", "very bad")) == pytest.approx((0.875, 0.8))


def test_letter_distribution_edges():
    # NaN and None logprobs are skipped, not counted
    probs, mass = letter_distribution({"A": float("nan"), "B": math.log(0.5), "C": None}, 3)
    assert probs == pytest.approx([0.0, 1.0, 0.0]) and mass == pytest.approx(0.5)
    # "A" and " A" add up; the covered mass is capped at 1 (top logprobs of a lenient server may overlap)
    probs, mass = letter_distribution({"A": math.log(0.6), " A": math.log(0.6), "B": math.log(0.3)}, 2)
    assert probs == pytest.approx([0.8, 0.2]) and mass == 1.0
    # letters beyond the question's options are not counted
    assert letter_distribution({"C": math.log(0.9), "A": math.log(0.1)}, 2) == (pytest.approx([1.0, 0.0]),
                                                                               pytest.approx(0.1))
    # the full alphabet (26 options)
    probs, mass = letter_distribution({"Z": math.log(0.5)}, 26)
    assert probs[25] == 1.0 and mass == pytest.approx(0.5) and len(probs) == 26
    assert letter_distribution(None, 2) == ([0.0, 0.0], 0.0)
    assert letters_for(26)[-1] == "Z" and letters_for(1) == ["A"]
    with pytest.raises(ValueError, match="27 options: at most 26 can be lettered"):
        letters_for(27)


def test_normalise_by_hand():
    from personagen.elicit.matching import normalise

    assert normalise("  Très—BIEN!!  d'accord ") == "tres bien d accord"
    assert normalise("STRASSE") == normalise("straße") == "strasse"
    assert normalise("\tA\n\nB ") == "a b"
