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
