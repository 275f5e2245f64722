"""A small OpenAI-format chat server on a loopback port for the hostile-use tests (real sockets, real HTTP).

It counts every chat request by the identity of what was asked (messages + sampling params), so tests can
check that concurrent processes pay for each request once. `echo_headers=True` answers every chat request
with HTTP 400 whose error message echoes the request headers (as some proxies do), to test that the API key
never reaches disk or screen. `support_n=False` rejects `n > 1` like the bundled llama.cpp server.
`misbehave` answers every chat request with HTTP 200 and one of the MISBEHAVIOURS (a body that is unusable, a
usable answer with nonsense usage, one choice whatever `n` asked, usage of 1e9 tokens).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from typing import Any

from loopback import JSONHandler, Served, completion_body, probe_reply


def _choice(i: int, text: str, low_mass: bool = False) -> dict[str, Any]:
    pairs = (("Sure", -0.3), ("A", -2.0), ("B", -2.5)) if low_mass else ((text, -0.1), ("B", -2.5), ("C", -3.0))
    top = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in pairs]
    return {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text},
            "logprobs": {"content": [{"token": text, "logprob": -0.1, "bytes": list(text.encode()),
                                      "top_logprobs": top}]}}


def _misbehave(mode: str, good: dict) -> dict | bytes:
    """The HTTP 200 body of misbehaviour `mode`, from the good answer `good`."""
    ch = good["choices"][0]
    tok = ch["logprobs"]["content"][0]
    bodies: dict[str, Any] = {
        "no_choices": lambda: {**good, "choices": []},
        "not_json": lambda: b"<html>Bad gateway</html>",
        "half_json": lambda: json.dumps(good).encode()[:40],
        "error_200": lambda: {"error": {"message": "model overloaded", "type": "server_error"}},
        "logprob_x": lambda: {**good, "choices": [{**ch, "logprobs": {"content": [
            {**tok, "top_logprobs": [{"token": "A", "logprob": "x"}]}]}}]},
        "logprob_positive": lambda: {**good, "choices": [{**ch, "logprobs": {"content": [
            {**tok, "top_logprobs": [{"token": "A", "logprob": 2.5}]}]}}]},
        "usage_lots": lambda: {**good, "usage": {"prompt_tokens": "lots", "completion_tokens": 1}},
        "usage_negative": lambda: {**good, "usage": {"prompt_tokens": -1_000_000, "completion_tokens": 1}},
        "usage_huge": lambda: {**good, "usage": {"prompt_tokens": 10**9, "completion_tokens": 1}},
        "one_choice": lambda: {**good, "choices": good["choices"][:1]},
    }
    return bodies[mode]()


MISBEHAVIOURS = ("no_choices", "not_json", "half_json", "error_200", "logprob_x", "logprob_positive",
                 "usage_lots", "usage_negative", "usage_huge", "one_choice")


class EchoServer(Served):
    """`with EchoServer() as s:` -> `s.base_url`; `s.calls` counts chat requests by request identity."""

    def __init__(self, model: str = "m", delay_s: float = 0.0, echo_headers: bool = False,
                 support_n: bool = True, low_mass_if: str | None = None, misbehave: str | None = None):
        """`low_mass_if`: requests whose messages contain this text get only e^-2 + e^-2.5 = 0.217 of their
        top-logprob mass on option letters (the rest on "Sure")."""
        self.low_mass_if = low_mass_if
        self.misbehave = misbehave
        self.model, self.delay_s, self.echo_headers, self.support_n = model, delay_s, echo_headers, support_n
        self.calls: Counter[str] = Counter()
        self.probes = 0  # constraint probes (llm.constrain), answered apart: a server that obeys none
        self.n_values: list[int] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                status, reply = outer.answer(body, dict(self.headers))
                if isinstance(reply, bytes):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                else:
                    self._send(status, reply)

        self.base_url = f"http://127.0.0.1:{self._serve(Handler)}/v1"

    def answer(self, body: dict, headers: dict[str, str]) -> tuple[int, dict | bytes]:
        probe = probe_reply(body)
        if probe is not None:
            with self.lock:
                self.probes += 1
            return 200, completion_body(self.model, text=probe)
        n = int(body.get("n") or 1)
        ident = json.dumps({k: body.get(k) for k in ("messages", "seed", "temperature", "max_tokens", "n")},
                           sort_keys=True)
        with self.lock:
            self.calls[hashlib.sha256(ident.encode()).hexdigest()] += 1
            self.n_values.append(n)
        if self.echo_headers:
            return 400, {"error": {"message": f"invalid request; received headers {json.dumps(headers)}",
                                   "type": "invalid_request_error"}}
        if self.misbehave is not None:
            time.sleep(self.delay_s)
            good = self._good(body, 1 if self.misbehave == "one_choice" else n)
            return 200, _misbehave(self.misbehave, good)
        if n > 1 and not self.support_n:
            return 400, {"error": {"message": "only one completion choice is allowed", "type": "invalid_request"}}
        if self.delay_s:
            time.sleep(self.delay_s)
        return 200, self._good(body, n)

    def _good(self, body: dict, n: int) -> dict:
        low = bool(self.low_mass_if) and self.low_mass_if in json.dumps(body.get("messages"))
        choices = [_choice(i, "AB"[(i + (body.get("seed") or 0)) % 2] if n > 1 else "A", low) for i in range(n)]
        return {"id": "x", "object": "chat.completion", "created": int(time.time()), "model": self.model,
                "choices": choices, "usage": {"prompt_tokens": 20, "completion_tokens": n, "total_tokens": 20 + n}}

    @property
    def total(self) -> int:
        return sum(self.calls.values())

