"""Progress for long runs: a tqdm bar on a terminal; otherwise (logs, pipes, CI) one plain line every
PERSONAGEN_PROGRESS_S seconds (default 30) and a final line, so a long quiet step is never silent."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

DEFAULT_INTERVAL_S = 30.0


class LineProgress:
    """tqdm-like `update`/`close` that writes 'DESC: done/total (pct), elapsed' lines at most every interval."""

    def __init__(self, total: int, desc: str, unit: str = "req", file: TextIO | None = None,
                 interval_s: float | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file or sys.stderr
        env = os.environ.get("PERSONAGEN_PROGRESS_S", "").strip()
        try:
            self.interval = float(env) if env else (interval_s or DEFAULT_INTERVAL_S)
        except ValueError:
            self.interval = DEFAULT_INTERVAL_S
        self.n = 0
        self.t0 = self.last = time.monotonic()

    def _line(self) -> None:
        pct = f" ({self.n / self.total:.0%})" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}, {time.monotonic() - self.t0:.0f}s",
              file=self.file, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line()

    def close(self) -> None:
        if self.n and time.monotonic() - self.t0 >= self.interval:  # runs shorter than one interval stay quiet
            self._line()


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "req") -> Any:
    """A tqdm bar when stderr is a terminal, LineProgress when it is not, a silent one when disabled."""
    from tqdm import tqdm

    if enabled and not sys.stderr.isatty():
        return LineProgress(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=not enabled,
                smoothing=0.1)


__all__ = ["progress_bar", "LineProgress"]
