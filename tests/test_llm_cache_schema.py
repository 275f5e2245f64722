"""llm.sqlite carries a schema version; a cache written before versioning (or by an older release) opens and is
migrated in place, keeping its rows; a cache from a newer release is refused (real SQLite files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from personagen.errors import BadInput
from personagen.llm.cache import MIGRATIONS, SCHEMA_VERSION, Cache

# The layout the first release wrote (no user_version): written out here as it shipped, not taken from the code.
OLD_SCHEMA = """
CREATE TABLE cache (hash TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL, time REAL NOT NULL);
CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL, model TEXT NOT NULL, run_id TEXT,
    time REAL NOT NULL, latency_s REAL, attempts INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    cost_usd REAL, error TEXT);
CREATE INDEX log_hash ON log(hash);
"""


def _version(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("PRAGMA user_version").fetchone()[0])
    finally:
        con.close()


def test_old_schema_cache_opens_and_keeps_its_answers(tmp_path: Path) -> None:
    db = tmp_path / "llm.sqlite"
    con = sqlite3.connect(db)
    con.executescript(OLD_SCHEMA)
    con.execute("INSERT INTO cache VALUES ('k1','m','{}','{\"text\":\"A\",\"top_logprobs\":null}',3,1,0.0,0.1,1.0)")
    con.commit()
    con.close()
    assert _version(db) == 0

    c = Cache(db)
    try:
        assert c.get_many(["k1", "k2"]) == {"k1": ('{"text":"A","top_logprobs":null}', 3, 1)}
        c.put("k2", "m", "{}", '{"text":"B"}', input_tokens=2, output_tokens=1, cost_usd=0.0, latency_s=0.1,
              attempts=1, run_id="r")
    finally:
        c.close()
    assert _version(db) == SCHEMA_VERSION == len(MIGRATIONS) == 4
    con = sqlite3.connect(db)
    indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"claims", "flags"} <= tables  # migration 4: in-flight claims, server capability flags
    n_cache, n_log = con.execute("SELECT (SELECT COUNT(*) FROM cache), (SELECT COUNT(*) FROM log)").fetchone()
    con.close()
    assert {"log_hash", "cache_model"} <= indexes
    assert (n_cache, n_log) == (2, 1)


def test_new_cache_is_at_the_current_version_and_reopens(tmp_path: Path) -> None:
    db = tmp_path / "llm.sqlite"
    Cache(db).close()
    assert _version(db) == SCHEMA_VERSION
    Cache(db).close()  # a second open runs no migration again
    assert _version(db) == SCHEMA_VERSION


def test_newer_cache_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "llm.sqlite"
    Cache(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(BadInput, match="newer than this personagen"):
        Cache(db)
