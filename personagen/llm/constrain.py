"""Answers restricted to the option letters, where the server can: what it supports is probed, not guessed.

Three ways an OpenAI-compatible server may restrict a completion, tried in this order with one small probe
request each (a prompt that invites a free word, constrained to the letters Q and Z):

- ``grammar``: a GBNF grammar field (llama.cpp servers, the bundled xllamacpp one included);
- ``guided_choice``: vLLM's choice list (its OpenAI server and Ray/vLLM engines);
- ``json_schema``: structured outputs, ``response_format`` with a JSON schema whose answer is an enum of the
  letters (OpenAI and most hosted APIs); the answer comes back as ``{"answer": "B"}``.

A kind counts as supported when the probe's answer is one of the allowed letters (a server that ignores an
unknown field answers a word; one that rejects it answers HTTP 4xx). For logprob answers two more probes
(one inviting a free word, one inviting an allowed letter) ask whether the returned first-token
distribution itself is constrained (only allowed letters listed, at least 0.99 of the mass): llama.cpp
reports the distribution after its sampler chain with ``post_sampling_probs`` (temperature 1 and
top-k/top-p/min-p off, so that chain is only the grammar); where the probabilities are those before the
constraint, logprob requests go unconstrained and the covered letter mass is scored as before. On the
bundled model the constrained distribution equals the unconstrained letter probabilities renormalised
(measured), so constraining changes which answers count as valid, not their distributions.
``logit_bias`` alone shifts the sampled token but not the probabilities llama.cpp reports, and hosted APIs
want the model's token ids for it, so it only serves the grammar path here (see `constraint_body`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

CONSTRAINTS = ("auto", "none")
PROBE_LETTERS = ("Q", "Z")
# the probes' prompts: one invites a free word, one a letter the constraint allows (a server that reports the
# distribution before the constraint shows other tokens beside it)
PROBE_MESSAGES = ([{"role": "user", "content": "Say hello to me in one word."}],
                  [{"role": "user", "content": "Reply with the letter Q."}])
JSON_MAX_TOKENS = 24  # {"answer": "B"} with the whitespace a server may add


@dataclass(frozen=True)
class Capability:
    """How a server can restrict answers: `sample` / `logprobs` name a kind of KINDS (None: it cannot);
    `note` is the one line a run prints when a constraint was asked for and cannot be applied."""

    sample: str | None
    logprobs: str | None
    note: str | None = None

    def kind(self, mode: str) -> str | None:
        return self.logprobs if mode == "logprobs" else self.sample


NONE = Capability(None, None)


def letter_grammar(letters: list[str] | tuple[str, ...]) -> str:
    """A GBNF grammar whose only sentences are the single letters."""
    return "root ::= " + " | ".join(f'"{a}"' for a in letters)


def _grammar(letters: list[str], mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"grammar": letter_grammar(letters)}
    if mode == "logprobs":  # the distribution after a sampler chain reduced to the grammar
        # llama.cpp applies the grammar only when the token sampled without it is rejected, and then reports the
        # distribution after it; a newline pushed to the top (+100) is always rejected, so the reported
        # distribution is always the one over the letters (measured: the raw letter probabilities, renormalised)
        body.update(post_sampling_probs=True, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=0,
                    logit_bias=[["\n", 100]])
    return body


def _guided_choice(letters: list[str], mode: str) -> dict[str, Any]:
    return {"guided_choice": letters}


def _json_schema(letters: list[str], mode: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": letters}},
              "required": ["answer"], "additionalProperties": False}
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "answer", "strict": True, "schema": schema}}}


# constraint kind -> the extra body fields for (letters, mode); probed in this order
BODIES: dict[str, Callable[[list[str], str], dict[str, Any]]] = {
    "grammar": _grammar, "guided_choice": _guided_choice, "json_schema": _json_schema}
KINDS = tuple(BODIES)


def constraint_body(kind: str, letters: list[str] | tuple[str, ...], mode: str) -> dict[str, Any]:
    """The extra request-body fields that restrict the first answer token to `letters` (mode: sample or
    logprobs; logprobs with a grammar also asks for the distribution after the constraint)."""
    return BODIES[kind](list(letters), mode)


def unwrap_answer(text: str | None) -> str | None:
    """The letter inside a structured-output answer ({"answer": "B"} -> "B"); other text as it is."""
    if text is None or not text.lstrip().startswith("{"):
        return text
    try:
        got = json.loads(text)
    except json.JSONDecodeError:
        return text
    return str(got["answer"]) if isinstance(got, dict) and "answer" in got else text


def _probe_request(kind: str, mode: str, messages: list[dict] = PROBE_MESSAGES[0]) -> Any:
    from personagen.llm.client import ChatRequest

    extra = constraint_body(kind, PROBE_LETTERS, mode)
    if mode == "logprobs":
        return ChatRequest(messages=messages, max_tokens=1, logprobs=True, top_logprobs=20, extra=extra)
    return ChatRequest(messages=messages, max_tokens=JSON_MAX_TOKENS if kind == "json_schema" else 2, extra=extra)


def _on_letters(res: Any) -> bool:
    return res.error is None and (unwrap_answer(res.text) or "").strip() in PROBE_LETTERS


def _only_letters(res: Any) -> bool:
    """Whether a logprob probe's first-token distribution lies on the allowed letters (at least 0.99 of it, and
    no other token listed)."""
    tops = res.top_logprobs[0] if res.error is None and res.top_logprobs else {}
    on = sum(math.exp(v) for t, v in tops.items() if t.strip() in PROBE_LETTERS and v is not None)
    return bool(tops) and all(t.strip() in PROBE_LETTERS for t in tops) and on >= 0.99


@contextlib.contextmanager
def _aside(client: Any) -> Iterator[None]:
    """Probe outside the run's books: no budget applies to the probes (a few tokens each, cached in llm.sqlite
    like any request) and the client's counts and progress display are left as they were."""
    books = getattr(client, "ledger", client)  # the accounting (llm.accounting.Ledger) or, for other clients, itself
    saved = {k: copy.copy(getattr(books, k)) for k in ("stats", "max_requests", "max_tokens_budget")
             if hasattr(books, k)}
    progress = getattr(client, "progress", None)
    books.max_requests = books.max_tokens_budget = None
    client.progress = False
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(books, k, v)
        client.progress = progress


