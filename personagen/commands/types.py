"""Click parameter types that validate options at the edge, once: whole numbers and finite reals in a range,
safe names, plot files. A bad value is a usage error (exit 2, one line naming the option)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from personagen.errors import BadInput
from personagen.names import safe_name

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _bad(param: click.Parameter | None, value: Any, why: str) -> BadInput:
    """BadInput naming the option and the value given: '--per-call 0: must be ...'."""
    opt = max(param.opts, key=len) if param is not None and param.opts else "value"
    return BadInput(f"{opt} {value}: {why}")


class Count(click.ParamType):
    """A whole number in [lo, hi] ("1e11" or "2.5" are refused, not rounded)."""

    name = "integer"

    def __init__(self, lo: int = 1, hi: int | None = None):
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise _bad(param, value, "must be a whole number")
        try:
            v = int(str(value).strip())
        except ValueError:
            raise _bad(param, value, "must be a whole number") from None
        if v < self.lo or (self.hi is not None and v > self.hi):
            top = f"{self.hi:,}" if self.hi is not None else "∞"
            raise _bad(param, value, f"must be between {self.lo:,} and {top}")
        return v


class Real(click.ParamType):
    """A finite real number in [lo, hi] (open at lo when `lo_open`): NaN and infinities are refused."""

    name = "number"

    def __init__(self, lo: float | None = None, hi: float | None = None, lo_open: bool = False):
        self.lo, self.hi, self.lo_open = lo, hi, lo_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise _bad(param, value, "must be a number") from None
        if not math.isfinite(v):
            raise _bad(param, value, "must be a finite number")
        low_bad = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        if low_bad or (self.hi is not None and v > self.hi):
            lb = "(" if self.lo_open else "["
            raise _bad(param, value, f"must be in {lb}{self.lo if self.lo is not None else '-∞'}, "
                                     f"{self.hi if self.hi is not None else '∞'}]")
        return v


class Name(click.ParamType):
    """A name that becomes a path component (personagen.names.safe_name)."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        opt = max(param.opts, key=len) if param is not None and param.opts else "name"
        return safe_name(value, opt)


SEED = Count(0, 2**32 - 1)  # a random seed: numpy refuses negative ones, torch wants < 2**64


class PlotFile(click.ParamType):
    """An output image path ending in .png, .pdf or .svg."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        p = Path(value)
        if p.suffix.lower() not in PLOT_SUFFIXES:
            raise _bad(param, value, f"a plot file must end in {', '.join(PLOT_SUFFIXES)}")
        return str(value)


def check_range(value_range: tuple[float, float] | None, opt: str = "--range") -> None:
    """LO HI must be finite with LO < HI."""
    if value_range is None:
        return
    lo, hi = value_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise BadInput(f"{opt} {lo:g} {hi:g}: expected finite LO < HI")


__all__ = ["Count", "Real", "Name", "PlotFile", "SEED", "check_range"]
