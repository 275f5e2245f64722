"""Re-estimate census/priors/big_five.yaml from the SAPA spi data (psychTools 2.5.3).

Run: `python -m personagen.priors.estimate_big_five [--data ../shared/data/sapa_psychtools] [--out FILE]`.

Method (why: the figures behind the Big Five draws must be reproducible and checkable):
- items: the 14 items per domain that `spi.keys` (psychTools) assigns to Agree/Consc/Neuro/Extra/Open, with its
  keying (a "-" prefix = reverse keyed, scored 7 - x on the 1-6 scale); `spi_dictionary.csv` has no keying
  column, so the keys are read from `original_rda/spi.keys.rda` by the tiny R-serialization reader below,
  and checked against the dictionary's B5 column;
- respondents aged 18+ with a recorded sex; a scale score is the mean of the keyed items answered (at least
  half of them, else missing);
- T-scores: 50 + 10 (raw - mean) / sd, mean and sd over all those respondents (the reference population), so
  age/sex cell differences show as T means away from 50;
- per age band x sex cell: T means and SDs, shrunk with `SD_PSEUDO_N` pseudo-respondents (means toward the
  same sex's all-age mean, SDs toward the pooled within-cell SD): the 65+ cells hold only 12-14 people and
  would otherwise give noisy extremes; big cells barely move. Raw figures are kept alongside;
- correlations: the pooled within-cell correlation (used for cell draws) and the total correlation (used,
  with mean 50 / SD 10, for rows without age or sex).
"""

from __future__ import annotations

import argparse
import bz2
import datetime as _dt
import gzip
import lzma
import struct
from pathlib import Path

import numpy as np

from personagen.resources import census_dir

DOMAINS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
SAPA_SCALE = {"openness": "Open", "conscientiousness": "Consc", "extraversion": "Extra",
              "agreeableness": "Agree", "neuroticism": "Neuro"}
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_EDGES = (25, 35, 45, 55, 65)  # band i holds ages in [edge[i-1], edge[i])
SEXES = ("male", "female")  # SAPA sex: 1 male, 2 female
SD_PSEUDO_N = 20


def default_data_dir() -> Path:
    """../shared/data/sapa_psychtools next to the repository checkout."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "sapa_psychtools"


# --- minimal reader for R's XDR serialization (enough for a named list of character vectors) -------------

class _RReader:
    def __init__(self, buf: bytes) -> None:
        self.b, self.i, self.refs = buf, 0, []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.b, self.i)
        self.i += 4
        return v

    def item(self) -> object:
        flags = self.int()
        typ, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if typ in (254, 242, 253, 251):  # NILVALUE, EMPTYENV, GLOBALENV, MISSINGARG
            return None
        if typ == 255:  # REFSXP
            idx = flags >> 8 or self.int()
            return self.refs[idx - 1]
        if typ == 1:  # SYMSXP
            sym = self.item()
            self.refs.append(sym)
            return sym
        if typ == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.b[self.i:self.i + n].decode("utf-8")
            self.i += n
            return s
        if typ == 2:  # LISTSXP (pairlist) -> list of (tag, value)
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            return [(tag, car)] + (cdr or [])
        if typ in (16, 19):  # STRSXP, VECSXP
            vals = [self.item() for _ in range(self.int())]
            if has_attr:
                attrs = dict(self.item())
                if "names" in attrs:
                    return dict(zip(attrs["names"], vals))
            return vals
        raise ValueError(f"unsupported R SEXP type {typ}")


def read_rda(path: Path) -> dict[str, object]:
    """Objects of an .rda file (bzip2/gzip/xz/plain, format RDX2/RDX3): {name: value}."""
    raw = Path(path).read_bytes()
    for dec in (bz2.decompress, gzip.decompress, lzma.decompress):
        try:
            raw = dec(raw)
            break
        except (OSError, ValueError, lzma.LZMAError):
            continue
    if raw[:5] not in (b"RDX2\n", b"RDX3\n") or raw[5:7] != b"X\n":
        raise ValueError(f"{path}: not an XDR .rda file")
    r = _RReader(raw)
    r.i = 7
    version = r.int()
    r.int(), r.int()
    if version == 3:
        r.i += r.int()  # native encoding name
    return dict(r.item())


# --- estimation -----------------------------------------------------------------------------------------

def scale_keys(data_dir: Path) -> dict[str, list[tuple[str, int]]]:
    """{domain: [(item, +1|-1), ...]} from spi.keys, cross-checked with spi_dictionary.csv's B5 column."""
    import polars as pl

    keys = read_rda(data_dir / "original_rda" / "spi.keys.rda")["spi.keys"]
    dic = pl.read_csv(data_dir / "spi_dictionary.csv")
    out = {}
    for dom, scale in SAPA_SCALE.items():
        items = [(k.lstrip("-"), -1 if k.startswith("-") else 1) for k in keys[scale]]
        in_dict = set(dic.filter(pl.col("B5") == scale)["item_id"].to_list())
        if {it for it, _ in items} != in_dict:
            raise ValueError(f"spi.keys[{scale}] and spi_dictionary.csv B5 disagree")
        out[dom] = items
    return out


