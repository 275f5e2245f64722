"""Curated trait banks (census/priors/traits.yaml) sampled per persona, vectorised and seed-deterministic.

Why: short concrete details (values, quirks, habits) make persona prompts less generic than demographics
alone, without tying any detail to a demographic group.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from personagen.errors import PersonagenError
from personagen.resources import census_dir

TRAIT_COLUMNS: tuple[str, ...] = ("core_values", "quirks", "mannerisms", "lifestyle", "personal_time")


def traits_path() -> Path:
    """The shipped trait banks file (census/priors/traits.yaml)."""
    return census_dir() / "priors" / "traits.yaml"


@functools.lru_cache(maxsize=4)
def load_banks(path: str | None = None) -> dict[str, tuple[str, ...]]:
    """{column: entries} for every TRAIT_COLUMNS bank; PersonagenError if one is missing or too small."""
    p = Path(path) if path else traits_path()
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    banks = {}
    for col in TRAIT_COLUMNS:
        entries = tuple(str(x).strip() for x in data.get(col) or [] if str(x).strip())
        if len(entries) < 3:
            raise PersonagenError(f"{p}: trait bank {col!r} needs at least 3 entries")
        banks[col] = entries
    return banks


def _distinct3(m: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three distinct uniform indices in [0, m) per row (sequential draw with shifts, no rejection)."""
    i1 = rng.integers(0, m, n)
    i2 = rng.integers(0, m - 1, n)
    i2 += i2 >= i1
    lo, hi = np.minimum(i1, i2), np.maximum(i1, i2)
    i3 = rng.integers(0, m - 2, n)
    i3 += i3 >= lo
    i3 += i3 >= hi
    return i1, i2, i3


def trait_columns(n: int, rng: np.random.Generator, banks: dict[str, tuple[str, ...]] | None = None
                  ) -> list[pl.Series]:
    """core_values (2-3 distinct values joined with ", ") and one entry of every other bank, for n rows."""
    banks = banks or load_banks()
    out = []
    vals = pl.Series(banks["core_values"], dtype=pl.String)
    i1, i2, i3 = _distinct3(len(vals), n, rng)
    three = rng.integers(0, 2, n).astype(bool)
    parts = pl.DataFrame({"a": vals.gather(i1), "b": vals.gather(i2), "c": vals.gather(i3), "three": three})
    third = pl.when(pl.col("three")).then(pl.col("c"))
    out.append(parts.select(pl.concat_str("a", "b", third, separator=", ", ignore_nulls=True)
                            .alias("core_values")).to_series())
    for col in TRAIT_COLUMNS[1:]:
        bank = pl.Series(banks[col], dtype=pl.String)
        out.append(bank.gather(rng.integers(0, len(bank), n)).alias(col))
    return out
