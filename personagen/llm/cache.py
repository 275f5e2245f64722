"""SQLite cache and call log for model requests (LIB/llm.sqlite, WAL mode).

Tables (schema version in PRAGMA user_version, brought up to date by `migrate`):
- ``cache``: one row per distinct request (sha256 key): the request JSON (model identity, messages, every
  sampling parameter; never an API key), the compact response JSON, tokens, cost, latency, time.
- ``log``: one row per request actually sent to a model (success or final failure), for auditing and
  for checking that nothing was sent twice.
- ``batches`` / ``batch_requests``: provider batch jobs (OpenAI Batch API) this library submitted and has not
  yet collected, with the requests each holds, so a killed run picks its batches up instead of paying again.
  A batch's row is written before the batch is created (status "uploaded"), then "submitted" with its id,
  then "collected" in the same transaction that caches its results.
- ``flags``: what a server was found to support (e.g. whether it honours the API's `n`).
- ``claims``: requests in flight (hash, owner pid, time). A process about to send a request claims it; a
  second process needing the same request waits for the owner's answer instead of paying again. A claim
  whose owner pid is gone (or older than CLAIM_STALE_S) is taken over.
Error and response text is redacted (personagen.llm.redaction) before it is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from personagen.errors import BadInput, PersonagenError
from personagen.llm.redaction import redact
from personagen.locking import pid_alive

# Ordered migrations (as simonw/llm keeps its logs database): each entry moves the schema one version up, and
# PRAGMA user_version records how many have run, so a cache written by an older personagen opens and is brought
# up to date in place. Append new steps; never edit one that has shipped.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("initial cache and call log", (
        """CREATE TABLE IF NOT EXISTS cache (
            hash TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            request TEXT NOT NULL,
            response TEXT NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            latency_s REAL NOT NULL,
            time REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            hash TEXT NOT NULL,
            model TEXT NOT NULL,
            run_id TEXT,
            time REAL NOT NULL,
            latency_s REAL,
            attempts INTEGER,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost_usd REAL,
            error TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS log_hash ON log(hash)",
    )),
    ("cache rows by model (usage per model without a table scan)", (
        "CREATE INDEX IF NOT EXISTS cache_model ON cache(model)",
    )),
    ("provider batch jobs and the requests each holds (the Batch API backend)", (
        """CREATE TABLE IF NOT EXISTS batches (
            input_file_id TEXT PRIMARY KEY,
            batch_id TEXT,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL,
            created REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS batch_requests (
            input_file_id TEXT NOT NULL,
            hash TEXT NOT NULL,
            request TEXT NOT NULL,
            PRIMARY KEY (input_file_id, hash)
        )""",
    )),
    ("in-flight claims across processes; server capability flags", (
        "CREATE TABLE IF NOT EXISTS claims (hash TEXT PRIMARY KEY, pid INTEGER NOT NULL, time REAL NOT NULL)",
        "CREATE TABLE IF NOT EXISTS flags (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )),
)
CLAIM_STALE_S = 900.0  # a claim older than this is taken over even if its owner still runs
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: str | os.PathLike) -> int:
    """Apply the migrations `conn`'s database has not had yet, one transaction each; returns the version.

    A database from a newer personagen (higher version) is refused rather than written in an unknown layout.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")  # one writer migrates; others wait, then see the new version
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise BadInput(f"{path}: LLM cache schema version {version} is newer than this personagen's "
                               f"({SCHEMA_VERSION}); upgrade personagen")
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return version
            for stmt in MIGRATIONS[version][1]:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # keep the first error (a full disk), not the rollback's
                conn.execute("ROLLBACK")
            raise


def canonical_json(obj: Any) -> str:
    """Deterministic compact JSON (sorted keys) used for hashing and storage."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(payload: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of a request payload (model identity + messages + params)."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_READONLY, _SQLITE_CANTOPEN = 13, 10, 8, 14


