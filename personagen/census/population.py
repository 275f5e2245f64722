"""The census API other stages use: decoded persons of a PUMS file, and where a state's file comes from."""

from __future__ import annotations

import os

import polars as pl

from personagen.census.codebook import states
from personagen.census.decoding import decode
from personagen.census.download import fetch_state
from personagen.census.read import RawPopulation, read_raw
from personagen.errors import BadInput


def read_population(source: str | os.PathLike, *, min_age: int | None = 18, state: str | int | None = None,
                    year: int | None = None) -> RawPopulation:
    """Filtered, rule-checked raw PUMS records (see personagen.census.read.read_raw)."""
    return read_raw(source, min_age=min_age, state=state, year=year)


def load_population(source: str | os.PathLike, *, min_age: int | None = 18, state: str | int | None = None,
                    year: int | None = None) -> pl.DataFrame:
    """Decoded PUMS persons (persona attribute columns + pwgtp), after the age/state filters and the rules."""
    raw = read_population(source, min_age=min_age, state=state, year=year)
    return decode(raw.df, raw.year)


def resolve_source(census: str | os.PathLike | None = None, *, state: str | None = None, year: int | None = None,
                   cache_dir: str | os.PathLike | None = None, progress: bool = False) -> tuple[str, str | None]:
    """(local PUMS path, download URL or None): the given file, or the state's file found offline/cached/downloaded."""
    if census is not None and state is not None:
        # a local file plus a state means "filter this file to that state"; nothing to download
        return str(census), None
    if census is not None:
        return str(census), None
    if state is None:
        raise BadInput("give a census source: --census PATH or --state XX [--year YYYY]")
    path, url = fetch_state(state, year, cache_dir=cache_dir, progress=progress)
    return str(path), url


def check_same_states(personas: pl.DataFrame, population: pl.DataFrame, source: str | os.PathLike,
                      library: str | os.PathLike) -> None:
    """BadInput when the census persons hold none of some state the library's census personas come from (a
    Vermont library compared with a Wyoming file): the comparison would be meaningless, not merely noisy."""
    if "state_code" not in personas.columns or "state_code" not in population.columns:
        return
    pool = personas.filter(pl.col("source") == "census") if "source" in personas.columns else personas
    mine = set(pool["state_code"].drop_nulls().cast(pl.String).unique().to_list())
    theirs = set(population["state_code"].drop_nulls().cast(pl.String).unique().to_list())
    missing = sorted(mine - theirs)
    if missing:
        raise BadInput(f"{source}: census file holds {_state_names(theirs) or 'no one after the filters'}, but the personas of {library} come"
                       f" from {_state_names(missing)}; compare with that state's census file (--census PATH)")


def _state_names(codes: set[str] | list[str]) -> str:
    names = {e["fips"]: e["name"] for e in states().values()}
    shown = sorted(codes)
    return ", ".join(names.get(c, c) for c in shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")


# manifest census/config fields the census readers use -> the JSON types they may hold
_SOURCE_FIELDS = {("census", "path"): (str,), ("census", "year"): (int,), ("census", "state"): (str,),
                  ("census", "state_code"): (str,), ("census", "min_age"): (int,), ("config", "min_age"): (int,),
                  ("config", "state"): (str,)}


def manifest_census(manifest: dict, where: str | os.PathLike) -> dict:
    """The census source a library was built from, from its manifest: {path, year, build_state (build --state),
    data_state (the file's one state), min_age} (None where not recorded), each field type-checked (BadInput
    naming the field) before it reaches a reader."""
    got: dict[tuple[str, str], object] = {}
    for (part, key), types in _SOURCE_FIELDS.items():
        sect = manifest.get(part) or {}
        v = sect.get(key) if isinstance(sect, dict) else None
        if v is not None and (isinstance(v, bool) or not isinstance(v, types)):
            raise BadInput(f"{where}: field '{part}.{key}' must be {'a string' if types == (str,) else 'an integer'}"
                           f", found {type(v).__name__}")
        got[(part, key)] = v
    min_age = got[("config", "min_age")]
    return {"path": got[("census", "path")], "year": got[("census", "year")], "build_state": got[("config", "state")],
            "data_state": got[("census", "state_code")] or got[("census", "state")],
            "min_age": min_age if min_age is not None else got[("census", "min_age")]}
