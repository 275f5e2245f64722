"""The build pipeline: PUMS file (or a state's downloaded file) -> rules -> PWGTP sample -> decoded personas ->
Big Five priors + traits -> rendered text -> a new library directory (written staged, so failures leave nothing).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen import priors
from personagen.census import (
    SampledPopulation,
    decode,
    read_sample,
    resolve_source,
    sha256_file,
    states,
    unknown_codes,
)
from personagen.errors import BadInput
from personagen.library import Library
from personagen.personas import STYLES, order_columns, render_personas
from personagen.store import staged_dir

# Persona columns ahead of the decoded PUMS attributes (docs/design.md §2, personas.parquet).
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
    st = _Stages(["census", "sample", "priors", "decode+render+write"], progress)
    try:
        with staged_dir(out) as tmp:
            st.start("census")
            path, url = resolve_source(census, state=state, year=year, cache_dir=cache_dir, progress=progress)
            st.start("sample")
            # two passes: the sampling columns of every record, then every column of the drawn records only
            pop = read_sample(path, n, seed, replace=replace, min_age=min_age, state=state, year=year)
            if pop.df["SERIALNO"].null_count():
                raise BadInput(f"{path}: SERIALNO missing on drawn records (persona ids need it)")
            st.start("priors")  # numbering, weight total and priors over all draws; the rest a batch at a time
            batches = persona_batches(pop, seed, style_list, templates)
            first = next(batches)
            config = {"n": n, "min_age": min_age, "state": pop.filters.get("state"), "replace": pop.replace,
                      "sampling": "pwgtp-pps-with-replacement" if pop.replace else "pareto-pips-without-replacement",
                      "sampling_chosen": "default" if replace is None else "requested",
                      "styles": style_list, "templates": str(templates) if templates else None}
            lib = Library.init(tmp, seed=seed, census=_census_info(pop, path, url), config=config)
            st.start("decode+render+write")  # a batch at a time, one row group each: memory flat in n
            n_written = lib.write_personas_batches(itertools.chain([first], batches))
            st.close()
            info: dict[str, Any] = {
                "n": n_written,
                "unique_records": pop.df.height,
                "records_read": pop.records_read,
                "records_eligible": pop.records_eligible,
                "rules_removed": pop.rule_counts,
                "unknown_codes": unknown_codes(pop.df, pop.year),  # among the drawn records
                "styles": style_list,
                "stage_seconds": st.times,
                "seconds": round(time.perf_counter() - t_start, 3),
            }
            lib.record("build", **info)
    finally:
        st.close()
    return Library.open(out)


RENDER_BATCH = 65_536  # personas made, rendered and written per parquet row group


def _occurrences(pop: SampledPopulation) -> np.ndarray:
    """Per draw, how many earlier draws share its (SERIALNO, SPORDER): the persona_id suffix (what
    `int_range().over(serialno, sporder)` numbers on the whole frame), computed on integer keys."""
    sp = pl.col("SPORDER").cast(pl.String) if "SPORDER" in pop.df.columns else pl.lit("")
    key = pop.df.select(pl.concat_str([pl.col("SERIALNO").fill_null(""), sp.fill_null("")], separator="|"))
    k = key.to_series().rank("dense").to_numpy()[pop.draws]
    order = np.argsort(k, kind="stable")
    ks = k[order]
    pos = np.arange(len(ks))
    start = np.maximum.accumulate(np.where(np.r_[True, ks[1:] != ks[:-1]], pos, 0))
    occ = np.empty(len(k), dtype=np.int64)
    occ[order] = pos - start
    return occ


def _prior_columns(pop: SampledPopulation, seed: int) -> pl.DataFrame:
    """Big Five + traits for every draw (drawn for all rows at once, as `add_priors` does, so a batch cannot draw
    its own), from age and sex only; text columns held as Categorical (a few bytes a row) until their batch."""
    cells = decode(pop.df.select([c for c in ("SERIALNO", "PWGTP", "ST", "AGEP", "SEX") if c in pop.df.columns]),
                   pop.year).select("age", "sex")[pop.draws]
    pri = priors.add_priors(cells, seed).drop("age", "sex")  # looked up at call time (tests replace it)
    return pri.with_columns(pl.col(pl.String).cast(pl.Categorical))


def persona_batches(pop: SampledPopulation, seed: int, styles: Sequence[str], templates: str | os.PathLike | None,
                    batch: int | None = None) -> Iterator[pl.DataFrame]:
    """The library's personas `batch` draws at a time: decode, lead columns, priors, render, column order.

    The same rows as decoding, numbering and drawing priors for the whole sample at once: persona_id numbering,
    the weight total and the priors are computed over all draws first (a few bytes a draw), everything else per
    batch, so memory is nearly flat in n."""
    batch = batch or RENDER_BATCH
    occ = _occurrences(pop)
    total = pl.Series(pop.df["PWGTP"].to_numpy()[pop.draws]).cast(pl.Float64).sum()
    pri = _prior_columns(pop, seed)
    for off in range(0, len(pop.draws), batch):
        people = decode(pop.df[pop.draws[off:off + batch]], pop.year)
        people = people.with_columns(
            (pl.col("serialno") + "-" + pl.col("sporder").cast(pl.String).str.zfill(2).fill_null("00") + "-"
             + pl.lit(pl.Series(occ[off:off + batch])).cast(pl.String)).alias("persona_id"),
            pl.lit("census").alias("source"),
            pl.lit(None, dtype=pl.String).alias("mode"),
            pl.lit(False).alias("enriched"),
            (pl.col("pwgtp").cast(pl.Float64) / total).alias("weight_census"),
        )
        people = people.select(*LEAD_COLUMNS, *[c for c in people.columns if c not in LEAD_COLUMNS and c != "sporder"])
        part = pri.slice(off, batch).with_columns(pl.col(pl.Categorical).cast(pl.String))
        people = people.with_columns(part.get_columns())
        yield order_columns(render_personas(people, styles=tuple(styles), templates=templates))


def _census_info(pop: SampledPopulation, path: str, url: str | None) -> dict[str, Any]:
    """The manifest's census entry: the source file (path, sha256, url), its year and the states in it."""
    fips_to_state = {e["fips"]: ab for ab, e in states().items()}
    data_states = [fips_to_state.get(f"{c:02d}", f"{c:02d}") for c in pop.state_codes]
    return {
        "path": str(Path(path).resolve()),
        "sha256": sha256_file(path),
        "year": pop.year,
        "state": data_states[0] if len(data_states) == 1 else pop.filters.get("state"),
        "states": data_states,
        "url": url,
    }
