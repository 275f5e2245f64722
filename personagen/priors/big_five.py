"""Big Five T-score draws: correlated multivariate normal per age band x sex cell (figures in big_five.yaml).

Why: personas need plausible, internally consistent personality profiles whose averages move with age and
sex the way survey data show (SAPA spi; see personagen/priors/estimate_big_five.py for the estimation).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from personagen.errors import PersonagenError
from personagen.resources import census_dir

DOMAINS: tuple[str, ...] = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
LEVELS: tuple[str, ...] = ("very low", "low", "average", "high", "very high")
# T cut points: very low < 35 <= low < 45 <= average < 55 <= high < 65 <= very high
LEVEL_CUTS: tuple[float, ...] = (35.0, 45.0, 55.0, 65.0)
AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_EDGES: tuple[int, ...] = (25, 35, 45, 55, 65)
SEXES: tuple[str, ...] = ("male", "female")
T_COLUMNS: tuple[str, ...] = tuple(f"big5_{d}" for d in DOMAINS)
LEVEL_COLUMNS: tuple[str, ...] = tuple(f"{c}_level" for c in T_COLUMNS)
_SEX_CODES = {"male": 0, "m": 0, "man": 0, "1": 0, "female": 1, "f": 1, "woman": 1, "2": 1}


def priors_path() -> Path:
    """The shipped Big Five priors file (census/priors/big_five.yaml)."""
    return census_dir() / "priors" / "big_five.yaml"


class BigFivePriors:
    """Cell means/SDs and correlations, with the Cholesky factor of each cell's covariance precomputed."""

    def __init__(self, spec: dict) -> None:
        if tuple(spec["domains"]) != DOMAINS:
            raise PersonagenError(f"big_five priors: domains {spec['domains']} != {list(DOMAINS)}")
        self.spec = spec
        within = np.asarray(spec["within_cell_correlation"], dtype=float)
        self.means = np.empty((len(AGE_BANDS) * len(SEXES), len(DOMAINS)))
        self.sds = np.empty_like(self.means)
        self.chol = np.empty((len(self.means), len(DOMAINS), len(DOMAINS)))
        for cell in spec["cells"]:
            k = self.cell_index(cell["age_band"], cell["sex"])
            self.means[k] = [cell["mean"][d] for d in DOMAINS]
            self.sds[k] = [cell["sd"][d] for d in DOMAINS]
            self.chol[k] = np.linalg.cholesky(within * np.outer(self.sds[k], self.sds[k]))
        ov = spec["overall"]
        self.overall_mean = np.array([ov["mean"][d] for d in DOMAINS], dtype=float)
        self.overall_sd = np.array([ov["sd"][d] for d in DOMAINS], dtype=float)
        self.overall_corr = np.asarray(ov["correlation"], dtype=float)
        self.within_corr = within
        self.overall_chol = np.linalg.cholesky(self.overall_corr * np.outer(self.overall_sd, self.overall_sd))

    @staticmethod
    def cell_index(age_band: str, sex: str) -> int:
        """Row of a (age band, sex) cell in the arrays."""
        return AGE_BANDS.index(age_band) * len(SEXES) + SEXES.index(sex)

    @classmethod
    def load(cls, path: str | Path | None = None) -> BigFivePriors:
        """Read a priors YAML (default: the shipped one, cached)."""
        if path is None:
            return _default_priors()
        return cls(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=1)
def _default_priors() -> BigFivePriors:
    return BigFivePriors(yaml.safe_load(priors_path().read_text(encoding="utf-8")))


def cells_of(df: pl.DataFrame) -> np.ndarray:
    """Cell index per row from `age` and `sex` (-1 when either is missing/unknown -> overall distribution).

    Sex labels are matched case-insensitively (Male/Female, M/F, 1/2); ages under 18 use the 18-24 cell
    (the youngest the data cover)."""
    n = df.height
    if "age" not in df.columns or "sex" not in df.columns:
        return np.full(n, -1, dtype=np.int64)
    age = df["age"].cast(pl.Float64, strict=False).to_numpy()
    s = df["sex"].cast(pl.String)
    uniq = [v for v in s.unique().to_list() if v is not None]  # map the few distinct labels, not every row
    codes = [_SEX_CODES.get(v.strip().lower(), -1) for v in uniq]
    sex = s.replace_strict(uniq, codes, default=-1, return_dtype=pl.Int64).fill_null(-1).to_numpy()
    band = np.searchsorted(np.asarray(AGE_EDGES), np.nan_to_num(age, nan=0.0), side="right")
    return np.where(np.isnan(age) | (sex < 0), -1, band * len(SEXES) + sex)


def draw_big_five(cells: np.ndarray, rng: np.random.Generator, priors: BigFivePriors | None = None) -> np.ndarray:
    """(n, 5) T-scores: x = mean[cell] + L[cell] z with L the Cholesky factor of the cell's covariance.

    Vectorised over rows with per-row lookups of the 15 lower-triangular entries (no sorting or row gathers);
    a row's draw depends only on its position and cell, so the result is deterministic for a seed."""
    p = priors or _default_priors()
    k = len(DOMAINS)
    means = np.vstack([p.means, p.overall_mean])  # overall is the last row; cell -1 picks it
    chol = np.concatenate([p.chol, p.overall_chol[None]], axis=0)
    cells = np.asarray(cells, dtype=np.int64)
    z = rng.standard_normal((k, len(cells)))
    out = np.empty((len(cells), k))
    cells = np.where(cells < 0, len(means) - 1, cells)
    tmp = np.empty(len(cells))
    for i in range(k):
        acc = np.take(np.ascontiguousarray(means[:, i]), cells)
        for j in range(i + 1):
            np.take(np.ascontiguousarray(chol[:, i, j]), cells, out=tmp)
            tmp *= z[j]
            acc += tmp
        out[:, i] = acc
    return out


def level_labels(t: np.ndarray) -> np.ndarray:
    """Index into LEVELS for T-scores (see LEVEL_CUTS; a score equal to a cut falls in the upper level)."""
    idx = np.zeros(t.shape, dtype=np.int64)
    for cut in LEVEL_CUTS:
        idx += t >= cut
    return idx


def big_five_columns(df: pl.DataFrame, rng: np.random.Generator,
                     priors: BigFivePriors | None = None) -> list[pl.Series]:
    """The 10 Big Five columns (T-scores rounded to 0.1, then their level labels) for df's rows."""
    t = np.round(draw_big_five(cells_of(df), rng, priors), 1)
    lv = level_labels(t)
    labels = pl.Series(LEVELS, dtype=pl.String)
    cols = [pl.Series(name, t[:, j]) for j, name in enumerate(T_COLUMNS)]
    cols += [labels.gather(lv[:, j]).alias(name) for j, name in enumerate(LEVEL_COLUMNS)]
    return cols
