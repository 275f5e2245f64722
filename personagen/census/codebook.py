"""Codebook facts (census/*.yaml): code -> label vocabularies per PUMS year, bands, rules, download manifest.

The YAML files in the top-level census/ folder are the single source of facts; this module only loads them
(once per process) and answers which vocabulary decodes which data year.
"""

from __future__ import annotations

import functools
from typing import Any

import yaml

from personagen.errors import BadInput
from personagen.resources import census_dir

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=16)
def load_yaml(name: str) -> dict[str, Any]:
    """Load census/<name> (cached: the codebooks are read once per process)."""
    path = census_dir() / name
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)


def attributes() -> dict[str, Any]:
    """census/attributes.yaml: columns read, decode map, age/income bands, insurance types, supported years."""
    return load_yaml("attributes.yaml")


def supported_years() -> list[int]:
    return sorted(int(y) for y in attributes()["years"])


def check_year(year: int | None, *, source: object = None) -> int:
    """Return `year` if a codebook vocabulary for it ships, else BadInput naming the supported years."""
    years = supported_years()
    where = f"{source}: " if source is not None else ""
    if year is None:
        raise BadInput(f"{where}cannot tell the PUMS year (SERIALNO has no year prefix); pass --year")
    if int(year) not in years:
        raise BadInput(f"{where}PUMS year {year} is not supported (codebooks ship for {', '.join(map(str, years))};"
                       " add census/codebook_<year>.yaml from that year's data dictionary)")
    return int(year)


def codebook(year: int) -> dict[str, dict[int, str | None]]:
    """{PUMS variable: {integer code: short label or None}} for the data year's vocabulary."""
    vintage = attributes()["years"][check_year(year)]
    data = load_yaml(f"codebook_{vintage}.yaml")
    return {var: spec["labels"] for var, spec in data["variables"].items()}


def ranges(year: int) -> dict[str, tuple[int, int]]:
    """{PUMS variable: (lowest, highest) value} of the data year's dictionary (codebook `ranges`)."""
    vintage = attributes()["years"][check_year(year)]
    return {var: (int(lo), int(hi)) for var, (lo, hi) in (load_yaml(f"codebook_{vintage}.yaml").get("ranges") or {}).items()}


def ranged_variables() -> list[str]:
    """Every variable some shipped codebook gives a value range for (read before the data year is known)."""
    return sorted({v for y in supported_years() for v in ranges(y)})


def rules() -> list[dict[str, Any]]:
    """Consistency rules (census/rules.yaml), in order."""
    return load_yaml("rules.yaml")["rules"]


def download_manifest() -> dict[str, Any]:
    return load_yaml("download.yaml")


def states() -> dict[str, dict[str, str]]:
    """{postal code: {fips, name}} from the download manifest."""
    return download_manifest()["states"]


def resolve_state(state: str | int) -> tuple[str, str, str]:
    """Return (postal, fips, name) for a postal code ("VT"), FIPS ("50"/50) or name; BadInput if unknown."""
    s = str(state).strip()
    table = states()
    if s.upper() in table:
        e = table[s.upper()]
        return s.upper(), e["fips"], e["name"]
    for ab, e in table.items():
        if (s.isdigit() and int(s) == int(e["fips"])) or s.lower() == e["name"].lower():
            return ab, e["fips"], e["name"]
    raise BadInput(f"--state {state}: unknown state (use a postal code such as VT, a FIPS code or a name)")