def age_band_index(age: np.ndarray) -> np.ndarray:
    """Index into AGE_BANDS for ages 18+ (ages below 18 land in band 0)."""
    return np.searchsorted(np.asarray(AGE_EDGES), age, side="right")


def _raw_scores(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw domain scores (respondents × domains; keyed item means, at least half the items answered), age, sex."""
    import polars as pl

    keys = scale_keys(data_dir)
    df = pl.read_csv(data_dir / "spi.csv").filter((pl.col("age") >= 18) & pl.col("sex").is_in([1, 2]))
    raw = np.empty((df.height, len(DOMAINS)))
    for j, dom in enumerate(DOMAINS):
        cols = []
        for item, sign in keys[dom]:
            x = df[item].cast(pl.Float64).to_numpy()
            cols.append(x if sign > 0 else 7.0 - x)
        m = np.column_stack(cols)
        answered = (~np.isnan(m)).sum(axis=1)
        score = np.nanmean(np.where(answered[:, None] > 0, m, 0.0), axis=1)
        raw[:, j] = np.where(answered >= len(cols) / 2, score, np.nan)
    ok = ~np.isnan(raw).any(axis=1)
    raw = raw[ok]
    return raw, df["age"].to_numpy()[ok], df["sex"].to_numpy()[ok]


def estimate(data_dir: Path) -> dict:
    """Compute the YAML content (plain dict) from spi.csv."""
    raw, age, sex = _raw_scores(data_dir)
    mu, sd = raw.mean(axis=0), raw.std(axis=0, ddof=1)
    t = 50.0 + 10.0 * (raw - mu) / sd

    band = age_band_index(age)
    sexi = sex.astype(int) - 1
    resid = np.empty_like(t)
    cells = []
    for b in range(len(AGE_BANDS)):
        for s in range(len(SEXES)):
            sel = (band == b) & (sexi == s)
            resid[sel] = t[sel] - t[sel].mean(axis=0)
            cells.append((b, s, sel))
    df_within = len(t) - len(cells)
    pooled_cov = resid.T @ resid / df_within
    pooled_sd = np.sqrt(np.diag(pooled_cov))
    within_corr = pooled_cov / np.outer(pooled_sd, pooled_sd)
    total_corr = np.corrcoef(t, rowvar=False)

    def r3(a: np.ndarray) -> list[float]:
        return [round(float(v), 3) for v in a]

    sex_mean = [t[sexi == s].mean(axis=0) for s in range(len(SEXES))]
    cell_out = []
    for b, s, sel in cells:
        n = int(sel.sum())
        m_raw = t[sel].mean(axis=0)
        m = (n * m_raw + SD_PSEUDO_N * sex_mean[s]) / (n + SD_PSEUDO_N)
        var = t[sel].var(axis=0, ddof=1)
        sd_shrunk = np.sqrt(((n - 1) * var + SD_PSEUDO_N * pooled_sd**2) / (n - 1 + SD_PSEUDO_N))
        cell_out.append({"age_band": AGE_BANDS[b], "sex": SEXES[s], "n": n,
                         "mean": dict(zip(DOMAINS, r3(m))), "sd": dict(zip(DOMAINS, r3(sd_shrunk))),
                         "mean_raw": dict(zip(DOMAINS, r3(m_raw))),
                         "sd_raw": dict(zip(DOMAINS, r3(np.sqrt(var))))})
    return {
        "source": {
            "dataset": "SAPA Personality Inventory (spi), psychTools R package 2.5.3 (data spi, spi.keys)",
            "authors": "William Revelle and David Condon, SAPA Project (sapa-project.org), Northwestern University",
            "items": "IPIP / SAPA items, 14 per Big Five domain, keyed as in spi.keys (public domain items)",
            "license": "GPL (>= 2), the psychTools package license; only summary statistics are stored here",
            "n": int(len(t)),
            "sample": "spi respondents aged 18+ with recorded sex and at least half of each scale's items answered;"
                      " mostly US web respondents (unweighted, younger than the US population)",
            "computed": _dt.date.today().isoformat(),
            "script": "personagen/priors/estimate_big_five.py",
        },
        "scale": {
            "kind": "T-score: 50 + 10 (raw - mean) / sd against all respondents above (the reference population)",
            "raw_mean": dict(zip(DOMAINS, r3(mu))), "raw_sd": dict(zip(DOMAINS, r3(sd))),
            "raw_items": "mean of keyed items on a 1-6 scale (reverse-keyed items scored 7 - x)",
        },
        "levels": {"cuts": [35, 45, 55, 65],
                   "labels": ["very low", "low", "average", "high", "very high"],
                   "rule": "very low: T < 35; low: 35 <= T < 45; average: 45 <= T < 55; high: 55 <= T < 65;"
                           " very high: T >= 65"},
        "domains": list(DOMAINS),
        "age_bands": list(AGE_BANDS),
        "shrinkage": f"small cells are shrunk with {SD_PSEUDO_N} pseudo-respondents: cell mean = (n m + {SD_PSEUDO_N}"
                     f" sex_mean) / (n + {SD_PSEUDO_N}) with sex_mean the same sex over all ages; cell sd^2 = ((n-1)"
                     f" s^2 + {SD_PSEUDO_N} pooled_within_sd^2) / (n-1+{SD_PSEUDO_N}); mean_raw / sd_raw unshrunk."
                     " Draws use mean, sd and within_cell_correlation.",
        "overall": {"mean": dict.fromkeys(DOMAINS, 50.0), "sd": dict.fromkeys(DOMAINS, 10.0),
                    "correlation": [r3(row) for row in total_corr]},
        "within_cell_correlation": [r3(row) for row in within_corr],
        "cells": cell_out,
    }


def write_yaml(content: dict, out: Path) -> None:
    """Write the priors YAML with a comment header (the figures are facts; no respondent records)."""
    import yaml

    src = content["source"]
    header = (
        "# Big Five priors for personagen: T-score means/SDs by age band x sex and inter-domain correlations.\n"
        f"# Source: {src['dataset']}; {src['authors']}.\n"
        f"# n = {src['n']} respondents; computed {src['computed']} by {src['script']} (re-run to reproduce).\n"
        "# Summary statistics only; no individual responses are stored.\n"
    )
    class _Dumper(yaml.SafeDumper):
        pass

    def _numeric(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def _dict(d: yaml.SafeDumper, data: dict) -> yaml.Node:
        flow = all(_numeric(v) for v in data.values())
        return d.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)

    def _list(d: yaml.SafeDumper, data: list) -> yaml.Node:
        flow = all(_numeric(v) or isinstance(v, str) for v in data)
        return d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    _Dumper.add_representer(dict, _dict)
    _Dumper.add_representer(list, _list)
    body = yaml.dump(content, Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)
    Path(out).write_text(header + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """CLI entry: estimate from --data and write --out (default: the shipped census/priors/big_five.yaml)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out = args.out or census_dir() / "priors" / "big_five.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    content = estimate(args.data)
    write_yaml(content, out)
    print(f"wrote {out} (n={content['source']['n']})")


if __name__ == "__main__":
    main()
