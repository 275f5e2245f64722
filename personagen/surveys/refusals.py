"""The one rule for refusals and other non-substantive options ("Don't know", "Not sure", volunteered answers).

Two questions are asked of an option label, by every loader and by the schema:
* `is_refusal`: the label contains the word "refused" ("Refused", "DK/Refused", "No answer/refused"). Loaders drop
  these with `refused="drop"` (the default) and renormalise the other shares.
* `is_non_substantive`: a refusal, or a label that *is* a non-answer ("Don't know", "Dont know/can't remember",
  "Not sure", "No answer", "No opinion", "Missing; Unknown", "Prefer not to say") or an answer the interviewer
  does not read out ("Neither (VOL)", "Other (DO NOT READ)"). These keep their place last when options are
  reordered (`Survey.keep_last`). A label that merely starts with such words and goes on ("Don't know any of
  them", an answer on a knowledge scale) is substantive.
"""

from __future__ import annotations

import re

_REFUSED = re.compile(r"\brefused\b", re.I)
_NON_ANSWER = re.compile(
    r"^(dk|don'?t know|do not know|not sure|unsure|no answer|no opinion|missing|prefer not to (say|answer)"
    r"|can'?t (choose|say)|refused)(\s*[/;,(].*)?$", re.I)
_NOT_READ = re.compile(r"\((vol\.?|do not read)\)", re.I)


def _plain(label: str) -> str:
    """The label without surrounding quotes or spaces, typographic apostrophes as ASCII."""
    return str(label).strip().strip('"').strip().replace("\u2019", "'")


def is_refusal(label: str) -> bool:
    """True for a refusal option ("Refused", "DK/Refused"): dropped by the loaders' `refused="drop"`."""
    return bool(_REFUSED.search(_plain(label)))


def is_non_substantive(label: str) -> bool:
    """True for a refusal, a non-answer ("Don't know", "Not sure", "No answer") or a volunteered answer
    ("(VOL)", "(DO NOT READ)"): such options stay last when the options are shown in another order."""
    s = _plain(label)
    return bool(_REFUSED.search(s) or _NON_ANSWER.match(s) or _NOT_READ.search(s))


def keep_last_flags(options: list[str] | tuple[str, ...]) -> list[bool]:
    """Per option, whether it must stay last: the non-substantive options at the end of the list (a
    "Don't know" in the middle of a survey's list is left where the survey put it, so no flag)."""
    flags = [False] * len(options)
    for i in range(len(options) - 1, -1, -1):
        if not is_non_substantive(options[i]):
            break
        flags[i] = True
    return flags
