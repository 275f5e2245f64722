"""Persona table schema (personas.parquet): column names, dtypes and canonical order (docs/design.md §2).

Why: every stage reads the same columns; one list keeps names, order and null conventions in one place.
"""

from __future__ import annotations

import polars as pl

STYLES: tuple[str, ...] = ("narrative", "qa", "bio", "portray")
SOURCES: tuple[str, ...] = ("census", "bank", "learned", "mixed", "mixture")
BIG5_DOMAINS: tuple[str, ...] = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
TRAIT_COLUMNS: tuple[str, ...] = ("core_values", "quirks", "mannerisms", "lifestyle", "personal_time")
DISABILITY_DETAIL_COLUMNS: tuple[str, ...] = ("dis_cognitive", "dis_vision", "dis_hearing", "dis_ambulatory",
                                              "dis_selfcare", "dis_independent")

_S, _I, _F, _B = pl.String, pl.Int64, pl.Float64, pl.Boolean
PERSONA_SCHEMA: dict[str, pl.DataType] = {
    "persona_id": _S, "source": _S, "mode": _S, "enriched": _B, "weight_census": _F, "pwgtp": _I,
    "serialno": _S, "state": _S, "state_code": _S, "puma": _S, "age": _I, "age_band": _S, "sex": _S,
    "race": _S, "hispanic": _S, "ancestry": _S, "language": _S, "english_ability": _S, "education": _S,
    "employment": _S, "class_of_worker": _S, "industry": _S, "occupation": _S, "income": _I,
    "income_band": _S, "marital_status": _S, "birthplace": _S, "citizenship": _S, "nativity": _S,
    "veteran": _S, "disability": _S, **dict.fromkeys(DISABILITY_DETAIL_COLUMNS, _S),
    "health_insurance": _S, "fertility": _S,
    **{f"big5_{d}": _F for d in BIG5_DOMAINS}, **{f"big5_{d}_level": _S for d in BIG5_DOMAINS},
    **dict.fromkeys(TRAIT_COLUMNS, _S),
    **{f"text_{s}": _S for s in STYLES},
}
PERSONA_COLUMNS: tuple[str, ...] = tuple(PERSONA_SCHEMA)
# Descriptive attributes a template may mention (everything but ids, weights and rendered text).
ATTRIBUTE_COLUMNS: tuple[str, ...] = tuple(
    c for c in PERSONA_COLUMNS
    if c not in ("persona_id", "source", "mode", "enriched", "weight_census", "pwgtp", "serialno")
    and not c.startswith("text_"))


def text_column(style: str) -> str:
    """Column holding a rendered style, e.g. text_narrative."""
    return f"text_{style}"


def order_columns(df: pl.DataFrame) -> pl.DataFrame:
    """Known persona columns first in contract order, any extra columns after (in their current order)."""
    known = [c for c in PERSONA_COLUMNS if c in df.columns]
    return df.select(known + [c for c in df.columns if c not in PERSONA_SCHEMA])
