"""The census API other stages use: decoded persons of a PUMS file, and where a state's file comes from."""

from __future__ import annotations

import os

import polars as pl

from personagen.census.decode import decode
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
