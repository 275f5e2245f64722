"""Progress for long runs: counts, rate and time left at least every PERSONAGEN_PROGRESS_S seconds (default 10),
on a terminal (a tqdm bar, redrawn by a timer even while no call returns) and off it (logs, pipes, CI: one plain
line per interval and a final line), so a long quiet step is never silent.

Lines off a terminal read `DESC: done/total UNIT (pct), rate UNIT/s, elapsed, ~left left[, note]`. The interval is
counted across all bars of the process: a run made of many short batches (endow, prefs) still prints a line
every interval while any bar is open.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

DEFAULT_INTERVAL_S = 10.0
# Shared by all bars of the process: when a line was last printed, and when a bar last printed or closed. A bar
# opened within an interval of the last activity continues the same run (its first line comes an interval
# after the previous line); one opened later starts a new quiet interval.
_clock_state = {"line": time.monotonic(), "active": time.monotonic()}


def progress_interval(default: float | None = None) -> float:
    """Seconds between progress lines: PERSONAGEN_PROGRESS_S, else `default`, else 10."""
    env = os.environ.get("PERSONAGEN_PROGRESS_S", "").strip()
    try:
        v = float(env) if env else (default or DEFAULT_INTERVAL_S)
    except ValueError:
        return DEFAULT_INTERVAL_S
    return v if v > 0 else DEFAULT_INTERVAL_S


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else (
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class LineProgress:
    """tqdm-like `update`/`close` (also a context manager) writing one line per interval from a timer thread,
    whether or not an update came in meanwhile; `note` (e.g. the last loss) is appended to each line."""

    def __init__(self, total: int, desc: str, unit: str = "req", file: TextIO | None = None,
                 interval_s: float | None = None, initial: int = 0):
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file or sys.stderr
        self.interval = progress_interval(interval_s)
        self.n = self.initial = initial  # a resumed run: the rate counts this process's work only
        self.note = ""
        self.printed = False
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.t0 - _clock_state["active"] > self.interval:
            _clock_state["line"] = self.t0
        self._timer = threading.Thread(target=self._tick, name=f"progress:{desc}", daemon=True)
        self._timer.start()

    def line(self) -> str:
        el = time.monotonic() - self.t0
        pct = f" ({self.n / self.total:.0%})" if self.total else ""
        rate = (self.n - self.initial) / el if el > 0 else 0.0
        left = (f"~{_clock((self.total - self.n) / rate)} left" if rate > 0 and self.total
                else "time left unknown")
        note = f", {self.note}" if self.note else ""
        return (f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}, {rate:.3g} {self.unit}/s, "
                f"{_clock(el)} elapsed, {left}{note}")

    def _emit(self) -> None:
        with self._lock:
            print(self.line(), file=self.file, flush=True)
            self.printed = True
            _clock_state["line"] = _clock_state["active"] = time.monotonic()

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 4)):
            if time.monotonic() - _clock_state["line"] >= self.interval:
                self._emit()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n

    def set_note(self, note: str) -> None:
        self.note = note

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._timer.join(timeout=2)
        if self.n > self.initial and (self.printed or time.monotonic() - self.t0 >= self.interval):  # short runs stay quiet
            self._emit()
        _clock_state["active"] = time.monotonic()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TickingBar:
    """A tqdm bar on a terminal that a timer redraws every interval, so rate and time left stay current while
    a slow call is out (tqdm itself redraws only when an update comes in)."""

    def __init__(self, bar: Any, interval: float):
        self.bar = bar
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick, args=(interval,), daemon=True)
        self._timer.start()

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.bar.refresh()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_note(self, note: str) -> None:
        self.bar.set_postfix_str(note, refresh=False)

    def close(self) -> None:
        self._stop.set()
        self.bar.close()

    def __enter__(self) -> _TickingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent:
    def update(self, n: int = 1) -> None: ...
    def set_note(self, note: str) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> _Silent:
        return self
    def __exit__(self, *exc: object) -> None: ...


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "req", initial: int = 0) -> Any:
    """A ticking tqdm bar when stderr is a terminal, LineProgress when it is not, a silent one when disabled.
    Each has `update(n)`, `set_note(text)`, `close()` and works as a context manager."""
    if not enabled:
        return _Silent()
    if not sys.stderr.isatty():
        return LineProgress(total, desc, unit, initial=initial)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
               initial=initial)
    return _TickingBar(bar, progress_interval())


__all__ = ["progress_bar", "LineProgress", "progress_interval"]