def _open_error(path: Path, e: sqlite3.DatabaseError) -> PersonagenError:
    """One line for a cache that cannot be opened: a full disk (exit 1), a read-only place or a damaged
    file (exit 2), each saying what to do."""
    code = (getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in (_SQLITE_FULL, _SQLITE_IOERR):
        return PersonagenError(f"{path}: cannot write the model-call cache ({e}); free some space and rerun")
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
        return BadInput(f"{path}: cannot write the model-call cache ({e}); choose a writable location")
    return BadInput(f"{path}: not a usable SQLite cache ({e}); move it away to start a new one")


class Cache:
    """A small wrapper over one SQLite connection. Use from one thread at a time."""

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.conn: sqlite3.Connection | None = None
        if self.path.exists() and not self.path.is_file():
            raise BadInput(f"{self.path}: the model-call cache is not a file")
        fresh = not self.path.exists()
        try:
            if readonly:
                if self.path.is_file():  # a URI from as_uri(): '#' or '?' in the path stay part of the path
                    self.conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True,
                                                check_same_thread=False)
                    self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                migrate(self.conn, self.path)
        except sqlite3.DatabaseError as e:
            self.close()
            if fresh and not readonly:  # a cache this call began and could not finish is not left behind
                for suffix in ("", "-wal", "-shm", "-journal"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{self.path}{suffix}")
            raise _open_error(self.path, e) from None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def get_many(self, keys: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        """{hash: (response json, input_tokens, output_tokens)} for the keys present."""
        out: dict[str, tuple[str, int, int]] = {}
        if self.conn is None:
            return out
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 900):
            chunk = keys[i:i + 900]
            q = ("SELECT hash, response, input_tokens, output_tokens FROM cache WHERE hash IN (" +
                 ",".join("?" * len(chunk)) + ")")
            try:
                rows = self.conn.execute(q, chunk).fetchall()
            except sqlite3.OperationalError:  # read-only open of a db without the table
                return out
            for h, resp, it, ot in rows:
                out[h] = (resp, it, ot)
        return out

    def put(self, key: str, model: str, request_json: str, response_json: str, *, input_tokens: int,
            output_tokens: int, cost_usd: float, latency_s: float, attempts: int, run_id: str) -> None:
        """Record a successful call: cache row (replacing any older one) and a log row, in one commit."""
        assert self.conn is not None and not self.readonly
        t = time.time()
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT OR REPLACE INTO cache VALUES (?,?,?,?,?,?,?,?,?)",
                (key, model, request_json, redact(response_json), input_tokens, output_tokens, cost_usd, latency_s, t))
            self.conn.execute(
                "INSERT INTO log (hash, model, run_id, time, latency_s, attempts, input_tokens, output_tokens,"
                " cost_usd, error) VALUES (?,?,?,?,?,?,?,?,?,NULL)",
                (key, model, run_id, t, latency_s, attempts, input_tokens, output_tokens, cost_usd))

    def log_error(self, key: str, model: str, error: str, *, latency_s: float, attempts: int, run_id: str,
                  input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0) -> None:
        """Record a request that failed after its retries (with what its unusable HTTP 200s cost, if any)."""
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT INTO log (hash, model, run_id, time, latency_s, attempts, input_tokens, output_tokens,"
                " cost_usd, error) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (key, model, run_id, time.time(), latency_s, attempts, input_tokens, output_tokens, cost_usd,
                 redact(error)[:500]))

    # ---- provider batch jobs ----------------------------------------------------------------------------
    def add_batch_file(self, file_id: str, endpoint: str, model: str, requests: dict[str, str]) -> None:
        """Record an uploaded batch input file and its requests ({hash: request json}) before creating the batch."""
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("INSERT OR REPLACE INTO batches VALUES (?,?,?,?,?,?)",
                              (file_id, None, endpoint, model, "uploaded", time.time()))
            self.conn.executemany("INSERT OR REPLACE INTO batch_requests VALUES (?,?,?)",
                                  [(file_id, k, r) for k, r in requests.items()])

    def set_batch_id(self, file_id: str, batch_id: str) -> None:
        """Mark an input file's batch as created with id `batch_id`."""
        assert self.conn is not None and not self.readonly
        self.conn.execute("UPDATE batches SET batch_id = ?, status = 'submitted' WHERE input_file_id = ?",
                          (batch_id, file_id))

    def open_batches(self, endpoint: str, model: str) -> list[tuple[str, str | None]]:
        """[(input_file_id, batch_id or None)] of this endpoint's and model's batches not yet collected."""
        if self.conn is None:
            return []
        return self.conn.execute("SELECT input_file_id, batch_id FROM batches WHERE endpoint = ? AND model = ? "
                                 "AND status != 'collected' ORDER BY created", (endpoint, model)).fetchall()

    def batch_requests(self, file_id: str) -> dict[str, str]:
        """{hash: request json} of the requests in a batch input file."""
        assert self.conn is not None
        return dict(self.conn.execute("SELECT hash, request FROM batch_requests WHERE input_file_id = ?",
                                      (file_id,)).fetchall())

    def _insert_results(self, model: str, done: list[dict[str, Any]], failed: list[dict[str, Any]],
                        run_id: str) -> None:
        """Inside a transaction: a cache row and a log row per finished result, a log row per failure.

        `done` items: key, request, response (json), input_tokens, output_tokens, cost_usd; `failed`: key,
        error."""
        assert self.conn is not None and not self.readonly
        t = time.time()
        self.conn.executemany(
            "INSERT OR REPLACE INTO cache VALUES (?,?,?,?,?,?,?,?,?)",
            [(d["key"], model, d["request"], d["response"], d["input_tokens"], d["output_tokens"], d["cost_usd"],
              0.0, t) for d in done])
        self.conn.executemany(
            "INSERT INTO log (hash, model, run_id, time, latency_s, attempts, input_tokens, output_tokens,"
            " cost_usd, error) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(d["key"], model, run_id, t, 0.0, 1, d["input_tokens"], d["output_tokens"], d["cost_usd"], None)
             for d in done] + [(f["key"], model, run_id, t, 0.0, 1, None, None, None, redact(f["error"])[:500])
                               for f in failed])

    def collect_batch(self, file_id: str, model: str, done: list[dict[str, Any]], failed: list[dict[str, Any]],
                      run_id: str) -> None:
        """In one transaction: cache each finished result, log each failed one, mark the batch collected.
        Atomic, so a kill never leaves a batch half collected (collecting again would log twice)."""
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.execute("BEGIN")
            self._insert_results(model, done, failed, run_id)
            self.conn.execute("UPDATE batches SET status = 'collected' WHERE input_file_id = ?", (file_id,))
            self.conn.execute("DELETE FROM batch_requests WHERE input_file_id = ?", (file_id,))

    def put_many(self, model: str, done: list[dict[str, Any]], failed: list[dict[str, Any]], run_id: str) -> int:
        """In one transaction: cache each finished result not cached yet (and log it), log each failure.

        Idempotent for results (a shard ingested twice after a kill is logged once); returns the number of
        results newly cached."""
        assert self.conn is not None and not self.readonly
        have = self.get_many(d["key"] for d in done)  # one writer per library: no race with the insert
        new = [d for d in done if d["key"] not in have]
        with self.conn:
            self.conn.execute("BEGIN")
            self._insert_results(model, new, failed, run_id)
        return len(new)

    # ---- what a server can do (learnt once, remembered across runs) ------------------------------------
    def get_flag(self, name: str) -> str | None:
        if self.conn is None:
            return None
        try:
            row = self.conn.execute("SELECT value FROM flags WHERE name=?", (name,)).fetchone()
        except sqlite3.OperationalError:  # read-only open of an older db without the table
            return None
        return row[0] if row else None

    def set_flag(self, name: str, value: str) -> None:
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("INSERT OR REPLACE INTO flags VALUES (?,?)", (name, value))

    # ---- in-flight claims (one payer per request across processes) ---------------------------------------
    def claim(self, key: str) -> bool:
        """Claim `key` for this process; False while another live process holds a fresh claim on it."""
        assert self.conn is not None and not self.readonly
        me = os.getpid()
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            row = self.conn.execute("SELECT pid, time FROM claims WHERE hash=?", (key,)).fetchone()
            if row is not None and row[0] != me and pid_alive(row[0]) and time.time() - row[1] < CLAIM_STALE_S:
                return False
            self.conn.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?)", (key, me, time.time()))
        return True

    def release(self, key: str) -> None:
        """Drop this process's claim on `key` (after its answer or failure is recorded)."""
        assert self.conn is not None and not self.readonly
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM claims WHERE hash=? AND pid=?", (key, os.getpid()))
