"""Limit BLAS threads around the solver's many small factorisations.

Why: the active-set method's small Cholesky solves run 10–20× slower with a multi-threaded OpenBLAS on a
busy 2-core machine (thread hand-off dominates a 200×200 factorisation); large Gram products still
benefit from threads, so the limit is applied only around the solve loop. One threadpoolctl
`ThreadpoolController` is built on first use and kept: a fresh `threadpool_limits` rescans the loaded
libraries (~0.8 ms) on every call, `controller.limit` costs ~40 µs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_CONTROLLER: Any = None


def _controller() -> Any:
    """The cached threadpoolctl controller."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Temporarily limit BLAS threads to n (restored on exit)."""
    with _controller().limit(limits=n, user_api="blas"):
        yield
