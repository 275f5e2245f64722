"""Secret redaction: one function applied wherever text is stored (llm.sqlite), logged or printed.

Servers and proxies may echo request headers in an error body, so an API key can arrive inside any error
text. `redact` removes: every secret registered in this process or present in the usual environment
variables (OPENAI_API_KEY, PERSONAGEN_API_KEY, HF_TOKEN, ...), any `Authorization`/`Bearer` value,
`api_key`/`token` fields, and strings shaped like OpenAI (`sk-...`) or Hugging Face (`hf_...`) keys.
"""

from __future__ import annotations

import os
import re

SECRET_ENVS = ("OPENAI_API_KEY", "PERSONAGEN_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
               "HUGGINGFACEHUB_API_TOKEN")
MASK = "***"
_registered: set[str] = set()
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\\\"',;}\]]+"), r"\1 " + MASK),
    (re.compile(r"(?i)([\"']?\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                r"(?!(?:bearer|basic)\s)[^\s\\\"',;}\]]+"), r"\1" + MASK),
    (re.compile(r"(?i)([\"']?\b(?:x-)?api[-_]?key[\"']?\s*[:=]\s*[\"']?)[^\s\\\"',;}\]]+"), r"\1" + MASK),
    (re.compile(r"(?i)([\"']?\b(?:access_|hf_)?token[\"']?\s*[:=]\s*[\"']?)[^\s\\\"',;}\]]+"), r"\1" + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "sk-" + MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{6,}"), "hf_" + MASK),
)


def register_secret(value: str | None) -> None:
    """Remember a secret used by this process (e.g. the API key a client was built with)."""
    if value and len(value) >= 4:
        _registered.add(value)


def _known() -> list[str]:
    vals = set(_registered)
    for env in SECRET_ENVS:
        v = os.environ.get(env, "").strip()
        if len(v) >= 4:
            vals.add(v)
    return sorted(vals, key=len, reverse=True)


def redact(text: object) -> str:
    """`text` as a string with every known or key-shaped secret replaced by ***."""
    s = text if isinstance(text, str) else str(text)
    for v in _known():
        if v in s:
            s = s.replace(v, MASK)
    for pat, rep in _PATTERNS:
        s = pat.sub(rep, s)
    return s


__all__ = ["redact", "register_secret", "MASK"]
