"""P2P attribute learner and endowment model (Prompts to Proxies, Wang, Khoo & Wang 2025, §3.1–3.2).

- Attribute learner: asks the model for attributes that would split respondents on the survey as a whole
  (survey-level, source "learned") and on one question (question-level, used to *patch* low-entropy
  questions). List output is parsed robustly (numbered, bulleted, JSON, comma lists).
- Endowment model: given a sampled attribute set (≤ 10 attributes), asks for n distinct personas as JSON.
  Output is parsed robustly (fences stripped, trailing commas / quotes repaired); unparseable output is
  retried once with a fix-up prompt; what still fails is counted and, with fallback="attributes", replaced
  by an attributes-only endowment (the attribute set itself is the persona), so the budget is always met.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from personagen import llm
from personagen.llm import clean_text, parse_json, parse_list

_TEXT_KEYS = ("description", "persona", "profile", "summary", "bio", "text", "background", "about")


@dataclass
class Endowment:
    """One generated agent: its persona text and where it came from."""

    source: str  # bank | learned | mixed
    mode: str
    attributes: list[str]
    description: str = ""
    values: dict[str, str] = field(default_factory=dict)
    parsed: bool = True
    qid: str | None = None

    def narrative(self, templates: str | os.PathLike | None = None) -> str:
        return llm.prompt("endow/narrative.j2", templates, description=self.description,
                            values=self.values, attributes=self.attributes)


@dataclass
class Counters:
    """Failure counters of the model calls (reported in the run log)."""

    calls: int = 0
    empty: int = 0
    json_failures: int = 0
    fixups: int = 0
    fixup_successes: int = 0
    fallbacks: int = 0
    list_failures: int = 0
    question_learner_empty: int = 0  # P2P patching: questions for which the attribute learner returned nothing

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def personas_from_json(data: Any, n: int) -> list[tuple[str, dict[str, str]]]:
    """Extract up to n (description, attribute values) pairs from parsed endowment JSON of any shape."""
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if lists else [data]
    if not isinstance(data, list):
        return []
    out: list[tuple[str, dict[str, str]]] = []
    for item in data:
        desc, vals = "", {}
        if isinstance(item, str):
            desc = item
        elif isinstance(item, dict):
            for k in _TEXT_KEYS:
                if isinstance(item.get(k), str) and item[k].strip():
                    desc = item[k]
                    break
            attrs = item.get("attributes")
            if isinstance(attrs, dict):
                vals = {str(k): str(v) for k, v in attrs.items() if v not in (None, "") and not isinstance(v, dict | list)}
            if not desc:
                desc = " ".join(str(v) for k, v in item.items() if isinstance(v, str) and k != "attributes")
        desc = clean_text(desc, max_chars=800)
        if len(desc) >= 8 or vals:
            out.append((desc, dict(list(vals.items())[:10])))
        if len(out) >= n:
            break
    return out


def generate_endowments(client: Any, specs: list[dict], *, topic: str, counters: Counters,
                        templates: str | os.PathLike | None = None, fallback: str = "attributes",
                        max_tokens: int = 320, salt: object = 0) -> list[list[Endowment]]:
    """Run the endowment model for each spec {source, mode, attributes, n, question?, qid?, vanilla?}.

    Returns, per spec, up to n Endowments (exactly n with fallback="attributes").
    """
    system = llm.prompt("endow/system.j2", templates)
    reqs = []
    for j, s in enumerate(specs):
        name = "endow/vanilla.j2" if s.get("vanilla") else "endow/endowment.j2"
        user = llm.prompt(name, templates, n=s["n"], topic=topic, attributes=s.get("attributes") or [],
                            mode=s.get("mode") if s.get("source") == "bank" else None, question=s.get("question"))
        reqs.append(llm.request(user, system=system, temperature=1.0, max_tokens=max_tokens,
                                  seed=llm.seed_of("endow", salt, j, s.get("mode"), s.get("attributes"))))
    outs = llm.texts(client, reqs, desc="endow")
    counters.calls += len(reqs)
    parsed: list[list[tuple[str, dict[str, str]]] | None] = []
    fix_idx = []
    for j, (s, text) in enumerate(zip(specs, outs)):
        if not text:
            counters.empty += 1
        got = personas_from_json(parse_json(text), s["n"]) if text else []
        if not got:
            counters.json_failures += 1
            if text:
                fix_idx.append(j)
            parsed.append(None)
        else:
            parsed.append(got)
    if fix_idx:  # one fix-up retry per failed call
        fix_reqs = [llm.request(llm.prompt("endow/fixup.j2", templates, text=outs[j][:2000]), system=system,
                                  temperature=0.0, max_tokens=max_tokens) for j in fix_idx]
        counters.fixups += len(fix_reqs)
        counters.calls += len(fix_reqs)
        for j, text in zip(fix_idx, llm.texts(client, fix_reqs, desc="endow-fixup")):
            got = personas_from_json(parse_json(text), specs[j]["n"]) if text else []
            if got:
                counters.fixup_successes += 1
                parsed[j] = got
    result: list[list[Endowment]] = []
    for s, got in zip(specs, parsed):
        items = [Endowment(s["source"], s["mode"], list(s.get("attributes") or []), d, v, True, s.get("qid"))
                 for d, v in (got or [])]
        missing = s["n"] - len(items)
        if missing > 0 and fallback == "attributes":
            counters.fallbacks += missing
            items += [Endowment(s["source"], s["mode"], list(s.get("attributes") or []), "", {}, False, s.get("qid"))
                      for _ in range(missing)]
        result.append(items)
    return result


def learn_survey_attributes(client: Any, questions: list[str], *, n: int = 15, counters: Counters,
                            templates: str | os.PathLike | None = None, max_tokens: int = 200) -> list[str]:
    """Survey-level attributes from the model (may be empty for a useless model; the caller falls back)."""
    user = llm.prompt("endow/learn_survey.j2", templates, questions=questions[:40], n=n)
    [text] = llm.texts(client, [llm.request(user, temperature=0.0, max_tokens=max_tokens)], desc="learn")
    counters.calls += 1
    items = [a for a in parse_list(text, max_items=n, max_len=100) if len(a.split()) <= 12]
    if not items:
        counters.list_failures += 1
    return items


def learn_question_attributes(client: Any, questions: dict[str, tuple[str, list[str]]], *, n: int = 8,
                              counters: Counters, templates: str | os.PathLike | None = None,
                              max_tokens: int = 160) -> dict[str, list[str]]:
    """Question-level attributes for each {qid: (text, options)}."""
    qids = list(questions)
    reqs = [llm.request(llm.prompt("endow/learn_question.j2", templates, question=questions[q][0],
                                       options=questions[q][1], n=n), temperature=0.0, max_tokens=max_tokens)
            for q in qids]
    outs = llm.texts(client, reqs, desc="learn")
    counters.calls += len(reqs)
    res = {}
    for q, text in zip(qids, outs):
        items = [a for a in parse_list(text, max_items=n, max_len=100) if len(a.split()) <= 12]
        if not items:
            counters.list_failures += 1
        res[q] = items
    return res


def endowment_json(e: Endowment) -> str:
    return json.dumps({"attributes": e.attributes, "values": e.values, "description": e.description,
                       "parsed": e.parsed, "qid": e.qid}, ensure_ascii=False)
