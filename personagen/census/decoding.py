"""Decode raw PUMS codes into the readable persona columns (vectorised polars replace; no Python row loops)."""

from __future__ import annotations

from typing import Any

import polars as pl

from personagen.census.codebook import attributes, codebook

# Persona columns produced from PUMS, in personas.parquet order (docs/design.md §2, personas.parquet).
PUMS_COLUMNS: tuple[str, ...] = (
    "pwgtp", "serialno", "sporder", "state", "state_code", "puma", "age", "age_band", "sex", "race", "hispanic",
    "ancestry", "language", "english_ability", "education", "employment", "class_of_worker", "industry",
    "occupation", "income", "income_band", "marital_status", "birthplace", "citizenship", "nativity", "veteran",
    "veteran_period", "disability", "dis_cognitive", "dis_vision", "dis_hearing", "dis_ambulatory",
    "dis_selfcare", "dis_independent", "health_insurance", "fertility",
)


def _labels(col: str, mapping: dict[int, str | None], present: set[str]) -> pl.Expr:
    if col not in present:
        return pl.lit(None, dtype=pl.String)
    keys = [k for k, v in mapping.items() if v is not None]
    return pl.col(col).replace_strict(keys, [mapping[k] for k in keys], default=None, return_dtype=pl.String)


def _bands(expr: pl.Expr, bands: list[list[Any]]) -> pl.Expr:
    out = pl.lit(None, dtype=pl.String)
    for label, lo, hi in reversed(bands):
        cond = pl.lit(True)
        if lo is not None:
            cond = cond & (expr >= lo)
        if hi is not None:
            cond = cond & (expr <= hi)
        out = pl.when(cond & expr.is_not_null()).then(pl.lit(label)).otherwise(out)
    return out


def decode(raw: pl.DataFrame, year: int) -> pl.DataFrame:
    """Raw PUMS person records (Int64 codes, SERIALNO str) -> decoded persona attribute columns + pwgtp."""
    spec = attributes()
    cb = codebook(year)
    present = set(raw.columns)
    null_s = pl.lit(None, dtype=pl.String)

    def col_or_null(c: str, dtype: pl.DataType = pl.Int64) -> pl.Expr:
        return pl.col(c) if c in present else pl.lit(None, dtype=dtype)

    income = None
    if "PINCP" in present:
        adj = col_or_null("ADJINC").fill_null(1_000_000) if "ADJINC" in present else pl.lit(1_000_000)
        income = (pl.col("PINCP").cast(pl.Float64) * adj.cast(pl.Float64) / 1e6).round(0).cast(pl.Int64)
    lang = null_s
    if "LANX" in present:
        lang = (pl.when(pl.col("LANX") == 2).then(pl.lit("English only"))
                .when(pl.col("LANX") == 1).then(_labels("LANP", cb["LANP"], present)).otherwise(null_s))
    ins = null_s
    if "HICOV" in present:
        ins = pl.when(pl.col("HICOV") == 1).then(pl.lit("Insured, type not reported")).otherwise(null_s)
        for var, label in reversed(spec["insurance_types"]):
            if var in present:
                ins = pl.when((pl.col("HICOV") == 1) & (pl.col(var) == 1)).then(pl.lit(label)).otherwise(ins)
        ins = pl.when(pl.col("HICOV") == 2).then(pl.lit("No health insurance")).otherwise(ins)
    exprs: dict[str, pl.Expr] = {
        "pwgtp": pl.col("PWGTP"),
        "serialno": pl.col("SERIALNO"),
        "sporder": col_or_null("SPORDER"),
        "state": _labels("ST", cb["ST"], present),
        "state_code": pl.col("ST").cast(pl.String).str.zfill(2),
        "puma": col_or_null("PUMA").cast(pl.String).str.zfill(5),
        "age": pl.col("AGEP"),
        "age_band": _bands(pl.col("AGEP"), spec["age_bands"]),
        "language": lang,
        "income": income if income is not None else pl.lit(None, dtype=pl.Int64),
        "health_insurance": ins,
    }
    for out, var in spec["decode"].items():
        exprs[out] = _labels(var, cb[var], present)
    exprs["income_band"] = _bands(exprs["income"], spec["income_bands"])
    return raw.select([exprs[c].alias(c) for c in PUMS_COLUMNS])


def unknown_codes(raw: pl.DataFrame, year: int) -> dict[str, int]:
    """{PUMS variable: number of records whose non-null code is not in the year's codebook} (only nonzero)."""
    cb = codebook(year)
    spec = attributes()
    vars_ = [v for v in list(spec["decode"].values()) + ["ST", "LANP"] if v in raw.columns]
    if not vars_:
        return {}
    row = raw.select([(pl.col(v).is_not_null() & ~pl.col(v).is_in(list(cb[v].keys()))).sum().alias(v)
                      for v in vars_]).row(0, named=True)
    return {k: int(v) for k, v in row.items() if v}
