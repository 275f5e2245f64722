"""Turn model output into survey options: option letters, logprob distributions, free-text answer matching."""

from __future__ import annotations

import difflib
import math
import re
import string
import unicodedata

LETTERS = string.ascii_uppercase
MAX_OPTIONS = len(LETTERS)
_LETTER_INDEX = {a: i for i, a in enumerate(LETTERS)}

_LETTER_RE = re.compile(
    r"^\W{0,3}(?:(?:the\s+)?answer(?:\s+is)?\s*[:\-]?\s*|option\s+|choice\s+)?\(?\[?([A-Za-z])(?:$|[\s]*[.):\]\-,]|\s*$)", re.IGNORECASE)
_PUNCT = re.compile(r"[^\w\s]")
_WS = re.compile(r"\s+")


def letters_for(n: int) -> list[str]:
    """Option letters A, B, ... for n options (at most 26)."""
    if n > MAX_OPTIONS:
        raise ValueError(f"{n} options: at most {MAX_OPTIONS} can be lettered")
    return list(LETTERS[:n])


def normalise(text: str) -> str:
    """Casefolded, accent-free, punctuation-free, single-spaced text."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c))
    return _WS.sub(" ", _PUNCT.sub(" ", t.casefold())).strip()


def letter_distribution(top_logprobs: dict[str, float] | None, n_options: int) -> tuple[list[float], float]:
    """(probabilities renormalised over the option letters, covered mass) from one token's top logprobs.

    Tokens are matched after stripping spaces ("A" and " A" both count for A; lower case does not)."""
    index = _LETTER_INDEX if n_options == MAX_OPTIONS else {a: i for i, a in enumerate(letters_for(n_options))}
    mass = [0.0] * n_options
    for tok, lp in (top_logprobs or {}).items():
        i = index.get(tok.strip())
        if i is not None and lp is not None and lp == lp:  # lp == lp: not NaN
            mass[i] += math.exp(lp)
    total = sum(mass)
    if total <= 0:
        return [0.0] * n_options, 0.0
    return [m / total for m in mass], min(total, 1.0)


def match_answer(text: str | None, options: list[str]) -> tuple[int | None, str]:
    """Match a free-text answer to an option index: by letter, then exact text, then fuzzy (difflib).

    Returns (index, how) with how in {"letter", "exact", "contains", "fuzzy"}, or (None, "unmatched")."""
    if text is None:
        return None, "unmatched"
    s = text.strip()
    if not s:
        return None, "unmatched"
    letters = letters_for(len(options))
    first = s.splitlines()[0].strip()
    m = _LETTER_RE.match(first)
    if m and m.group(1) in letters:  # upper-case letters only: "a" or "I think" are words, not letters
        return letters.index(m.group(1)), "letter"
    norm_opts = [normalise(o) for o in options]
    ns = normalise(first)
    # "A. Agree" style answers whose letter is lower case or spaced are caught by exact text after the letter
    stripped = re.sub(r"^[a-z]\s+", "", ns) if len(ns) > 2 else ns
    for cand in (ns, stripped):
        if cand in norm_opts:
            return norm_opts.index(cand), "exact"
    full = normalise(s)
    inside = [i for i, o in enumerate(norm_opts) if o and re.search(rf"(?<!\w){re.escape(o)}(?!\w)", full)]
    if len(inside) == 1:
        # also make sure no other option is a superstring present (e.g. "good" inside "very good")
        return inside[0], "contains"
    if len(inside) > 1:
        longest = max(inside, key=lambda i: len(norm_opts[i]))
        if all(norm_opts[i] in norm_opts[longest] for i in inside):
            return longest, "contains"
        return None, "unmatched"
    probe = ns[: 2 * max(len(o) for o in norm_opts) + 10]
    scores = sorted(((difflib.SequenceMatcher(None, probe, o).ratio(), i) for i, o in enumerate(norm_opts)),
                    reverse=True)
    best, i = scores[0]
    second = scores[1][0] if len(scores) > 1 else 0.0
    if best >= 0.8 and best - second >= 0.1:
        return i, "fuzzy"
    return None, "unmatched"
