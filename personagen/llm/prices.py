"""Token prices (USD per million tokens) from datasets/prices.yaml, extendable by a user YAML file."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from personagen.errors import BadInput
from personagen.resources import datasets_dir

PRICES_ENV = "PERSONAGEN_PRICES"
BATCH_DEFAULT = 0.5  # OpenAI's Batch API bills half the synchronous price


@dataclass(frozen=True)
class Price:
    """USD per million tokens; `batch` multiplies every price for requests sent through a provider batch API."""

    input: float
    cached_input: float
    output: float
    reasoning: float
    batch: float = BATCH_DEFAULT


def _read_table(path: Path) -> dict[str, Price]:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: price table does not exist") from None
    except yaml.YAMLError as e:
        raise BadInput(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    models = (raw or {}).get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        raise BadInput(f"{path}: price table needs a 'models' mapping")
    return {str(name): _price(str(path), name, p) for name, p in models.items()}


def _price(where: str, name: Any, p: Any) -> Price:
    """One model's Price: every figure a finite number >= 0 (a NaN, infinite or negative price would make
    every cost NaN or negative), BadInput naming the file and model otherwise."""
    if not isinstance(p, dict) or "input" not in p or "output" not in p:
        raise BadInput(f"{where}: models.{name} needs 'input' and 'output' (USD per million tokens)")
    try:
        inp, outp = float(p["input"]), float(p["output"])
        vals = (inp, float(p.get("cached_input", inp)), outp, float(p.get("reasoning", outp)),
                float(p.get("batch", BATCH_DEFAULT)))
    except (TypeError, ValueError):
        raise BadInput(f"{where}: models.{name} prices must be numbers") from None
    if not all(math.isfinite(v) and v >= 0 for v in vals):
        got = ", ".join(map(str, vals))
        raise BadInput(f"{where}: models.{name} prices must be finite numbers >= 0 (got {got})")
    return Price(*vals)


class PriceTable:
    """Model name -> Price by exact name, else longest matching prefix."""

    def __init__(self, table: dict[str, Price]):
        self.table = dict(table)

    @classmethod
    def load(cls, extra: str | os.PathLike | dict[str, Any] | None = None) -> PriceTable:
        """Shipped table, then $PERSONAGEN_PRICES, then `extra` (a path or a {"models": ...} dict) on top."""
        table = _read_table(datasets_dir() / "prices.yaml")
        env = os.environ.get(PRICES_ENV)
        if env:
            table.update(_read_table(Path(env)))
        if isinstance(extra, dict):
            table.update({str(k): _price("prices", k, v) for k, v in extra.get("models", extra).items()})
        elif extra is not None:
            table.update(_read_table(Path(extra)))
        return cls(table)

    def batch_prices(self) -> PriceTable:
        """The table at batch-API prices: every price times its model's `batch` multiplier."""
        return PriceTable({k: Price(p.input * p.batch, p.cached_input * p.batch, p.output * p.batch,
                                    p.reasoning * p.batch, 1.0) for k, p in self.table.items()})

    def lookup(self, model: str) -> Price | None:
        """The price of `model` (exact, else longest prefix), or None when unknown."""
        if model in self.table:
            return self.table[model]
        best = max((k for k in self.table if model.startswith(k)), key=len, default=None)
        return self.table[best] if best else None

    def cost(self, model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0,
             reasoning_tokens: int = 0) -> float:
        """USD for one call (reasoning tokens are part of output_tokens, as OpenAI reports them)."""
        p = self.lookup(model)
        if p is None:
            return 0.0
        cached = min(cached_tokens, input_tokens)
        reasoning = min(reasoning_tokens, output_tokens)
        return ((input_tokens - cached) * p.input + cached * p.cached_input
                + (output_tokens - reasoning) * p.output + reasoning * p.reasoning) / 1e6
