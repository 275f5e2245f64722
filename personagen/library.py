"""The Library: one directory that flows through every command (manifest, personas, responses, calibrations).

A plain object over the library directory: open/create, the manifest, reading and appending tables. It knows no
stage; the verbs (`lib.elicit`, `lib.calibrate`) are added above the stages in personagen.api.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from personagen.errors import BadInput
from personagen.infile import MANIFEST_MAX_BYTES, load_json
from personagen.locking import LOCK_FILE, library_lock, owner_pid, pid_alive
from personagen.names import safe_name
from personagen.store import (
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_parquet_batches,
    now_iso,
    read_parquet,
)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PERSONAS = "personas.parquet"
RESPONSES = "responses.parquet"
LLM_DB = "llm.sqlite"
CALIBRATIONS = "calibrations"
RUN_PREFIX = ".run-"  # LIB/.run-ID.json: the history entry of a run in progress (recorded by the next writer if killed)
# entries that commands write into or through: a symbolic link there would send the write outside the library
NO_LINKS = (LOCK_FILE, LLM_DB, f"{LLM_DB}-wal", f"{LLM_DB}-shm", f"{LLM_DB}-journal", CALIBRATIONS, ".responses",
            "endow", "enrich", "prefs")

RESPONSE_SCHEMA: dict[str, pl.DataType] = {
    "persona_id": pl.String,
    "survey_id": pl.String,
    "qid": pl.String,
    "option": pl.String,
    "prob": pl.Float64,
    "mode": pl.String,
    "model": pl.String,
    "n": pl.Int64,
    "valid": pl.Boolean,
}


# manifest field -> the JSON types it may hold (None: may be null); a wrong type is bad input naming the field
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "schema_version": (int,), "created": (str,), "updated": (str,), "seed": (int, type(None)),
    "census": (dict, type(None)), "config": (dict,), "history": (list,),
}

# what a responses.parquet column must hold to be read (an all-null column, e.g. `n` of old rows, is allowed)
RESPONSE_COLUMN_KINDS: dict[str, tuple[str, ...]] = {
    "persona_id": ("str", "int"), "survey_id": ("str", "null", "optional"), "qid": ("str",), "option": ("str",),
    "prob": ("num", "null"), "valid": ("bool", "null", "optional"),
}


def _read_manifest(mf: Path) -> dict[str, Any]:
    """The manifest JSON object; BadInput naming the file (and field) if it is not one."""
    manifest = load_json(mf, "library manifest", MANIFEST_MAX_BYTES)
    if not isinstance(manifest, dict):
        raise BadInput(f"{mf}: expected a JSON object, found {type(manifest).__name__}")
    for key, types in _MANIFEST_TYPES.items():
        v = manifest.get(key)
        if key in manifest and (isinstance(v, bool) or not isinstance(v, types)):
            want = " or ".join("null" if t is type(None) else {"str": "a string", "int": "an integer", "dict":
                               "an object", "list": "a list"}[t.__name__] for t in types)
            raise BadInput(f"{mf}: field {key!r} must be {want}, found {type(v).__name__}")
    bad = [i for i, h in enumerate(manifest.get("history", [])) if not isinstance(h, dict)]
    if bad:
        raise BadInput(f"{mf}: field 'history' entry {bad[0]} must be an object")
    return manifest


def _check_table(df: pl.DataFrame, path: Path, required: dict[str, tuple[str, ...]]) -> pl.DataFrame:
    """`df` when it has each required column of an allowed kind ("str", "num", "bool", "int"; a kind list with
    "optional" may be absent); BadInput naming the file and the column otherwise (no persona_id, a text prob)."""
    kinds = {"str": lambda t: t == pl.String, "num": lambda t: t.is_numeric(), "int": lambda t: t.is_integer(),
             "bool": lambda t: t == pl.Boolean, "null": lambda t: t == pl.Null, "optional": lambda t: False}
    for col, allowed in required.items():
        if col not in df.columns and "optional" in allowed:
            continue
        if col not in df.columns:
            raise BadInput(f"{path}: no column {col!r}")
        if not any(kinds[k](df.schema[col]) for k in allowed):
            want = " or ".join(k for k in allowed if k != "optional")
            raise BadInput(f"{path}: column {col!r} is {df.schema[col]}, expected {want}")
    return df


class Library:
    """A persona library directory (see docs/design.md §2)."""

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> Library:
        """Open an existing library; BadInput if it is not one."""
        p = Path(path)
        mf = p / MANIFEST
        if not p.is_dir():
            raise BadInput(f"{p}: library directory does not exist")
        if not mf.is_file():
            raise BadInput(f"{p}: not a personagen library (no {MANIFEST})")
        for name in NO_LINKS:
            if (p / name).is_symlink():
                raise BadInput(f"{p / name}: is a symbolic link; a library's own files are never followed "
                               f"elsewhere (remove the link)")
        manifest = _read_manifest(mf)
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise BadInput(f"{mf}: schema_version {manifest.get('schema_version')!r} is not supported")
        return cls(p, manifest)

    @classmethod
    def init(cls, path: str | os.PathLike, *, seed: int | None = None, census: dict | None = None,
             config: dict | None = None) -> Library:
        """Write a fresh manifest into `path` (which must exist, usually a staged temp dir)."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        t = now_iso()
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": t,
            "updated": t,
            "seed": seed,
            "census": census,
            "config": config or {},
            "history": [],
        }
        lib = cls(p, manifest)
        lib.save_manifest()
        return lib

    # ---- manifest -----------------------------------------------------------------------------
    def save_manifest(self) -> None:
        """Write the manifest (atomically). Concurrent writers go through `record`, which holds the lock."""
        self.manifest["updated"] = now_iso()
        atomic_write_json(self.path / MANIFEST, self.manifest)

    def record(self, stage: str, *, run: str | None = None, **info: Any) -> None:
        """Append a stage entry (what ran, with which options) to the manifest history and save it.

        Read-modify-write under the library lock: the history on disk (other processes' entries included)
        is re-read, so concurrent runs never drop each other's entries. `run` (from `begin_run`) closes that
        run's pending entry; the entries of killed runs are recorded first (`recover_runs`)."""
        with library_lock(self.path):
            self._reread_history()
            self._recover_locked()
            entry = {"stage": stage, "time": now_iso(), **({"run": run} if run else {}), **info}
            self.manifest.setdefault("history", []).append(entry)
            self.save_manifest()
            if run:
                self._run_file(run).unlink(missing_ok=True)

    def _reread_history(self) -> None:
        mf = self.path / MANIFEST
        if mf.is_file():
            with contextlib.suppress(BadInput):
                self.manifest["history"] = list(_read_manifest(mf).get("history") or [])

    # ---- runs in progress: a history entry that a kill -9 cannot lose ------------------------------
    def begin_run(self, stage: str, **info: Any) -> str:
        """Write the pending history entry of a run that is starting (LIB/.run-ID.json); returns ID. A run
        killed before its `record(..., run=ID)` gets that entry recorded, marked interrupted, by the next
        writer, so answers it already wrote never stay without their record."""
        run = f"{stage}-{time.time_ns():020d}.pid{os.getpid()}"  # the file name's pid marks its owner (locking)
        self.update_run(run, stage=stage, time=now_iso(), run=run, **info)
        return run

    def update_run(self, run: str, /, **info: Any) -> None:
        """Merge `info` (e.g. counts so far) into the pending entry of `run`."""
        p = self._run_file(run)
        try:
            old = json.loads(p.read_text())
        except (OSError, ValueError):
            old = {}
        atomic_write_json(p, {**(old if isinstance(old, dict) else {}), **info})

    def end_run(self, run: str) -> None:
        """Drop the pending entry of a run that recorded nothing (it failed before doing any work)."""
        self._run_file(run).unlink(missing_ok=True)

    def _run_file(self, run: str) -> Path:
        return self.path / f"{RUN_PREFIX}{run}.json"

    def recover_runs(self) -> int:
        """Record the pending entries of runs whose process is gone (marked `interrupted`); returns how many."""
        if not any(self.path.glob(f"{RUN_PREFIX}*.json")):
            return 0
        with library_lock(self.path):
            self._reread_history()
            n = self._recover_locked()
            if n:
                self.save_manifest()
            return n

    def _recover_locked(self) -> int:
        done = {h.get("run") for h in self.manifest.get("history", []) if isinstance(h, dict)}
        n = 0
        for p in sorted(self.path.glob(f"{RUN_PREFIX}*.json")):
            pid = owner_pid(p.name)
            if pid is None or pid == os.getpid() or pid_alive(pid):
                continue
            try:
                entry = None if p.is_symlink() else json.loads(p.read_text())
            except (OSError, ValueError):
                entry = None
            if isinstance(entry, dict) and entry.get("run") not in done:
                self.manifest.setdefault("history", []).append({**entry, "interrupted": True})
                n += 1
            p.unlink(missing_ok=True)
        return n

    # ---- personas -----------------------------------------------------------------------------
    @property
    def personas_path(self) -> Path:
        return self.path / PERSONAS

    def personas(self) -> pl.DataFrame:
        if not self.personas_path.is_file():
            raise BadInput(f"{self.personas_path}: library has no personas")
        df = _check_table(read_parquet(self.personas_path, "personas table"), self.personas_path,
                          {"persona_id": ("str", "int")})
        if df["persona_id"].null_count() or df["persona_id"].n_unique() != df.height:
            raise BadInput(f"{self.personas_path}: column 'persona_id' has duplicate or missing ids")
        return df

    def write_personas(self, df: pl.DataFrame) -> None:
        """Replace the whole personas table (a new library; a stage that read, then changed the table uses
        `upsert_personas`, which re-reads it under the lock)."""
        if "persona_id" not in df.columns:
            raise ValueError("personas frame needs a persona_id column")
        if df["persona_id"].n_unique() != df.height:
            raise ValueError("persona_id values must be unique")
        atomic_write_parquet(self.personas_path, df)

    def upsert_personas(self, new: pl.DataFrame, *, replace_prefix: str | None = None) -> pl.DataFrame:
        """Write `new` into the personas table under the library lock, re-reading the table there: a row with
        the same persona_id is replaced in place, other new rows are appended, and (`replace_prefix`) the
        rows of an earlier run whose ids start with PREFIX- are dropped. Rows another process wrote while
        this one was busy (minutes of model calls) are kept. Returns the table written."""
        if new["persona_id"].n_unique() != new.height:
            raise ValueError("persona_id values must be unique")
        with library_lock(self.path):
            cur = self.personas() if self.personas_path.is_file() else None
            if cur is None or not cur.height:
                out = new
            else:
                drop = pl.col("persona_id").is_in(new["persona_id"].implode())
                if replace_prefix is not None:
                    drop = drop | pl.col("persona_id").str.starts_with(replace_prefix + "-")
                pos = cur.select("persona_id", pl.int_range(pl.len()).alias("_at"))
                fresh = new.with_columns(pl.int_range(pl.len()).alias("_new")).join(pos, on="persona_id", how="left")
                kept = cur.filter(~drop).join(pos, on="persona_id")
                out = pl.concat([kept, fresh], how="diagonal_relaxed") \
                    .sort(pl.col("_at").fill_null(cur.height), "_new", nulls_last=True).drop("_at", "_new")
            self.write_personas(out)
        return out

    def write_personas_batches(self, frames: Iterable[pl.DataFrame]) -> int:
        """Write personas.parquet from consecutive batches (one row group each); persona_id uniqueness is the
        caller's to guarantee (it spans batches). Returns the number of rows."""
        return atomic_write_parquet_batches(self.personas_path, frames)

    # ---- responses ----------------------------------------------------------------------------
    @property
    def responses_path(self) -> Path:
        return self.path / RESPONSES

    def responses(self) -> pl.DataFrame:
        if not self.responses_path.is_file():
            return pl.DataFrame(schema=RESPONSE_SCHEMA)
        return _check_table(read_parquet(self.responses_path, "responses table"), self.responses_path,
                            RESPONSE_COLUMN_KINDS)

    def append_responses(self, df: pl.DataFrame) -> None:
        """Append response rows (docs/design.md §2 schema) atomically: old + new are rewritten to a temp
        file."""
        df = df.select([pl.col(c).cast(t) for c, t in RESPONSE_SCHEMA.items()] +
                       [c for c in df.columns if c not in RESPONSE_SCHEMA])
        with library_lock(self.path):  # read-modify-write: no concurrent append is lost
            old = self.responses()
            out = pl.concat([old, df], how="diagonal_relaxed") if old.height else df
            atomic_write_parquet(self.responses_path, out)

    # ---- other artifacts ----------------------------------------------------------------------
    @property
    def llm_db(self) -> Path:
        return self.path / LLM_DB

    def calibration_dir(self, name: str) -> Path:
        return self.path / CALIBRATIONS / safe_name(name, "calibration name")

    def calibrations(self) -> list[str]:
        d = self.path / CALIBRATIONS
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.is_dir() else []

    def choose_calibration(self, name: str | None) -> str:
        """The calibration to use: `name`, else the library's only one; BadInput otherwise (publish, estimate
        and describe share this rule)."""
        have = self.calibrations()
        if name is not None:
            if name not in have:
                raise BadInput(f"{self.calibration_dir(name)}: no calibration {name!r} in {self.path} "
                               f"(have: {', '.join(have) or 'none'})")
            return name
        if not have:
            raise BadInput(f"{self.path}: library has no calibration (run `personagen calibrate` first)")
        if len(have) > 1:
            raise BadInput(f"{self.path}: several calibrations ({', '.join(have)}); choose one with --calibration")
        return have[0]

    def __repr__(self) -> str:
        return f"Library({str(self.path)!r})"
