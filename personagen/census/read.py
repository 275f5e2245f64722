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

from personagen.census.codebook import attributes, check_year, ranged_variables, ranges, resolve_state, rules
from personagen.errors import BadInput
from personagen.infile import regular_file

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
    """The person files of a Census zip (the national csv_pus.zip holds two halves, psam_pusa/b.csv); BadInput
    when one is there twice (the same name in two folders, or the same bytes under two names): its records
    would be read twice."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if _MEMBER.search(i.filename)]
    except (zipfile.BadZipFile, OSError) as e:
        raise BadInput(f"{path}: not a readable zip file ({e})") from None
    if not infos:
        raise BadInput(f"{path}: zip holds no psam_p*.csv person file")
    seen: dict[object, str] = {}
    for i in sorted(infos, key=lambda i: i.filename):
        for key in (i.filename.rsplit("/", 1)[-1].lower(), (i.CRC, i.file_size)):
            if key in seen:
                raise BadInput(f"{path}: zip holds the person file twice ({seen[key]} and {i.filename}); its records"
                               " would be read twice (keep one)")
            seen[key] = i.filename
    return sorted(i.filename for i in infos)


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


def _person_file_columns(source: str | os.PathLike) -> tuple[Path, list[str]]:
    """The file's path and the codebook columns it has; BadInput when it is missing, a folder, or not a PUMS
    person file (no PWGTP/AGEP/...)."""
    path = Path(source)
    if not path.exists():
        raise BadInput(f"{path}: census file does not exist")
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a PUMS file")
    regular_file(path, "census file")  # a device (/dev/zero) or a pipe would be read without end
    spec = attributes()
    cols = header(path)
    missing = [c for c in spec["required"] if c not in cols]
    if missing:
        raise BadInput(f"{path}: no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
                       " (not an ACS PUMS person file?)")
    use = [c for c in spec["required"] + spec["optional"] if c in cols]
    return path, use


def read_raw(source: str | os.PathLike, *, min_age: int | None = 18, state: str | int | None = None,
             year: int | None = None, apply_rules: bool = True) -> RawPopulation:
    """Read, filter (age, state) and rule-check PUMS persons; codes as Int64, SERIALNO as str.

    BadInput when the file is missing, is not a PUMS person file (no PWGTP/AGEP/...), or its year has no codebook.
    """
    path, use = _person_file_columns(source)
    fips = int(resolve_state(state)[1]) if state is not None else None
    filters: dict[str, Any] = {"min_age": min_age, "state": resolve_state(state)[0] if state is not None else None}
    try:
        with _lazy_frames(path, use) as frames:
            lf = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
            lf = _typed(lf, use)
            counted = lf.select(pl.len().alias("n"), pl.col("SERIALNO").drop_nulls().first().alias("s"),
                                *_extremes(use))
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
    data_year = _data_year(meta["s"][0], year, path)
    _check_ranges(meta, data_year, path)
    counts: dict[str, int] = {}
    if apply_rules:
        df, counts = _drop_rule_hits(df, use)
    return RawPopulation(df=df, source=path, year=data_year, records_read=int(meta["n"][0]),
                         rule_counts=counts, filters=filters)


@dataclass
class SampledPopulation:
    """The distinct PUMS records a PWGTP sample drew (raw integer codes, file order) and the draw order.

    draws[i] is the row of `df` behind persona i; records_eligible and state_codes describe the whole filtered,
    rule-checked population, of which only the sampled records were materialised with all their columns;
    replace is the sampling used (with replacement or distinct people)."""

    df: pl.DataFrame
    draws: Any  # numpy int array, one entry per draw
    replace: bool
    source: Path
    year: int
    records_read: int
    records_eligible: int
    state_codes: list[int]
    rule_counts: dict[str, int] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)


_SAMPLING_VARS = {"SERIALNO", "PWGTP", "AGEP", "ST"}


def _typed(lf: pl.LazyFrame, cols: list[str], ints: pl.DataType = pl.Int64) -> pl.LazyFrame:
    """SERIALNO as a stripped string, every other PUMS code as `ints` (unparseable or out of range → null)."""
    return lf.with_columns(*[pl.col(c).cast(pl.String).str.strip_chars() if c == "SERIALNO"
                             else pl.col(c).cast(ints, strict=False) for c in cols])


def read_sample(source: str | os.PathLike, n: int, seed: int, *, replace: bool | None = None,
                min_age: int | None = 18, state: str | int | None = None, year: int | None = None) -> SampledPopulation:
    """Filter, rule-check and PWGTP-sample a PUMS file without materialising every record's columns.

    replace None: distinct people when the eligible records allow a self-weighting draw (`distinct_draws_ok`),
    else draws with replacement (the build default); True/False force one.

    Pass 1 reads only the sampling, filter and rule variables (a few columns, streamed for big files such as
    the national csv_pus.zip) and draws the sample (`sample_indices`: the same draws as sampling `read_raw`'s
    frame); pass 2 re-scans the file for the drawn rows only, with every needed column. Memory: a few columns of
    the population plus the sampled records, instead of all columns of all records."""
    import numpy as np

    from personagen.census.codebook import resolve_state
    from personagen.census.sample import distinct_draws_ok, sample_indices

    path, use = _person_file_columns(source)
    rule_vars = {c["var"] for r in rules() for c in r["drop_if"]}
    first = [c for c in use if c in _SAMPLING_VARS | rule_vars]
    fips = int(resolve_state(state)[1]) if state is not None else None
    filters: dict[str, Any] = {"min_age": min_age, "state": resolve_state(state)[0] if state is not None else None}
    engine = "streaming" if path.stat().st_size > GZ_IN_MEMORY_LIMIT else "auto"
    try:
        with _lazy_frames(path, use) as frames:
            base = (pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]).with_row_index("_row")
            # every record's pass-1 columns are held at once: 32-bit codes (PUMS codes, weights and incomes fit)
            # and no SERIALNO (only the first one is read, for the year) keep 10 M records near 0.5 GB
            lf = _typed(base.select("_row", *first), first, pl.Int32)
            counted = lf.select(pl.len().alias("n"), pl.col("SERIALNO").drop_nulls().first().alias("s"),
                                *_extremes(first))
            codes = [c for c in first if c != "SERIALNO"]
            lf = lf.select("_row", *codes)
            if min_age is not None:
                lf = lf.filter(pl.col("AGEP") >= min_age)
            if fips is not None:
                lf = lf.filter(pl.col("ST") == fips)
            df, meta = pl.collect_all([lf, counted], engine=engine)
            data_year = _data_year(meta["s"][0], year, path)
            _check_ranges(meta, data_year, path)
            df, counts = _drop_rule_hits(df, codes)
            if df.height == 0:
                raise BadInput(f"{path}: no census records left after --min-age {min_age}"
                               f"{f' and --state {state}' if state else ''} and the consistency rules")
            weights = df["PWGTP"].to_numpy()
            replace = (not distinct_draws_ok(weights, n)) if replace is None else replace
            idx = sample_indices(weights, n, seed, replace=replace)
            rows, draws = np.unique(df["_row"].to_numpy()[idx], return_inverse=True)
            picked = _typed(base.filter(pl.col("_row").is_in(pl.Series(rows).implode())).select("_row", *use), use)
            sampled = picked.collect(engine=engine).sort("_row").drop("_row")
    except pl.exceptions.PolarsError as e:
        raise BadInput(f"{path}: cannot parse as a PUMS person file ({type(e).__name__}: {str(e).splitlines()[0]})"
                       ) from None
    return SampledPopulation(df=sampled, draws=draws, replace=replace, source=path, year=data_year, records_read=int(meta["n"][0]),
                             records_eligible=df.height, state_codes=sorted(df["ST"].unique().drop_nulls().to_list()),
                             rule_counts=counts, filters=filters)


def _data_year(first: str | None, year: int | None, path: Path) -> int:
    """The PUMS year from the first SERIALNO (checked against a requested year and the codebooks)."""
    data_year = int(first[:4]) if first and first[:4].isdigit() else None
    if year is not None and data_year is not None and int(year) != data_year:
        raise BadInput(f"{path}: holds PUMS year {data_year}, not the requested --year {year}")
    return check_year(data_year if data_year is not None else year, source=path)


def _extremes(cols: list[str]) -> list[pl.Expr]:
    """Lowest and highest value of each range-checked variable in `cols` (before any filter)."""
    return [e for v in ranged_variables() if v in cols
            for e in (pl.col(v).min().alias(f"min {v}"), pl.col(v).max().alias(f"max {v}"))]


def _check_ranges(meta: pl.DataFrame, year: int, path: Path) -> None:
    """BadInput naming the variable when a value lies outside the year's codebook range (AGEP 0-99)."""
    for var, (lo, hi) in ranges(year).items():
        if f"min {var}" not in meta.columns:
            continue
        low, high = meta[f"min {var}"][0], meta[f"max {var}"][0]
        bad = low if low is not None and low < lo else high if high is not None and high > hi else None
        if bad is not None:
            raise BadInput(f"{path}: field {var} holds {bad}, outside the PUMS {year} codebook range {lo}-{hi}"
                           " (not a PUMS value; fix or drop the record)")


def _drop_rule_hits(df: pl.DataFrame, present: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    """Drop records a consistency rule flags (first matching rule counted), returning the counts per rule."""
    flags = rule_flags(set(present))
    if not flags:
        return df, {}
    first_hit = pl.lit(None, dtype=pl.String)
    for rid, expr in reversed(flags):
        first_hit = pl.when(expr).then(pl.lit(rid)).otherwise(first_hit)
    hits = df.select(first_hit.alias("_rule"))["_rule"]
    vc = hits.drop_nulls().value_counts()
    found = dict(zip(vc["_rule"].to_list(), vc["count"].to_list()))
    counts = {rid: int(found.get(rid, 0)) for rid, _ in flags}
    if hits.null_count() != len(hits):
        df = df.filter(hits.is_null())
    return df, counts
