"""Subpopulation steering prompts (SubPOP, paper 003): one steering text per (attribute, group) in the QA,
BIO and PORTRAY formats (sec. 4.1, Fig. 14, appendix D), and the completion prompt whose next token is the
option letter. The wording lives in templates/subpop/ (groups.yaml + Jinja files), not here.

SubPOP fine-tunes and evaluates base (non-chat) models with plain completion prompts (sec. 4.2); these
prompts are therefore never wrapped in a chat template.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from personagen.errors import BadInput
from personagen.resources import resource_dir, templates_dir
from personagen.templating import render

FORMATS = ("qa", "bio", "portray")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SUFFIX = re.compile(r"\s+\(([A-Z_]+)\)$")  # "Other (RACE)": the loader's tag for a label shared by attributes


@dataclass(frozen=True)
class Steering:
    """A subpopulation to steer towards: its attribute (e.g. "CREGION"), group label and prompt format."""

    attribute: str
    group: str
    format: str = "qa"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise BadInput(f"--format {self.format!r}: expected one of {', '.join(FORMATS)}")


@functools.lru_cache(maxsize=1)
def _wording() -> dict[str, dict]:
    path = templates_dir() / "subpop" / "groups.yaml"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise BadInput(f"{path}: unreadable steering wording ({type(e).__name__})") from None


def group_label(group: str) -> str:
    """The group as people say it: the loader's "(ATTR)" disambiguation tag removed."""
    return _SUFFIX.sub("", group)


def attribute_wording(attribute: str) -> dict[str, object]:
    """The attribute's wording from templates/subpop/groups.yaml (the `_default` entry when unknown)."""
    w = _wording()
    entry = dict(w.get(attribute) or w["_default"])
    entry["label"] = str(entry["label"]).replace("{attribute}", attribute.lower())
    return entry


def lettered(options: Sequence[str]) -> list[dict[str, str]]:
    if len(options) > len(LETTERS):
        raise BadInput(f"{len(options)} options: at most {len(LETTERS)} can be lettered")
    return [{"letter": LETTERS[i], "text": o} for i, o in enumerate(options)]


def steering_text(s: Steering) -> str:
    """The steering preamble for one subpopulation (empty for the overall population)."""
    if s.attribute == "overall":
        return ""
    w = attribute_wording(s.attribute)
    g = group_label(s.group)
    if s.format == "qa":
        opts = [str(o) for o in w["options"]]  # type: ignore[union-attr]
        if g not in opts:
            opts.append(g)
        return render("subpop/qa.j2", question=w["qa"], options=lettered(opts), letter=LETTERS[opts.index(g)],
                      group=g)
    if s.format == "bio":
        return render("subpop/bio.j2", sentence=str(w["bio"]).replace("{group}", g))
    return render("subpop/portray.j2", clause=str(w["portray"]).replace("{group}", g))


STEERING_ENV = "PERSONAGEN_SUBPOP_STEERING"
_OFFICIAL_REL = ("shared", "data", "subpop", "subpopulation_metadata", "steering_prompts.json")


def official_steering_path() -> Path | None:
    """The authors' steering_prompts.json: $PERSONAGEN_SUBPOP_STEERING ("" or "none": ours only), else
    ../shared/data/subpop/subpopulation_metadata/ beside the checkout; None when absent."""
    env = os.environ.get(STEERING_ENV)
    if env is not None:
        return Path(env) if env.strip() and env.strip().lower() != "none" else None
    cand = resource_dir("templates").parent.parent.joinpath(*_OFFICIAL_REL)
    return cand if cand.is_file() else None


@functools.lru_cache(maxsize=4)
def _official(path: str | None) -> dict[str, dict]:
    if path is None:
        return {}
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
        return {str(r["attribute"]): {**r, "options": [str(o) for o in ast.literal_eval(r["options"])]}
                for r in rows}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, SyntaxError):
        raise BadInput(f"{path}: not a SubPOP steering_prompts.json (a list of attribute records)") from None


def official_prompts() -> dict[str, dict]:
    """{attribute: the authors' record (qa_prompt, bio_prompt, portray_prompt, options)}; {} without the file."""
    p = official_steering_path()
    return _official(str(p) if p else None)


def _official_prompt(s: Steering, question: str, options: Sequence[str]) -> str | None:
    """The authors' prompt (templates/subpop/official.j2) when the official file covers this group, else None."""
    table = official_prompts()
    if not table:
        return None
    g = group_label(s.group)
    rec = table.get(s.attribute)
    if s.attribute == "overall":
        fmt, steer, steer_opts = "none", "", []
    elif rec is None or g not in rec["options"]:
        return None
    else:
        fmt, steer_opts = s.format, rec["options"]
        steer = str(rec[f"{s.format}_prompt"]).strip()
        if s.format != "qa":
            steer = ".\n".join(steer.split(". "))
    return render("subpop/official.j2", format=fmt, steer=steer, steer_options=lettered(steer_opts),
                  letter=LETTERS[steer_opts.index(g)] if fmt == "qa" else "", group=g, question=question.strip(),
                  options=lettered([o.strip() for o in options]),
                  choices=",".join(f"{c}." for c in LETTERS[: len(options)]))


def question_prompt(s: Steering, question: str, options: Sequence[str]) -> str:
    """The full completion prompt ending in "Answer:" (the next token is read as the option letter): the
    authors' official wording (Fig. 14) for the groups their steering_prompts.json covers, ours otherwise."""
    official = _official_prompt(s, question, options)
    if official is not None:
        return official
    letters = ", ".join(LETTERS[: len(options)])
    steer = steering_text(s)
    return render("subpop/question.j2", steering=steer, follow_up=bool(steer) and s.format == "qa",
                  question=question, options=lettered(options), letters=letters)


def distribution_json(dist: Sequence[float]) -> str:
    """A distribution as Fig. 15 prints it: {'A': 0.050, 'B': 0.210, ...} (three decimals, Python-style quotes;
    `parse_distribution` reads it back)."""
    return "{" + ", ".join(f"'{LETTERS[i]}': {float(p):.3f}" for i, p in enumerate(dist)) + "}"


def fewshot_prompt(attribute: str, group: str, shots: Sequence[tuple[str, Sequence[str], Sequence[float]]],
                   question: str, options: Sequence[str]) -> str:
    """The few-shot prompt (appendix D, Fig. 15): shots are (question, options, the group's distribution),
    given in ascending similarity so the most similar sits next to the test question."""
    w = attribute_wording(attribute)
    shot_ctx = [{"question": q, "options": lettered(o), "json": distribution_json(d)} for q, o, d in shots]
    return render("subpop/fewshot.j2", label=w["label"], group=group_label(group), shots=shot_ctx,
                  question=question, options=lettered(options))


_JSON_RE = re.compile(r"\{[^{}]*\}")


def parse_distribution(text: str | None, n_options: int) -> list[float] | None:
    """The first {"A": p, ...} object in a generation, renormalised over the n options; None if unusable.

    Accepts single quotes (Fig. 15 prints Python-style dicts); letters beyond the options are ignored."""
    if not text:
        return None
    m = _JSON_RE.search(text)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0).replace("'", '"'))
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    vals = []
    for letter in LETTERS[:n_options]:
        v = obj.get(letter, 0.0)
        try:
            v = float(v)
        except (TypeError, ValueError):
            return None
        vals.append(max(v, 0.0) if v == v else 0.0)
    tot = sum(vals)
    return [v / tot for v in vals] if tot > 0 else None
