"""Read PUMS person files (csv, csv.gz, the Census csv_pXX.zip, parquet) lazily, selecting only needed columns.

Codes are read as strings and cast to integers, so padded ("0010", "006") and unpadded ("10", "6") files
decode the same way. SERIALNO stays a string. Big compressed inputs are stream-decompressed to a temp file and
scanned lazily; small ones are read in memory with only the needed columns (faster than a temp file).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from personagen.census.codebook import attributes, check_year, resolve_state, rules
from personagen.errors import BadInput

# Compressed inputs above these sizes (zip member: uncompressed; .gz: compressed) are decompressed to a temp
# file and scanned lazily; smaller ones are parsed in memory with only the needed columns.
IN_MEMORY_LIMIT = 256 * 1024 * 1024
GZ_IN_MEMORY_LIMIT = 32 * 1024 * 1024
_MEMBER = re.compile(r"(^|/)psam_p\w+\.csv$", re.IGNORECASE)


@dataclass
class RawPopulation:
    """Filtered, rule-checked PUMS person records (raw integer codes) plus what was done to them."""

    df: pl.DataFrame
    source: Path
    year: int
    records_read: int
    rule_counts: dict[str, int] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)


def kind_of(path: Path) -> str:
    """File kind from the name: zip | csv | csv.gz | parquet (BadInput otherwise)."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".csv.gz", ".gz")):
        return "csv.gz"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise BadInput(f"{path}: unsupported PUMS file type (use .csv, .csv.gz, a Census csv_pXX.zip or .parquet)")


def _zip_members(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i.filename for i in zf.infolist() if _MEMBER.search(i.filename)]
    except (zipfile.BadZipFile, OSError) as e:
        raise BadInput(f"{path}: not a readable zip file ({e})") from None
    if not members:
        raise BadInput(f"{path}: zip holds no psam_p*.csv person file")
    return sorted(members)


def _header_line(fh: io.BufferedIOBase, path: object) -> list[str]:
    line = fh.readline(1 << 20).decode("utf-8-sig", errors="replace").strip()
    if not line:
        raise BadInput(f"{path}: empty file")
    return [c.strip().strip('"') for c in line.split(",")]


def header(path: Path) -> list[str]:
    """Column names of a PUMS file without reading its rows."""
    kind = kind_of(path)
    try:
        if kind == "parquet":
            return list(pl.read_parquet_schema(path).keys())
        if kind == "zip":
            with zipfile.ZipFile(path) as zf, zf.open(_zip_members(path)[0]) as fh:
                return _header_line(fh, path)
        opener = gzip.open if kind == "csv.gz" else open
        with opener(path, "rb") as fh:
            return _header_line(fh, path)
    except BadInput:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, pl.exceptions.PolarsError) as e:
        raise BadInput(f"{path}: cannot read ({type(e).__name__}: {e})") from None


