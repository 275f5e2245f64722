"""Big Five domain scores from IPIP 50-item Factor Marker responses (the Open Psychometrics IPIP-FFM layout).

The keying (item -> domain, sign) lives in census/priors/ipip_big5_keys.yaml. A respondent's domain score is
the mean of the domain's 10 keyed items on the 1-5 scale (reverse-keyed items scored 6 - x); respondents
with any missed (0), empty or out-of-range item of that domain get no score.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from personagen.errors import BadInput
from personagen.resources import census_dir

DOMAINS = ("E", "N", "A", "C", "O")


def keys_path() -> Path:
    """The shipped keying file (census/priors/ipip_big5_keys.yaml)."""
    return census_dir() / "priors" / "ipip_big5_keys.yaml"


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_keys(path: str | os.PathLike | None = None) -> dict:
    """The keying file as a dict: scale {min, max, missing}, domains {letter: name}, items {item: {domain, sign}}."""
    return _load(str(path or keys_path()))


def parse_domain(domain: str, keys: dict | None = None) -> str:
    """Domain letter from 'E'/'e'/'extraversion' (or 'ipip:E'); BadInput listing the choices otherwise."""
    keys = keys or load_keys()
    names = keys["domains"]
    d = str(domain).strip()
    if d.lower().startswith("ipip:"):
        d = d[5:]
    for letter, name in names.items():
        if d.upper() == letter or d.lower() == name:
            return letter
    choices = ", ".join(f"{k} ({v})" for k, v in names.items())
    raise BadInput(f"--ipip-domain {domain!r}: expected one of {choices}")


def domain_items(domain: str, keys: dict | None = None) -> dict[str, int]:
    """{item column: sign} of one domain, in item order."""
    keys = keys or load_keys()
    letter = parse_domain(domain, keys)
    return {k: int(v["sign"]) for k, v in keys["items"].items() if v["domain"] == letter}


def domain_score_expr(domain: str, keys: dict | None = None) -> pl.Expr:
    """Polars expression: the keyed item mean, null where any item of the domain is missed/invalid."""
    keys = keys or load_keys()
    lo, hi = keys["scale"]["min"], keys["scale"]["max"]
    items = domain_items(domain, keys)
    cols = {c: pl.col(c).cast(pl.Float64, strict=False) for c in items}
    valid = pl.all_horizontal([x.is_between(lo, hi) for x in cols.values()]).fill_null(False)
    keyed = [(lo + hi - x) if items[c] < 0 else x for c, x in cols.items()]
    return pl.when(valid).then(pl.mean_horizontal(keyed)).otherwise(None)


def score_domain(df: pl.DataFrame, domain: str, keys: dict | None = None) -> pl.Series:
    """Per-row domain score (Float64, null for respondents with a missed item); BadInput if items are absent."""
    keys = keys or load_keys()
    letter = parse_domain(domain, keys)
    missing = [c for c in domain_items(letter, keys) if c not in df.columns]
    if missing:
        raise BadInput(f"IPIP domain {letter}: target table lacks item columns {', '.join(missing)}")
    return df.select(domain_score_expr(letter, keys).alias(f"ipip_{letter}")).to_series()


def score_all(df: pl.DataFrame, keys: dict | None = None) -> pl.DataFrame:
    """All five domain scores as columns ipip_E … ipip_O."""
    keys = keys or load_keys()
    return df.select([domain_score_expr(d, keys).alias(f"ipip_{d}") for d in keys["domains"]])
