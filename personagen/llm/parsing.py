"""Robust parsing of model output: lists, JSON and numbers.

Small local models (and large ones, now and then) wrap JSON in code fences, leave trailing commas, use single
quotes or Python literals, stop mid-object, or answer a list as numbered lines, bullets, a JSON array or one
comma-separated line. These helpers accept all of that and return None / [] instead of raising, so callers
can count a failure and retry rather than crash.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.S)
_BULLET = re.compile(r"^\s*(?:[-*•·>]+|\(?\d{1,3}[.):\]]|\(?[a-zA-Z][.)\]])\s+")
_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "half": 50,
}
_NUM = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?<![\w.])[-+]?\.\d+")


def strip_fences(text: str) -> str:
    """Return the content of the first ``` fenced block, or the text itself when there is none."""
    m = _FENCE.search(text)
    return m.group(1).strip() if m else text.strip()


def _balanced_span(text: str) -> str | None:
    """The first {...} or [...] span, closing brackets that the model left open (truncated output)."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    stack: list[str] = []
    in_str: str | None = None
    esc = False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == in_str:
                in_str = None
            continue
        if c in "\"'":
            # a quote inside a bare word (don't) is not a string start
            if c == "'" and i > 0 and text[i - 1].isalnum():
                continue
            in_str = c
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if stack and stack[-1] == c:
                stack.pop()
            if not stack:
                return text[start:i + 1]
    frag = text[start:].rstrip()
    if in_str:
        frag += in_str
    frag = re.sub(r"[,:]\s*$", "", frag)
    return frag + "".join(reversed(stack))


def _repair(s: str) -> str:
    """Cheap JSON repairs: smart quotes, Python literals, single quotes, unquoted keys, trailing commas."""
    s = s.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    s = re.sub(r"\bTrue\b", "true", s)
    s = re.sub(r"\bFalse\b", "false", s)
    s = re.sub(r"\bNone\b", "null", s)
    # 'single quoted' strings -> "double quoted" (only when delimiting, not apostrophes inside words)
    s = re.sub(r"(?<![\w])'([^'\n]*?)'(?=\s*[:,}\]])", lambda m: json.dumps(m.group(1)), s)
    # unquoted keys {name: ...} -> {"name": ...}
    s = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_ ]{0,40}?)\s*:(?!//)", lambda m: f'{m.group(1)}"{m.group(2).strip()}":', s)
    # trailing commas
    s = re.sub(r",\s*([}\]])", r"\1", s)
    # missing commas between adjacent objects / strings
    s = re.sub(r"}\s*{", "},{", s)
    s = re.sub(r'"\s*\n\s*"', '",\n"', s)
    return s


def parse_json(text: str | None) -> Any | None:
    """Parse a JSON value out of free model text; None when nothing usable is there."""
    if not text:
        return None
    body = strip_fences(text)
    for cand in (body, _balanced_span(body), _balanced_span(text)):
        if not cand:
            continue
        for attempt in (cand, _repair(cand)):
            try:
                return json.loads(attempt)
            except (json.JSONDecodeError, ValueError):
                continue
    return None


def _clean_item(s: str) -> str:
    s = _BULLET.sub("", s.strip())
    s = s.strip().strip("\"'`").strip()
    s = re.sub(r"^\*\*(.*?)\*\*", r"\1", s).strip()
    return s.rstrip(".;,").strip()


def parse_list(text: str | None, *, max_items: int = 50, max_len: int = 160) -> list[str]:
    """Parse a list of short strings: JSON array, numbered/bulleted lines, or one comma/semicolon line.

    Items are cleaned (markers, quotes, trailing punctuation removed), deduplicated case-insensitively,
    and items that are empty, too long or look like prose headers ("Here are ...:") are dropped.
    """
    if not text:
        return []
    items: list[str] = []
    data = parse_json(text) if ("[" in text or "{" in text) else None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if lists else list(data.keys())
    if isinstance(data, list) and data:
        for d in data:
            if isinstance(d, str):
                items.append(d)
            elif isinstance(d, dict):
                items.append(str(next(iter(d.values()), "")) if len(d) == 1 else
                             str(d.get("name") or d.get("attribute") or next(iter(d.values()), "")))
            elif d is not None:
                items.append(str(d))
    else:
        body = strip_fences(text)
        lines = [ln for ln in body.splitlines() if ln.strip()]
        marked = [ln for ln in lines if _BULLET.match(ln)]
        if len(marked) >= 2:
            lines = marked
        if len(lines) == 1 or (len(lines) <= 2 and not marked):
            joined = " ".join(lines)
            if ":" in joined and joined.index(":") < len(joined) - 1:
                joined = joined.split(":", 1)[1]
            sep = ";" if joined.count(";") >= 1 else ","
            lines = joined.split(sep)
        items = lines
    out: list[str] = []
    seen: set[str] = set()
    for raw in items:
        s = _clean_item(str(raw))
        if not s or len(s) > max_len or s.endswith(":") or not re.search(r"[A-Za-z]", s):
            continue
        if re.match(r"^(here (are|is)|sure|certainly|the following)\b", s, re.I):
            continue
        key = s.lower()
        if key in seen:
            continue
        seen.add(key)
        out.append(s)
        if len(out) >= max_items:
            break
    return out


def parse_number(text: str | None, *, lo: float | None = None, hi: float | None = None) -> float | None:
    """The first number in the text that lies within [lo, hi] (digits with , separators, decimals, %,
    $, or number words like "fifty"); None when there is none."""
    if not text:
        return None
    t = text.replace("\u2212", "-")
    cands: list[float] = []
    for m in _NUM.finditer(t):
        try:
            cands.append(float(m.group(0).replace(",", "")))
        except ValueError:
            continue
    if not cands:
        for w in re.findall(r"[a-zA-Z]+", t.lower()):
            if w in _WORD_NUMBERS:
                cands.append(float(_WORD_NUMBERS[w]))
    for v in cands:
        if (lo is None or v >= lo) and (hi is None or v <= hi):
            return v
    return None


def clean_text(text: str | None, *, max_chars: int = 600) -> str:
    """Collapse a free-text answer to one clean paragraph: no fences, labels, quotes or role prefixes."""
    if not text:
        return ""
    s = strip_fences(text)
    s = re.sub(r"^\s*(assistant|answer|response|output)\s*:\s*", "", s, flags=re.I)
    paras = [p.strip() for p in re.split(r"\n\s*\n", s) if p.strip()]
    s = paras[0] if paras else ""
    s = re.sub(r"\s+", " ", s).strip().strip("\"'`").strip()
    if len(s) > max_chars:
        cut = s[:max_chars]
        s = cut[: cut.rfind(". ") + 1] if ". " in cut else cut
    return s.strip()
