"""A tiny in-memory Hugging Face Hub for tests: the subset of the Hub HTTP API that huggingface_hub uses to
create a dataset repo, commit files in "regular" (base64) mode, branch, and download a snapshot.

Start with `HubServer(token=...)` as a context manager; `.url` is the endpoint for HF_ENDPOINT. Every request is
recorded in `.requests` (method, path, Authorization header); every commit in `.commits`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from loopback import Served


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: bytes}
    branches: dict[str, str] = field(default_factory=dict)  # name -> sha

    def resolve(self, rev: str) -> str | None:
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.commits:
            return rev
        return None


class HubServer(Served):
    """ThreadingHTTPServer on 127.0.0.1:0 speaking enough of the Hub API for upload_folder/snapshot_download."""

    def __init__(self, token: str | None = None):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[dict[str, Any]] = []
        self.commits: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, "GET")

            def do_HEAD(self) -> None:  # noqa: N802
                server._handle(self, "HEAD")

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self, "POST")

        self.url = f"http://127.0.0.1:{self._serve(Handler)}"

    # ---- helpers --------------------------------------------------------------------------------
    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        return self.token is None or h.headers.get("Authorization") == f"Bearer {self.token}"

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: Any = None, headers: dict[str, str] | None = None,
              raw: bytes | None = None, head: bool = False) -> None:
        data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            h.wfile.write(data)

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, msg: str, head: bool = False) -> None:
        self._send(h, status, {"error": msg}, {"X-Error-Code": code, "X-Error-Message": msg}, head=head)

    def _repo(self, rtype: str, repo_id: str) -> Repo | None:
        return self.repos.get((rtype, repo_id))

    # ---- dispatch -------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append({"method": method, "path": path,
                                  "authorization": h.headers.get("Authorization")})
        seg = [unquote(s) for s in path.strip("/").split("/")]
        head = method == "HEAD"
        try:
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo(h, json.loads(body or b"{}"))
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml(h, json.loads(body or b"{}"))
            if len(seg) >= 4 and seg[0] == "api" and seg[1] in ("datasets", "models", "spaces"):
                rtype = seg[1][:-1]
                repo_id = f"{seg[2]}/{seg[3]}"
                rest = seg[4:]
                return self._api_repo(h, method, rtype, repo_id, rest, body)
            if len(seg) >= 6 and seg[0] == "datasets" and seg[3] == "resolve":
                return self._resolve(h, "dataset", f"{seg[1]}/{seg[2]}", seg[4], "/".join(seg[5:]), head)
            return self._error(h, 404, "EntryNotFound", f"no route {method} {path}", head)
        except Exception as e:  # noqa: BLE001 - report server bugs as 500
            return self._error(h, 500, "ServerError", f"{type(e).__name__}: {e}", head)

    def _create_repo(self, h: BaseHTTPRequestHandler, p: dict) -> None:
        if not self._authorized(h):
            return self._error(h, 401, "Unauthorized", "Invalid credentials")
        rtype = p.get("type") or "model"
        repo_id = f"{p['organization']}/{p['name']}" if p.get("organization") else p["name"]
        with self.lock:
            if (rtype, repo_id) in self.repos:
                return self._error(h, 409, "RepoExists", "You already created this repo")
            repo = Repo(repo_id, rtype, private=p.get("visibility") == "private" or bool(p.get("private")))
            sha = hashlib.sha1(f"init:{repo_id}".encode()).hexdigest()
            gitattributes = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
            repo.commits[sha] = {".gitattributes": gitattributes}
            repo.branches["main"] = sha
            self.repos[(rtype, repo_id)] = repo
        prefix = "" if rtype == "model" else f"{rtype}s/"
        return self._send(h, 200, {"url": f"{self.url}/{prefix}{repo_id}", "name": repo_id})

    def _validate_yaml(self, h: BaseHTTPRequestHandler, p: dict) -> None:
        content = p.get("content", "")
        if content.startswith("---"):
            try:
                yaml.safe_load(content.split("---", 2)[1])
            except yaml.YAMLError as e:
                return self._send(h, 400, {"error": f"Invalid YAML: {e}", "warnings": []})
        return self._send(h, 200, {"warnings": []})

    def _api_repo(self, h: BaseHTTPRequestHandler, method: str, rtype: str, repo_id: str, rest: list[str],
                  body: bytes) -> None:
        head = method == "HEAD"
        repo = self._repo(rtype, repo_id)
        if repo is None or (repo.private and not self._authorized(h)):
            return self._error(h, 404, "RepoNotFound", f"Repository not found: {repo_id}", head)
        if method in ("GET", "HEAD") and (not rest or rest[0] == "revision"):
            rev = rest[1] if len(rest) > 1 else "main"
            sha = repo.resolve(rev)
            if sha is None:
                return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            files = repo.commits[sha]
            return self._send(h, 200, {"id": repo_id, "sha": sha, "private": repo.private,
                                       "siblings": [{"rfilename": f} for f in sorted(files)]}, head=head)
        if method == "GET" and rest and rest[0] == "tree":
            sha = repo.resolve(rest[1]) if len(rest) > 1 else None
            if sha is None:
                return self._error(h, 404, "RevisionNotFound", "Invalid rev id")
            sub = "/".join(rest[2:])
            files = repo.commits[sha]
            entries = [{"type": "file", "path": f, "size": len(b), "oid": git_blob_sha(b)}
                       for f, b in sorted(files.items()) if not sub or f.startswith(sub.rstrip("/") + "/")]
            return self._send(h, 200, entries)
        if method == "POST" and not self._authorized(h):
            return self._error(h, 401, "Unauthorized", "Invalid credentials")
        if method == "POST" and rest and rest[0] == "preupload":
            if repo.resolve(rest[1]) is None:
                return self._error(h, 404, "RevisionNotFound", "Invalid rev id")
            files = json.loads(body)["files"]
            return self._send(h, 200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                  "shouldIgnore": False, "oid": None} for f in files]})
        if method == "POST" and rest and rest[0] == "branch":
            branch = "/".join(rest[1:])
            with self.lock:
                if branch in repo.branches:
                    return self._error(h, 409, "BranchExists", "Reference already exists")
                repo.branches[branch] = repo.branches["main"]
            return self._send(h, 200, {})
        if method == "POST" and rest and rest[0] == "commit":
            return self._commit(h, repo, "/".join(rest[1:]), body)
        return self._error(h, 404, "EntryNotFound", f"no route {method} {rest}")

    def _commit(self, h: BaseHTTPRequestHandler, repo: Repo, rev: str, body: bytes) -> None:
        lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
        with self.lock:
            parent = repo.branches.get(rev)
            if parent is None:
                return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
            files = dict(repo.commits[parent])
            header: dict = {}
            for item in lines:
                k, v = item["key"], item["value"]
                if k == "header":
                    header = v
                elif k == "file":
                    if v.get("encoding") != "base64":
                        return self._error(h, 400, "BadRequest", "only base64 files are supported")
                    files[v["path"]] = base64.b64decode(v["content"])
                elif k in ("deletedFile",):
                    files.pop(v["path"], None)
                else:
                    return self._error(h, 400, "BadRequest", f"unsupported commit line {k}")
            sha = hashlib.sha1(json.dumps([parent, sorted((p, git_blob_sha(b)) for p, b in files.items()),
                                           header]).encode()).hexdigest()
            repo.commits[sha] = files
            repo.branches[rev] = sha
            self.commits.append({"repo": repo.repo_id, "revision": rev, "sha": sha, "header": header,
                                 "paths": sorted(v["value"]["path"] for v in lines if v["key"] == "file"),
                                 "authorization": h.headers.get("Authorization")})
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return self._send(h, 200, {"commitUrl": f"{self.url}/{prefix}{repo.repo_id}/commit/{sha}",
                                   "commitOid": sha, "pullRequestUrl": None, "success": True})

    def _resolve(self, h: BaseHTTPRequestHandler, rtype: str, repo_id: str, rev: str, fpath: str,
                 head: bool) -> None:
        repo = self._repo(rtype, repo_id)
        if repo is None or (repo.private and not self._authorized(h)):
            return self._error(h, 404, "RepoNotFound", f"Repository not found: {repo_id}", head)
        sha = repo.resolve(rev)
        if sha is None:
            return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
        data = repo.commits[sha].get(fpath)
        if data is None:
            return self._error(h, 404, "EntryNotFound", f"{fpath} does not exist", head)
        return self._send(h, 200, raw=data, head=head,
                          headers={"ETag": f'"{git_blob_sha(data)}"', "X-Repo-Commit": sha})
