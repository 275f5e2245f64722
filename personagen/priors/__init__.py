"""priors stage: Big Five T-scores (age/sex conditioned, correlated) and curated trait banks per persona."""

from __future__ import annotations

import numpy as np
import polars as pl

from personagen.priors.big_five import (
    DOMAINS,
    LEVEL_COLUMNS,
    LEVEL_CUTS,
    LEVELS,
    T_COLUMNS,
    BigFivePriors,
    big_five_columns,
)
from personagen.priors.traits import TRAIT_COLUMNS, load_banks, trait_columns

__all__ = ["DOMAINS", "LEVELS", "LEVEL_CUTS", "T_COLUMNS", "LEVEL_COLUMNS", "TRAIT_COLUMNS", "BigFivePriors",
           "add_priors", "load_banks"]


def add_priors(df: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Add Big Five T-scores + levels and curated traits to df (existing columns of those names are replaced).

    Rows with age and sex use their age band x sex cell; rows lacking either use the overall distribution.
    Deterministic for (rows, seed); Big Five and traits use independent streams of the seed."""
    seed = int(seed)
    b5 = big_five_columns(df, np.random.default_rng([seed, 0xB5]))
    tr = trait_columns(df.height, np.random.default_rng([seed, 0x7A]))
    return df.with_columns(b5 + tr)
