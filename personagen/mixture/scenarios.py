"""The social scenarios of the prompt-mixture paper (paper 001, §3.1): what D_obs is and how a sample is asked.

- **Big Five** (OCEAN Five Factor test, 19,719 subjects): one scenario per domain. A subject's score is the sum
  of the domain's 10 keyed IPIP items, on the paper's 10-50 scale (Table 2 reports means of 30-39 on it).
  GenerateSamples asks the model to take the domain's 10-item test (templates/mixture/big5_test.j2) and the
  answer's 10 ratings are keyed and summed the same way (reverse-keyed items scored 6 − x).
- **MobLab** (economic games, Mei et al. 2024): "first-round gameplay data" (§3.1), so rows with Round = 1;
  Dictator = the first mover's gift out of 100, Ultimatum Proposer = the offer, Ultimatum Responder = the
  minimum acceptable offer (strategy method). Trust, Public Goods and Bomb games are not in the local data.

Each scenario carries the paper's fixed system prompt (Appendix B.2), used both as GB's default prompt z0 and
as the "Fixed System Prompt" baseline.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from personagen import llm as llmio
from personagen.errors import BadInput
from personagen.infile import JSON_MAX_BYTES, regular_file
from personagen.llm import parse_number
from personagen.mixture import ipip

MOBLAB_GAMES = {"dictator": ("dictator.csv", "move", "first"), "proposer": ("ultimatum_strategy.csv", "propose", None),
                "responder": ("ultimatum_strategy.csv", "accept", None)}
_INT = re.compile(r"(?<![\d.])([1-5])(?!\d|\.\d)")


@dataclass(frozen=True)
class Scenario:
    """One social scenario s: its question, valid answer range, fixed prompt and (Big Five) keyed items."""

    name: str
    question: str
    lo: float
    hi: float
    fixed_prompt: str
    signs: tuple[int, ...] = ()

    def parse(self, text: str | None) -> float | None:
        """A sample's value: the keyed item sum (Big Five, needs 10 ratings 1-5) or the first number in range."""
        if not self.signs:
            return parse_number(text, lo=self.lo, hi=self.hi)
        got = [int(m) for m in _INT.findall(text or "")][: len(self.signs)]
        if len(got) < len(self.signs):
            return None
        return float(sum(x if s > 0 else 6 - x for x, s in zip(got, self.signs)))


def read_table(path: str | os.PathLike) -> pl.DataFrame:
    """A CSV/TSV (separator sniffed from the header line) or parquet file; BadInput naming the problem."""
    p = regular_file(path, "target file", JSON_MAX_BYTES)
    try:
        if p.suffix == ".parquet":
            return pl.read_parquet(p)
        with open(p, encoding="utf-8", errors="replace") as fh:
            head = fh.readline()
        sep = "\t" if head.count("\t") > head.count(",") else ","
        return pl.read_csv(p, separator=sep, infer_schema_length=10000, null_values=["", "NA", "N/A", "null"])
    except Exception as e:  # noqa: BLE001 - any decode failure is bad input
        raise BadInput(f"{p}: cannot read target table ({type(e).__name__})") from None


def big5_scenario(domain: str, templates: str | os.PathLike | None = None) -> Scenario:
    """The 10-item test of one Big Five domain, scored 10-50 (sum of keyed items)."""
    keys = ipip.load_keys()
    letter = ipip.parse_domain(domain, keys)
    items = [(k, v) for k, v in keys["items"].items() if v["domain"] == letter]
    q = llmio.prompt("mixture/big5_test.j2", templates, items=[v["text"] for _, v in items])
    return Scenario(f"big5:{letter}", q, 10.0, 50.0, llmio.prompt("mixture/big5_fixed_prompt.j2", templates), tuple(int(v["sign"]) for _, v in items))


def big5_observed(path: str | os.PathLike, domain: str) -> np.ndarray:
    """D_obs: the 10-50 sum scores of every subject who answered all 10 items of the domain."""
    df = read_table(path)
    s = ipip.score_domain(df, domain) * 10.0  # keyed item mean (1-5) × 10 items = keyed sum (10-50)
    return s.drop_nulls().to_numpy().astype(float)


def moblab_scenario(game: str, templates: str | os.PathLike | None = None) -> Scenario:
    if game not in MOBLAB_GAMES:
        raise BadInput(f"--game {game!r}: expected one of {', '.join(MOBLAB_GAMES)}")
    return Scenario(f"moblab:{game}", llmio.prompt(f"mixture/moblab_{game}.j2", templates), 0.0, 100.0,
                    llmio.prompt("mixture/moblab_fixed_prompt.j2", templates))


def moblab_observed(folder: str | os.PathLike, game: str) -> np.ndarray:
    """D_obs: first-round (Round = 1) decisions of the game's role, 0-100 of a 100 endowment.

    Games whose endowment (`Total`) is not 100 are other variants (a dictator splitting 10, 50, 1000 ...);
    keeping only Total = 100 gives the dictator 25.86 ± 21.86 (n = 13,232) against paper 001 Table 4's
    25.70 ± 21.73 (all totals: 21.50 ± 21.87, n = 16,270); the ultimatum files hold Total = 100 only."""
    if game not in MOBLAB_GAMES:
        raise BadInput(f"--game {game!r}: expected one of {', '.join(MOBLAB_GAMES)}")
    fname, col, role = MOBLAB_GAMES[game]
    p = Path(folder) / fname
    if not p.is_file():
        raise BadInput(f"{p}: MobLab file does not exist")
    df = pl.read_csv(p, infer_schema_length=10000)
    df = df.filter(pl.col("Round") == 1)
    if "Total" in df.columns:
        df = df.filter(pl.col("Total").cast(pl.Float64, strict=False) == 100)
    if role:
        df = df.filter(pl.col("Role") == role)
    v = df[col].cast(pl.Float64, strict=False).drop_nulls().to_numpy()
    return v[(v >= 0) & (v <= 100)].astype(float)
