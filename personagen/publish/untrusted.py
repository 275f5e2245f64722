"""Checks for a pulled panel, which is untrusted input: sizes before download, then schema, dtypes and
names before anything is written. A junk or hostile repo is refused with one BadInput naming the file."""

from __future__ import annotations

import os
from typing import Any

import polars as pl

from personagen.errors import BadInput
from personagen.names import safe_name

# the only files a pull reads (everything else in a repo is never downloaded)
ALLOW_PATTERNS = ["personagen.json", "README.md", "data/personas/*.parquet", "data/responses/*.parquet",
                  "data/calibration/*.parquet"]
MAX_FILE_MB_ENV = "PERSONAGEN_MAX_PULL_MB"
DEFAULT_MAX_FILE_MB = 512.0
MAX_ROWS = 50_000_000
TEXT_DTYPES = (pl.String, pl.Categorical, pl.Enum)
RESPONSE_DTYPES: dict[str, tuple] = {"persona_id": TEXT_DTYPES, "qid": TEXT_DTYPES, "option": TEXT_DTYPES,
                                     "survey_id": TEXT_DTYPES, "prob": ("numeric",)}


def max_file_bytes() -> int:
    """Largest file a pull accepts, from $PERSONAGEN_MAX_PULL_MB (default 512 MB)."""
    raw = os.environ.get(MAX_FILE_MB_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_FILE_MB
    except ValueError:
        raise BadInput(f"${MAX_FILE_MB_ENV}={raw!r}: expected a number of megabytes") from None
    return int(mb * 1024 * 1024)


def check_sizes(files: list[tuple[str, int | None]], where: str) -> None:
    """Refuse any listed (path, size) over the limit, before it is downloaded."""
    limit = max_file_bytes()
    for path, size in files:
        if size is not None and size > limit:
            raise BadInput(f"{where}/{path}: {size / 2**20:.1f} MB exceeds the {limit / 2**20:.0f} MB limit for "
                           f"a pulled file (raise ${MAX_FILE_MB_ENV} if you trust it)")


def _dtype_ok(dtype: pl.DataType, want: tuple) -> bool:
    if "numeric" in want:
        return dtype.is_numeric()
    return any(dtype == w for w in want)


def check_frame(df: pl.DataFrame, where: str, dtypes: dict[str, tuple], required: tuple[str, ...]) -> None:
    """Required columns present, known columns of the expected dtype, not too many rows."""
    if df.height > MAX_ROWS:
        raise BadInput(f"{where}: {df.height:,} rows exceeds {MAX_ROWS:,}")
    for c in required:
        if c not in df.columns:
            raise BadInput(f"{where}: lacks column {c!r}")
    for c, want in dtypes.items():
        if c in df.columns and not _dtype_ok(df.schema[c], want):
            raise BadInput(f"{where}: column {c!r} has dtype {df.schema[c]}, expected "
                           f"{'a number' if 'numeric' in want else 'text'}")


def check_personas(df: pl.DataFrame, where: str) -> None:
    check_frame(df, where, {"persona_id": TEXT_DTYPES, "weight": ("numeric",)}, ("persona_id", "weight"))
    if df["persona_id"].null_count():
        raise BadInput(f"{where}: column 'persona_id' has null values")


PROB_SUM_TOL = 1e-3  # as calibrate's design: one answer's option probabilities sum to 1 within this


def check_responses(df: pl.DataFrame, where: str) -> None:
    """Schema as check_frame, and each valid answer a distribution: prob finite in [0, 1], summing to 1 over
    the options of one (persona, survey, question, model, mode[, style])."""
    check_frame(df, where, RESPONSE_DTYPES, ("persona_id", "qid", "option", "prob"))
    ok = df.filter(pl.col("valid").fill_null(True)) if df.schema.get("valid") == pl.Boolean else df
    prob = pl.col("prob").cast(pl.Float64)
    bad = ok.filter(prob.is_not_null() & (prob.is_nan() | prob.is_infinite() | (prob < 0) | (prob > 1 + PROB_SUM_TOL)))
    if bad.height:
        r = bad.row(0, named=True)
        raise BadInput(f"{where}: column 'prob' of persona {r['persona_id']!r} on {r['qid']!r}/{r['option']!r} is "
                       f"{r['prob']!r}, not a probability in [0, 1] ({bad.height} such rows)")
    keys = [c for c in ("persona_id", "survey_id", "qid", "model", "mode", "style") if c in df.columns]
    sums = ok.filter(prob.is_not_null()).group_by(keys).agg(prob.sum().alias("s"))
    off = sums.filter((pl.col("s") - 1.0).abs() > PROB_SUM_TOL)
    if off.height:
        r = off.row(0, named=True)
        raise BadInput(f"{where}: column 'prob' of persona {r['persona_id']!r} on {r['qid']!r} sums to {r['s']:.4g}"
                       f" over the options, not 1 ({off.height} such answers)")


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """personagen.json: an object whose nested parts have the expected kinds; calibration a safe name."""
    if not isinstance(meta, dict):
        raise BadInput(f"{where}: expected a JSON object")
    for k in ("provenance", "report"):
        if meta.get(k) is not None and not isinstance(meta[k], dict):
            raise BadInput(f"{where}: field {k!r} must be an object")
    prov = meta.get("provenance") or {}
    seed = prov.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadInput(f"{where}: field 'provenance.seed' must be an integer or null")
    if not isinstance(prov.get("census") or {}, dict):
        raise BadInput(f"{where}: field 'provenance.census' must be an object or null")
    if not isinstance(meta.get("left_out", []), list):
        raise BadInput(f"{where}: field 'left_out' must be a list")
    name = meta.get("calibration") or (meta.get("report") or {}).get("name") or "published"
    safe_name(name, f"{where}: field 'calibration'")
    return meta


__all__ = ["ALLOW_PATTERNS", "check_sizes", "check_personas", "check_responses", "check_meta", "max_file_bytes"]
