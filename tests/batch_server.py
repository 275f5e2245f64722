"""A loopback server speaking the OpenAI files and batches endpoints, for the Batch API backend's tests.

Real sockets and real HTTP (multipart uploads from the real `openai` client). Each batch's requests are
answered by forwarding them, line by line, to an upstream OpenAI-compatible server (the bundled llama.cpp
model), so batch answers can be compared with the online engine's. Knobs a test turns:
- `hold`: while set, batches stay "in_progress" (a client can be killed while it polls);
- `expire_after`: the next batch processed answers only that many lines, then ends "expired" (the rest go
  to its error file with code batch_expired, as the provider does);
- `fail_first`: the next batch processed answers its first that many lines HTTP 500 in the error file (a
  partial failure).
Counters: `submitted` (request lines in created batches), `answered` ({custom_id: times answered}: the
paid requests), `creates` (batches created), `retrieves`.
It also forwards online chat completions (POST /v1/chat/completions) to the upstream, counting each request
body in `online` ({canonical body: times asked}), optionally after `delay_s`: a counting proxy for the online
engines.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import Served


class BatchServer(Served):
    """`with BatchServer(upstream_url) as s: s.base_url` -> http://127.0.0.1:PORT/v1."""

    def __init__(self, upstream: str, model: str = "smollm2"):
        self.upstream = upstream.rstrip("/")
        self.model = model
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.hold = threading.Event()
        self.expire_after: int | None = None
        self.fail_first = 0
        self.submitted = 0
        self.answered: Counter[str] = Counter()
        self.creates = 0
        self.retrieves = 0
        self.online: Counter[str] = Counter()
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._n = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, obj: Any, raw: bytes | None = None) -> None:
                body = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw is not None else
                                 "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._send(*outer._get(self.path.split("?")[0]))

            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(*outer._post(self.path.split("?")[0], self.headers.get("Content-Type", ""), data))

        self.base_url = f"http://127.0.0.1:{self._serve(Handler)}/v1"

    def stop(self) -> None:
        self.hold.set()  # release requests parked on the hold before shutting down
        super().stop()

    def _id(self, prefix: str) -> str:
        with self._lock:
            self._n += 1
            return f"{prefix}-{self._n}"

    # ---- endpoints ------------------------------------------------------------------------------------
    def _get(self, path: str) -> tuple[int, Any] | tuple[int, Any, bytes]:
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0,
                                                     "owned_by": "test"}]}
        if path == "/v1/batches":
            data = list(self.batches.values())
            return 200, {"object": "list", "data": data, "has_more": False,
                         "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[1] == "batches" and parts[2] in self.batches:
            self.retrieves += 1
            return 200, self._advance(parts[2])
        if len(parts) == 4 and parts[1] == "files" and parts[3] == "content" and parts[2] in self.files:
            return 200, None, self.files[parts[2]]
        return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}

    def _post(self, path: str, ctype: str, data: bytes) -> tuple[int, Any]:
        if path == "/v1/chat/completions":
            body = json.loads(data)
            with self._lock:
                self.online[json.dumps(body, sort_keys=True)] += 1
            time.sleep(self.delay_s)
            return 200, self._ask(body)
        if path == "/v1/files":
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + data)
            fields = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                      for p in msg.iter_parts()}
            if fields.get("purpose") != b"batch" or not fields.get("file"):
                return 400, {"error": {"message": "need purpose=batch and a file"}}
            fid = self._id("file")
            self.files[fid] = fields["file"]
            return 200, {"id": fid, "object": "file", "bytes": len(fields["file"]), "created_at": int(time.time()),
                         "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}
        if path == "/v1/batches":
            body = json.loads(data)
            fid = body["input_file_id"]
            if fid not in self.files or body.get("endpoint") != "/v1/chat/completions" or \
                    body.get("completion_window") != "24h":
                return 400, {"error": {"message": "bad batch request"}}
            bid = self._id("batch")
            n = sum(1 for line in self.files[fid].splitlines() if line.strip())
            with self._lock:
                self.submitted += n
                self.creates += 1
            self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"],
                                 "input_file_id": fid, "completion_window": "24h", "status": "in_progress",
                                 "created_at": int(time.time()), "output_file_id": None, "error_file_id": None,
                                 "metadata": body.get("metadata"),
                                 "request_counts": {"total": n, "completed": 0, "failed": 0}}
            return 200, self.batches[bid]
        return 404, {"error": {"message": f"no route {path}"}}

    # ---- processing -----------------------------------------------------------------------------------
    def _advance(self, bid: str) -> dict[str, Any]:
        """Process an in-progress batch once `hold` is set (on the retrieve that sees it)."""
        b = self.batches[bid]
        if b["status"] != "in_progress" or not self.hold.is_set():
            return b
        lines = [json.loads(x) for x in self.files[b["input_file_id"]].splitlines() if x.strip()]
        limit, self.expire_after = self.expire_after, None
        fail, self.fail_first = self.fail_first, 0
        out, err = [], []
        for j, line in enumerate(lines):
            cid = line["custom_id"]
            if limit is not None and j >= limit:
                err.append({"id": f"req-{j}", "custom_id": cid, "response": None,
                            "error": {"code": "batch_expired", "message": "not completed within 24h"}})
            elif j < fail:
                err.append({"id": f"req-{j}", "custom_id": cid, "error": None,
                            "response": {"status_code": 500, "request_id": f"r{j}",
                                         "body": {"error": {"message": "upstream overloaded"}}}})
            else:
                out.append({"id": f"req-{j}", "custom_id": cid, "error": None,
                            "response": {"status_code": 200, "request_id": f"r{j}", "body": self._ask(line["body"])}})
                self.answered[cid] += 1
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                fid = self._id("file")
                self.files[fid] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                b[name] = fid
        b["status"] = "expired" if limit is not None else "completed"
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        return b

    def _ask(self, body: dict) -> dict:
        rq = urllib.request.Request(self.upstream + "/chat/completions", data=json.dumps(body).encode(),
                                    headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(rq, timeout=120) as fh:
            return json.loads(fh.read())