@contextlib.contextmanager
def _damaged_is_bad_input(path: Path) -> Iterator[None]:
    """A truncated or corrupt compressed file is bad input naming it (gzip/zip raise EOFError, OSError)."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zipfile.BadZipFile, zlib.error) as e:
        raise BadInput(f"{path}: damaged or truncated file ({type(e).__name__}: {e})") from None


@contextlib.contextmanager
def _lazy_frames(path: Path, columns: list[str]) -> Iterator[list[pl.LazyFrame]]:
    """Yield lazy frames (all columns as strings) over the file; temp files live until the block ends."""
    kind = kind_of(path)
    csv_kw = {"infer_schema": False, "columns": columns}
    if kind == "parquet":
        yield [pl.scan_parquet(path).select(columns)]
        return
    if kind == "csv":
        yield [pl.scan_csv(path, infer_schema=False).select(columns)]
        return
    with tempfile.TemporaryDirectory(prefix="personagen-pums-") as tmp, _damaged_is_bad_input(path):
        frames = []
        if kind == "csv.gz":
            if path.stat().st_size <= GZ_IN_MEMORY_LIMIT:
                frames.append(pl.read_csv(gzip.decompress(path.read_bytes()), **csv_kw).lazy())
            else:
                out = Path(tmp) / "pums.csv"
                with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                frames.append(pl.scan_csv(out, infer_schema=False).select(columns))
        else:
            with zipfile.ZipFile(path) as zf:
                for i, member in enumerate(_zip_members(path)):
                    info = zf.getinfo(member)
                    if info.file_size <= IN_MEMORY_LIMIT:
                        frames.append(pl.read_csv(zf.read(member), **csv_kw).lazy())
                    else:
                        out = Path(tmp) / f"member{i}.csv"
                        with zf.open(member) as src, open(out, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 22)
                        frames.append(pl.scan_csv(out, infer_schema=False).select(columns))
        yield frames


def _cond(c: dict[str, Any]) -> pl.Expr:
    col = pl.col(c["var"])
    if "null" in c:
        return col.is_null() if c["null"] else col.is_not_null()
    ops = {"lt": col.__lt__, "le": col.__le__, "gt": col.__gt__, "ge": col.__ge__, "eq": col.__eq__,
           "ne": col.__ne__, "in": col.is_in, "not_in": lambda v: ~col.is_in(v) & col.is_not_null(),
           "not_in_range": lambda v: (col < v[0]) | (col > v[1])}
    for op, fn in ops.items():
        if op in c:
            return fn(c[op]).fill_null(False)
    raise ValueError(f"census/rules.yaml: condition {c} has no known operator")


def rule_flags(present: set[str]) -> list[tuple[str, pl.Expr]]:
    """(rule id, boolean expression) for each rule whose variables are all in the file."""
    out = []
    for r in rules():
        conds = r["drop_if"]
        if not all(c["var"] in present for c in conds):
            continue
        expr = pl.lit(True)
        for c in conds:
            expr = expr & _cond(c)
        out.append((r["id"], expr))
    return out


def read_raw(source: str | os.PathLike, *, min_age: int | None = 18, state: str | int | None = None,
             year: int | None = None, apply_rules: bool = True) -> RawPopulation:
    """Read, filter (age, state) and rule-check PUMS persons; codes as Int64, SERIALNO as str.

    BadInput when the file is missing, is not a PUMS person file (no PWGTP/AGEP/...), or its year has no codebook.
    """
    path = Path(source)
    if not path.exists():
        raise BadInput(f"{path}: census file does not exist")
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a PUMS file")
    spec = attributes()
    cols = header(path)
    missing = [c for c in spec["required"] if c not in cols]
    if missing:
        raise BadInput(f"{path}: no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
                       " (not an ACS PUMS person file?)")
    use = [c for c in spec["required"] + spec["optional"] if c in cols]
    ints = [c for c in use if c != "SERIALNO"]
    fips = int(resolve_state(state)[1]) if state is not None else None
    filters: dict[str, Any] = {"min_age": min_age, "state": resolve_state(state)[0] if state is not None else None}
    try:
        with _lazy_frames(path, use) as frames:
            lf = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
            lf = lf.with_columns(pl.col("SERIALNO").cast(pl.String).str.strip_chars(),
                                 *[pl.col(c).cast(pl.Int64, strict=False) for c in ints])
            counted = lf.select(pl.len().alias("n"), pl.col("SERIALNO").drop_nulls().first().alias("s"))
            if min_age is not None:
                lf = lf.filter(pl.col("AGEP") >= min_age)
            if fips is not None:
                lf = lf.filter(pl.col("ST") == fips)
            # streaming engine for scanned files: a big (e.g. whole-US) file is filtered in batches
            engine = "streaming" if path.stat().st_size > GZ_IN_MEMORY_LIMIT else "auto"
            df, meta = pl.collect_all([lf, counted], engine=engine)
    except pl.exceptions.PolarsError as e:
        raise BadInput(f"{path}: cannot parse as a PUMS person file ({type(e).__name__}: {str(e).splitlines()[0]})"
                       ) from None
    first = meta["s"][0]
    data_year = int(first[:4]) if first and first[:4].isdigit() else None
    if year is not None and data_year is not None and int(year) != data_year:
        raise BadInput(f"{path}: holds PUMS year {data_year}, not the requested --year {year}")
    data_year = check_year(data_year if data_year is not None else year, source=path)
    counts: dict[str, int] = {}
    if apply_rules:
        flags = rule_flags(set(use))
        if flags:
            first_hit = pl.lit(None, dtype=pl.String)
            for rid, expr in reversed(flags):
                first_hit = pl.when(expr).then(pl.lit(rid)).otherwise(first_hit)
            hits = df.select(first_hit.alias("_rule"))["_rule"]
            vc = hits.drop_nulls().value_counts()
            found = dict(zip(vc["_rule"].to_list(), vc["count"].to_list()))
            counts = {rid: int(found.get(rid, 0)) for rid, _ in flags}
            if hits.null_count() != len(hits):
                df = df.filter(hits.is_null())
    return RawPopulation(df=df, source=path, year=data_year, records_read=int(meta["n"][0]),
                         rule_counts=counts, filters=filters)