def detect(client: Any) -> Capability:
    """What `client`'s server supports, probed once per client (the probes are ordinary requests: cached in and
    logged to llm.sqlite, so a rerun sends none). Backends and engines that schedule work up front (batch
    files, Ray datasets) or run in-process are not probed."""
    if client.backend not in ("local", "openai") or not client.handles_n():
        return Capability(None, None, f"--constrain auto: {client.backend} through {type(client).__name__} is not "
                                      "probed; answers are not constrained (matched to the options afterwards)")
    known = client.__dict__.get("_constraint_capability")
    if known is not None:
        return known
    sample = logprobs = None
    with _aside(client):
        for kind in KINDS:
            if _on_letters(client.run([_probe_request(kind, "sample")], desc="constraint probe")[0]):
                sample = kind
                break
        if sample in ("grammar", "guided_choice"):
            probes = [_probe_request(sample, "logprobs", m) for m in PROBE_MESSAGES]
            if all(_only_letters(r) for r in client.run(probes, desc="constraint probe")):
                logprobs = sample
    note = None
    if sample is None:
        note = (f"--constrain auto: {client.model!r} at this server takes no grammar, guided_choice or JSON-schema "
                "constraint; answers are matched to the options afterwards")
    elif logprobs is None:
        note = (f"--constrain auto: {client.model!r} reports logprobs from before the {sample} constraint; "
                "logprob answers are unconstrained (covered letter mass scored by --min-mass)")
    cap = Capability(sample, logprobs, note)
    client.__dict__["_constraint_capability"] = cap
    return cap


__all__ = ["BODIES", "CONSTRAINTS", "KINDS", "Capability", "NONE", "constraint_body", "detect", "letter_grammar",
           "unwrap_answer"]
