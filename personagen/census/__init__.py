"""Census stage: PUMS readers (csv, csv.gz, Census zip, parquet), codebook decoding, download + cache,
consistency rules and PWGTP-proportional sampling.

The face. `load_population(source, min_age=18, state=None, year=None)` is the API other stages use (describe,
bench census, calibrate --census-margins): decoded persons with the persona columns that come from PUMS, plus
pwgtp. The build pipeline also uses the reader, decoder, sampler and codebook names listed here.
"""

from personagen.census.codebook import states
from personagen.census.decoding import decode, unknown_codes
from personagen.census.describe import describe_library, plot_describe
from personagen.census.download import sha256_file
from personagen.census.population import (
    check_same_states,
    load_population,
    manifest_census,
    read_population,
    resolve_source,
)
from personagen.census.read import RawPopulation, SampledPopulation, read_raw, read_sample
from personagen.census.sample import distinct_draws_ok, sample_indices

__all__ = [
    "RawPopulation", "SampledPopulation", "check_same_states", "decode", "describe_library", "distinct_draws_ok",
    "load_population", "manifest_census",
    "plot_describe", "read_population", "read_raw", "read_sample", "resolve_source", "sample_indices", "sha256_file",
    "states", "unknown_codes",
]
