"""A trivial OpenAI-format HTTP server on a loopback port, for transport tests and overhead benchmarks.

It is a real server (real sockets, real HTTP/1.1 keep-alive) whose "model" answers every chat completion
with a fixed letter and fixed logprobs, or, given a `responder`, with text computed from the request body
(scripted replies for stage tests that must run through the real LLMClient: cache, retries, accounting).
Scripted failures (status, headers) can be queued to exercise retries and Retry-After. It is never used to
judge answers, only the client's and the stages' plumbing and speed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def completion_body(model: str, text: str = "A", prompt_tokens: int = 10,
                    top: dict[str, float] | None = None, completion_tokens: int = 1,
                    finish_reason: str = "length") -> dict[str, Any]:
    """An OpenAI chat.completion JSON answering `text` with top logprobs `top`."""
    top = top or {"A": -0.5, "B": -1.2, " C": -2.5, "D": -4.0}
    tl = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in top.items()]
    return {
        "id": "chatcmpl-loopback", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": text},
                     "logprobs": {"content": [{"token": text, "logprob": top.get(text, -0.5),
                                               "bytes": list(text.encode()), "top_logprobs": tl}]}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class JSONHandler(BaseHTTPRequestHandler):
    """Quiet HTTP/1.1 keep-alive handler whose `_send` writes one JSON reply (the test servers' shared base)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers + body leave in one segment (no delayed-ACK stalls)

    def log_message(self, *a: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class Served:
    """The test servers' shared lifecycle: `_serve(Handler)` binds a ThreadingHTTPServer to a free loopback port
    (returned); entering (or `start`) serves it from a daemon thread, leaving (or `stop`) shuts it down."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> int:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        return int(self._httpd.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LoopbackServer(Served):
    """`with LoopbackServer() as s: s.base_url` -> http://127.0.0.1:PORT/v1. `s.script` queues failures:
    (status, headers dict, body dict); `s.hits` counts chat requests, `s.times` their arrival times.

    `responder(request_body) -> str | None` (optional) computes each reply's text from the parsed request
    JSON (messages, seed, temperature, ...); it is called on the server's handler threads, possibly
    concurrently. None, or an exception, answers HTTP 500 (a server failure the client retries, then
    reports as an error result). The reply's logprobs put all the top mass on the reply text."""

    def __init__(self, model: str = "loopback", delay_s: float = 0.0,
                 responder: Callable[[dict], str | None] | None = None, honours: frozenset[str] = frozenset()):
        self.model = model
        self.honours = honours  # constraint kinds this server obeys (probe_reply); the probes count in `probes`
        self.probes = 0
        self.delay_s = delay_s
        self.responder = responder
        self.script: deque[tuple[int, dict[str, str], dict]] = deque()
        self.hits = 0
        self.times: list[float] = []
        self.bodies: list[dict] = []
        self.keep_bodies = False
        self._lock = threading.Lock()
        outer = self

        class Handler(JSONHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                req = json.loads(raw or b"{}")
                probe = probe_reply(req, outer.honours)
                if probe is not None:  # a constraint probe: answered apart, not counted as an answer
                    with outer._lock:
                        outer.probes += 1
                    self._send(200, completion_body(outer.model, text=probe, top={probe: 0.0}))
                    return
                with outer._lock:
                    outer.hits += 1
                    outer.times.append(time.perf_counter())
                    if outer.keep_bodies:
                        outer.bodies.append(req)
                    step = outer.script.popleft() if outer.script else None
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if step is not None:
                    status, headers, body = step
                    self._send(status, body, headers)
                    return
                if req.get("model") != outer.model:
                    self._send(404, {"error": {"message": f"The model `{req.get('model')}` does not exist"}})
                    return
                chars = sum(len(str(m.get("content") or "")) for m in req.get("messages", []))
                if outer.responder is None:
                    self._send(200, completion_body(outer.model, prompt_tokens=max(1, chars // 4)))
                    return
                try:
                    text = outer.responder(req)
                except Exception as e:  # noqa: BLE001 - a scripted failure becomes a server error
                    self._send(500, {"error": {"message": f"responder failed: {type(e).__name__}: {e}"}})
                    return
                if text is None:
                    self._send(500, {"error": {"message": "scripted failure"}})
                    return
                text = str(text)
                self._send(200, completion_body(outer.model, text=text, prompt_tokens=max(1, chars // 4),
                                                top={text: 0.0}, completion_tokens=max(1, len(text) // 4),
                                                finish_reason="stop"))

        self.base_url = f"http://127.0.0.1:{self._serve(Handler)}/v1"


def probe_reply(req: dict, honours: frozenset[str] | set[str] = frozenset()) -> str | None:
    """The reply to personagen's constraint probe (llm.constrain), or None when `req` is not one: a server that
    honours none of the constraint kinds answers a free word; `honours` names the kinds it obeys."""
    from personagen.llm import PROBE_MESSAGES

    if req.get("messages") not in PROBE_MESSAGES:
        return None
    if "grammar" in honours and req.get("grammar"):
        return "Q"
    if "guided_choice" in honours and req.get("guided_choice"):
        return str(req["guided_choice"][-1])
    if "json_schema" in honours and req.get("response_format"):
        return '{"answer": "Z"}'
    return "Hello"
