"""What an elicit run did: `ElicitSummary`, the result type of `elicit_library` / `Library.elicit`.

A run whose requests failed after retries still saves every finished answer (a rerun asks only the failed
ones), so the failures are counted, not raised one by one. A Python caller must not mistake such a run for a
complete one: `elicit_library` raises `ElicitFailed` (a runtime failure, exit 1 at the CLI) when any answer
failed, with the summary on the exception (`e.summary`) for whoever wants the partial run's figures. The CLI
prints that summary and exits 1, as it always has.

Reading it as a dict (`summary["answers_written"]`, the type it replaced) still works and warns
(DeprecationWarning): it costs one method, and notebooks written against the dict keep running.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

from personagen.errors import PersonagenError


@dataclass
class ElicitSummary:
    """One elicit run's figures. Counts are this run's (a reused client's earlier calls are not counted).

    answers_written / rows_written: answers (persona × question) and option rows appended; answers_skipped:
    already in the library; invalid: answers (sample mode: samples) matching no option; errors: answers whose
    requests failed after retries (first_error: the first message); requests_sent / cache_hits / tokens /
    cost_usd: what the model calls took; constraint: the answer constraint used (grammar, guided_choice,
    json_schema) or None; mass_quantiles: logprob answers' covered mass (p5, p25, median); answers_total /
    invalid_total / invalid_share: the library-wide counts of this survey, model and mode after the run.
    estimate: a dry run's cost estimate; prompts: --show-prompt's requests (nothing sent).
    """

    survey_id: str
    model: str | None = None
    backend: str | None = None
    mode: str | None = None
    style: str | None = None
    samples: int = 1
    personas: int = 0
    questions: int = 0
    answers_skipped: int = 0
    answers_todo: int = 0
    requests: int = 0
    requests_sent: int = 0
    cache_hits: int = 0
    answers_written: int = 0
    rows_written: int = 0
    invalid: int = 0
    errors: int = 0
    first_error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    http_requests: int = 0
    paid_calls: int = 0
    dry_run: bool = False
    estimate: Any = None
    seconds: float = 0.0
    rescored: int = 0
    constrain: str | None = None
    constraint: str | None = None
    constraint_note: str | None = None
    option_order: str | None = None
    position_bias: dict[str, Any] | None = None
    mass_quantiles: dict[str, float] | None = None
    answers_total: int | None = None
    invalid_total: int | None = None
    invalid_share: float | None = None
    engine: str | None = None
    show_prompt: int | None = None
    prompts: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        """True when no answer failed."""
        return not self.errors

    def raise_for_errors(self) -> ElicitSummary:
        """This summary, or ElicitFailed naming how many answers failed (finished answers are already saved)."""
        if self.errors:
            raise ElicitFailed(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The JSON object `elicit --json` prints."""
        return asdict(self)

    def __getitem__(self, key: str) -> Any:
        """Deprecated: `summary["answers_written"]` (the dict this type replaced) still reads."""
        warnings.warn(f"ElicitSummary[{key!r}] is deprecated: use the attribute summary.{key}",
                      DeprecationWarning, stacklevel=2)
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


class ElicitFailed(PersonagenError):
    """Some answers failed after retries (exit 1); `summary` holds the run's figures, finished answers are saved."""

    def __init__(self, summary: ElicitSummary):
        self.summary = summary
        super().__init__(f"{summary.errors} answer(s) failed after retries (first: {summary.first_error}); "
                         "finished answers are saved, rerun to retry them")


__all__ = ["ElicitFailed", "ElicitSummary"]
