"""The build pipeline: PUMS file (or a state's downloaded file) -> rules -> PWGTP sample -> decoded personas ->
Big Five priors + traits -> rendered text -> a new library directory (written staged, so failures leave nothing).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen import priors
from personagen.census import (
    decode,
    distinct_draws_ok,
    read_raw,
    resolve_source,
    sample_indices,
    sha256_file,
    states,
    unknown_codes,
)
from personagen.errors import BadInput
from personagen.library import Library
from personagen.personas import STYLES, order_columns, render_personas
from personagen.store import staged_dir

# Persona columns ahead of the decoded PUMS attributes (DESIGN.md §2, personas.parquet).
LEAD_COLUMNS = ("persona_id", "source", "mode", "enriched", "weight_census")


def normalize_styles(styles: str | Iterable[str] | None) -> list[str]:
    """Validate requested render styles ("all" = every style); BadInput naming an unknown one."""
    if styles is None:
        return ["narrative"]
    items = [styles] if isinstance(styles, str) else list(styles)
    out: list[str] = []
    for s in items:
        for part in str(s).split(","):
            part = part.strip()
            if not part:
                continue
            if part == "all":
                out.extend(STYLES)
            elif part in STYLES:
                out.append(part)
            else:
                raise BadInput(f"--style {part}: unknown style (choose from {', '.join(STYLES)} or all)")
    return list(dict.fromkeys(out)) or ["narrative"]


class _Stages:
    """Stage timer with an optional tqdm bar on stderr (one tick per stage)."""

    def __init__(self, names: Sequence[str], progress: bool):
        self.times: dict[str, float] = {}
        self._bar = None
        self._name: str | None = None
        self._t = time.perf_counter()
        if progress and sys.stderr.isatty():  # only on a terminal, so logs and error output stay clean lines
            from tqdm import tqdm

            self._bar = tqdm(total=len(names), desc="build", unit="stage", file=sys.stderr, leave=False)

    def start(self, name: str) -> None:
        self._close_current()
        self._name, self._t = name, time.perf_counter()
        if self._bar is not None:
            self._bar.set_description(f"build: {name}")

    def _close_current(self) -> None:
        if self._name is not None:
            self.times[self._name] = round(time.perf_counter() - self._t, 4)
            if self._bar is not None:
                self._bar.update(1)
        self._name = None

    def close(self) -> None:
        self._close_current()
        if self._bar is not None:
            self._bar.close()


def _check_args(n: int, seed: int, min_age: int, templates: str | os.PathLike | None) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise BadInput(f"-n {n}: the number of personas must be a positive integer")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BadInput(f"--seed {seed}: the seed must be a non-negative integer")
    if isinstance(min_age, bool) or not isinstance(min_age, int) or not 0 <= min_age <= 99:
        raise BadInput(f"--min-age {min_age}: must be an integer from 0 to 99")
    if templates is not None and not Path(templates).is_dir():
        raise BadInput(f"{templates}: templates directory does not exist")


def _check_out(out: str | os.PathLike) -> None:
    """Fail early (BadInput) when the library cannot be created at `out`."""
    import tempfile

    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"{out}: parent {parent} is not an existing directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out}: already exists and is not empty (choose another path or remove it)")
    try:
        Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".probe", dir=parent)).rmdir()
    except OSError as e:
        raise BadInput(f"{out}: output directory {parent} is not writable ({e.strerror})") from None


def build_library(out: str | os.PathLike, census: str | os.PathLike | None = None, n: int = 1000, seed: int = 0,
                  *, state: str | None = None, year: int | None = None, min_age: int = 18, replace: bool | None = None,
                  styles: str | Iterable[str] = ("narrative",), templates: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None, progress: bool = False) -> Library:
    """Build a census-grounded persona library at `out` and return it (bit-identical for the same seed).

    `census` is a PUMS person file (csv, csv.gz, Census zip, parquet); or give `state` (and `year`) to use the
    state's Census file (offline folder, cache, or download). Sampling: `replace=None` (default) draws distinct
    people (Pareto πps without replacement) when the file has enough eligible records for that draw to stay
    self-weighting (census.distinct_draws_ok) and falls back to PWGTP draws with replacement otherwise;
    `replace=True` / `False` force one. Bad input raises BadInput before anything is left at `out`.
    """
    _check_args(n, seed, min_age, templates)
    style_list = normalize_styles(styles)
    _check_out(out)
    t_start = time.perf_counter()
    st = _Stages(["census", "sample", "decode", "priors", "render", "write"], progress)
    try:
        with staged_dir(out) as tmp:
            st.start("census")
            path, url = resolve_source(census, state=state, year=year, cache_dir=cache_dir, progress=progress)
            raw = read_raw(path, min_age=min_age, state=state, year=year)
            if raw.df.height == 0:
                raise BadInput(f"{path}: no census records left after --min-age {min_age}"
                               f"{f' and --state {state}' if state else ''} and the consistency rules")
            auto = replace is None  # distinct people when the file has enough records for a self-weighting draw
            replace = (not distinct_draws_ok(raw.df["PWGTP"].to_numpy(), n)) if auto else replace
            people, unique_records = _sample_people(raw, n, seed, replace, st)
            st.start("priors")
            people = priors.add_priors(people, seed)  # looked up at call time (tests replace it)
            st.start("render")
            people = order_columns(render_personas(people, styles=tuple(style_list), templates=templates))
            st.start("write")
            census_info = _census_info(raw, path, url)
            config = {"n": n, "min_age": min_age, "state": raw.filters.get("state"), "replace": replace,
                      "sampling": "pwgtp-pps-with-replacement" if replace else "pareto-pips-without-replacement",
                      "sampling_chosen": "default" if auto else "requested",
                      "styles": style_list, "templates": str(templates) if templates else None}
            lib = Library.init(tmp, seed=seed, census=census_info, config=config)
            lib.write_personas(people)
            st.close()
            info: dict[str, Any] = {
                "n": people.height,
                "unique_records": unique_records,
                "records_read": raw.records_read,
                "records_eligible": raw.df.height,
                "rules_removed": raw.rule_counts,
                "unknown_codes": unknown_codes(raw.df, raw.year),
                "styles": style_list,
                "stage_seconds": st.times,
                "seconds": round(time.perf_counter() - t_start, 3),
            }
            lib.record("build", **info)
    finally:
        st.close()
    return Library.open(out)


def _sample_people(raw: Any, n: int, seed: int, replace: bool, st: _Stages) -> tuple[pl.DataFrame, int]:
    """PWGTP-proportional draw of `n` records, decoded, with the lead persona columns (id, source, weights);
    also the number of distinct records drawn."""
    st.start("sample")
    idx = sample_indices(raw.df["PWGTP"].to_numpy(), n, seed, replace=replace)
    st.start("decode")
    # decode whichever is smaller: the eligible records (then gather the draws) or the draws
    people = decode(raw.df, raw.year)[idx] if raw.df.height < n else decode(raw.df[idx], raw.year)
    pw = people["pwgtp"].cast(pl.Float64)
    people = people.with_columns(
        (pl.col("serialno") + "-" + pl.col("sporder").cast(pl.String).str.zfill(2).fill_null("00") + "-"
         + (pl.int_range(pl.len()).over(["serialno", "sporder"])).cast(pl.String)).alias("persona_id"),
        pl.lit("census").alias("source"),
        pl.lit(None, dtype=pl.String).alias("mode"),
        pl.lit(False).alias("enriched"),
        (pw / pw.sum()).alias("weight_census"),
    )
    lead = people.select(*LEAD_COLUMNS, *[c for c in people.columns if c not in LEAD_COLUMNS and c != "sporder"])
    return lead, int(np.unique(idx).size)


def _census_info(raw: Any, path: str, url: str | None) -> dict[str, Any]:
    """The manifest's census entry: the source file (path, sha256, url), its year and the states in it."""
    fips_to_state = {e["fips"]: ab for ab, e in states().items()}
    codes = sorted(raw.df["ST"].unique().drop_nulls().to_list())
    data_states = [fips_to_state.get(f"{c:02d}", f"{c:02d}") for c in codes]
    return {
        "path": str(Path(path).resolve()),
        "sha256": sha256_file(path),
        "year": raw.year,
        "state": data_states[0] if len(data_states) == 1 else raw.filters.get("state"),
        "states": data_states,
        "url": url,
    }
