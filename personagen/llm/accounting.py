"""The money rules of model calls, in one place: usage read and checked, what counts as paid, cost, budgets.

- Every HTTP request the client sends counts against `max_requests` (retries included); every HTTP 200 is a
  paid call (a provider bills it whether or not its body is usable).
- Usage is a finite whole number >= 0 per field; a response whose usage is unreadable is still paid: its
  tokens are then the request's projection (prompt estimate + max_tokens) and counted as estimated.
- Tokens are reserved (projected) before a request is sent and settled with the reported usage after, so the
  token budget is never exceeded by more than the requests already in flight when it was reached; the
  budget message says so. A wall-clock limit (`time_limit_s`) stops dispatching the same way.
Prices themselves are validated where they are read (personagen.llm.prices).
"""

from __future__ import annotations

import math
import time
from typing import Any

from personagen.llm.prices import PriceTable

USAGE_FIELDS = (("input", "prompt_tokens"), ("output", "completion_tokens"))
DETAIL_FIELDS = (("cached", "prompt_tokens_details", "cached_tokens"),
                 ("reasoning", "completion_tokens_details", "reasoning_tokens"))


def _count(v: Any) -> int:
    """A token count: a finite whole number >= 0 (None is 0); ValueError otherwise."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or v != int(v):
        raise ValueError(f"token count {v!r} is not a whole number >= 0")
    return int(v)


def read_usage(usage: Any) -> dict[str, int] | None:
    """{"input", "output", "cached", "reasoning"} tokens from a response's `usage`, or None when it is missing
    or unreadable (not a mapping; a count that is text, negative, fractional or not finite)."""
    if not isinstance(usage, dict):
        return None
    try:
        out = {name: _count(usage.get(key)) for name, key in USAGE_FIELDS}
        for name, outer, key in DETAIL_FIELDS:
            d = usage.get(outer)
            out[name] = _count(d.get(key)) if isinstance(d, dict) else 0
    except ValueError:
        return None
    return out


def projected_tokens(messages: list[dict], max_tokens: int) -> int:
    """Tokens a request may use: ~4 characters per token plus the chat template's per-message overhead, plus
    its max_tokens (what the token budget reserves before sending, and what an unreadable usage is taken as)."""
    prompt = sum(len(str(m.get("content") or "")) / 4.0 + 4 for m in messages).__ceil__() + 3
    return prompt + int(max_tokens)


class Ledger:
    """One client's accounting: `stats` (the counts a run reports), the request/token/time budgets, prices.

    `stats` keys: requests_sent (requests finished: answered or failed), http_requests (every HTTP request,
    retries included), paid_calls (HTTP 200s), usage_estimated (paid calls whose usage was unreadable),
    cache_hits, input_tokens, output_tokens, cost_usd, errors, invalid (paid answers that were unusable),
    retries, deduplicated, http_s."""

    def __init__(self, prices: PriceTable, model: str, max_requests: int | None = None,
                 max_tokens_budget: int | None = None, time_limit_s: float | None = None):
        self.prices = prices
        self.model = model
        self.max_requests = max_requests
        self.max_tokens_budget = max_tokens_budget
        self.time_limit_s = time_limit_s
        self.reserved_tokens = 0  # projected tokens of requests in flight
        self.slots_held = 0  # request-budget slots taken at dispatch whose HTTP request is not sent yet
        self.deadline: float | None = None
        self.stats: dict[str, Any] = {"requests_sent": 0, "cache_hits": 0, "input_tokens": 0, "output_tokens": 0,
                                      "cost_usd": 0.0, "errors": 0, "retries": 0, "deduplicated": 0,
                                      "http_s": 0.0, "http_requests": 0, "paid_calls": 0, "usage_estimated": 0,
                                      "invalid": 0}

    # ---- the clock --------------------------------------------------------------------------------------
    def start_clock(self) -> None:
        """Start the wall-clock limit (once: the first start of the client)."""
        if self.deadline is None and self.time_limit_s is not None:
            self.deadline = time.monotonic() + self.time_limit_s

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    # ---- budgets ----------------------------------------------------------------------------------------
    def tokens_used(self) -> int:
        return int(self.stats["input_tokens"] + self.stats["output_tokens"])

    def budget_reached(self) -> str | None:
        """Why no further request may be dispatched (request, token or time budget), or None: tokens used plus
        those reserved by requests in flight must stay below the token budget."""
        st = self.stats
        if self.max_requests is not None and st["http_requests"] + self.slots_held >= self.max_requests:
            return f"request budget reached ({self.max_requests} HTTP requests)"
        if self.max_tokens_budget is not None and \
                self.tokens_used() + self.reserved_tokens >= self.max_tokens_budget:
            return self.token_message()
        left = self.time_left()
        if left is not None and left <= 0:
            return f"time limit reached ({self.time_limit_s:g} s)"
        return None

    def token_message(self) -> str:
        used = self.tokens_used()
        over = f"; {used - self.max_tokens_budget} over, by requests already in flight" \
            if self.max_tokens_budget is not None and used > self.max_tokens_budget else ""
        return f"token budget reached ({used} of {self.max_tokens_budget} tokens used{over})"

    def hold_slot(self) -> None:
        """Hold one request-budget slot for a request about to be dispatched."""
        self.slots_held += 1

    def take_request(self, held: bool) -> bool:
        """Count one HTTP request against the budget: a slot held at dispatch, else a new one if any is left."""
        if held:
            self.slots_held -= 1
        elif self.max_requests is not None and self.stats["http_requests"] + self.slots_held >= self.max_requests:
            return False
        self.stats["http_requests"] += 1
        return True

    # ---- paying -----------------------------------------------------------------------------------------
    def cost(self, usage: dict[str, int]) -> float:
        return self.prices.cost(self.model, usage["input"], usage["output"], usage["cached"], usage["reasoning"])

    def settle(self, usage: dict[str, int] | None, projected: int) -> tuple[dict[str, int], float]:
        """A paid call's (usage, cost), added to the totals; unreadable usage is taken as `projected` output
        tokens (so a budget still counts it) and counted in usage_estimated."""
        st = self.stats
        st["paid_calls"] += 1
        if usage is None:
            st["usage_estimated"] += 1
            usage = {"input": 0, "output": int(projected), "cached": 0, "reasoning": 0, "estimated": 1}
        cost = self.cost(usage)
        st["input_tokens"] += usage["input"]
        st["output_tokens"] += usage["output"]
        st["cost_usd"] += cost
        return usage, cost

    def take_within_budget(self, todo: dict[str, Any], projected: dict[str, int]) -> tuple[dict[str, Any],
                                                                                         str | None]:
        """For engines that schedule a whole work list up front: the part of `todo` the request and token
        budgets allow (each request counted, its projected tokens reserved), and the budget message when some
        were held back."""
        kept: dict[str, Any] = {}
        reserved = 0
        for k, v in todo.items():
            if self.max_requests is not None and self.stats["http_requests"] >= self.max_requests:
                return kept, f"request budget reached ({self.max_requests} HTTP requests)"
            if self.max_tokens_budget is not None:
                if self.tokens_used() + reserved + projected[k] > self.max_tokens_budget:
                    return kept, self.token_message()
                reserved += projected[k]
            self.stats["http_requests"] += 1
            kept[k] = v
        return kept, None


__all__ = ["Ledger", "read_usage", "projected_tokens"]
