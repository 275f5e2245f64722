"""The Library: one directory that flows through every command (manifest, personas, responses, calibrations).

A plain object over the library directory: open/create, the manifest, reading and appending tables. It knows no
stage; the verbs (`lib.elicit`, `lib.calibrate`) are added above the stages in personagen.api.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from personagen.errors import BadInput
from personagen.infile import MANIFEST_MAX_BYTES, load_json
from personagen.locking import library_lock
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

    def record(self, stage: str, **info: Any) -> None:
        """Append a stage entry (what ran, with which options) to the manifest history and save it.

        Read-modify-write under the library lock: the history on disk (other processes' entries included)
        is re-read, so concurrent runs never drop each other's entries."""
        with library_lock(self.path):
            mf = self.path / MANIFEST
            if mf.is_file():
                with contextlib.suppress(BadInput):
                    self.manifest["history"] = list(_read_manifest(mf).get("history") or [])
            self.manifest.setdefault("history", []).append({"stage": stage, "time": now_iso(), **info})
            self.save_manifest()

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
        if "persona_id" not in df.columns:
            raise ValueError("personas frame needs a persona_id column")
        if df["persona_id"].n_unique() != df.height:
            raise ValueError("persona_id values must be unique")
        atomic_write_parquet(self.personas_path, df)

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

    def __repr__(self) -> str:
        return f"Library({str(self.path)!r})"
