"""Limit BLAS threads around the solver's many small factorisations.

Why: the active-set method's small Cholesky solves run 10–20× slower with a multi-threaded OpenBLAS on a
busy 2-core machine (thread hand-off dominates a 200×200 factorisation); large Gram products still
benefit from threads, so the limit is applied only around the solve loop. One threadpoolctl
`ThreadpoolController` is built on first use and kept: a fresh `threadpool_limits` rescans the loaded
libraries (~0.8 ms) on every call, `controller.limit` costs ~40 µs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from personagen.calibrate.tuning import TUNING

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


def big_threads(m: int) -> contextlib.AbstractContextManager:
    """Every BLAS thread for an O(m³) or O(m²·c) kernel step when m ≥ TUNING.big_rows (the solve loop runs with
    one: thread hand-off dominates small factorisations, not a 4000 × 4000 Cholesky or a wide rank-k update)."""
    return blas_threads(os.cpu_count() or 1) if m >= TUNING.big_rows else contextlib.nullcontext()


def pass_threads(size: int) -> contextlib.AbstractContextManager:
    """Every BLAS thread for a matrix–vector pass over a D of `size` entries ≥ TUNING.big_pass (memory-bound:
    two threads stream it ~25% faster on the 2-core machine); small passes stay on the solve loop's one thread."""
    return blas_threads(os.cpu_count() or 1) if size >= TUNING.big_pass else contextlib.nullcontext()


def all_threads(on: bool) -> contextlib.AbstractContextManager:
    """Every BLAS thread when `on`, else no change."""
    return blas_threads(os.cpu_count() or 1) if on else contextlib.nullcontext()


def times_cols(D: Any, W: Any) -> Any:
    """D @ W for a few columns W, computed as (Wᵀ Dᵀ)ᵀ; `tr_times_cols`: Dᵀ @ S as (Sᵀ D)ᵀ.

    Why: OpenBLAS runs a C-order D times a thin matrix slowly (issue 23, 5,000 × 20k times 5 columns, two threads:
    D @ W 76 ms, (WᵀDᵀ)ᵀ 53 ms; Dᵀ @ S 134 ms, (SᵀD)ᵀ 58 ms; one column as a matrix–vector product 27 ms)."""
    return (W.T @ D.T).T


def tr_times_cols(D: Any, S: Any) -> Any:
    """Dᵀ @ S for a few columns S, as (Sᵀ D)ᵀ (see `times_cols`)."""
    return (S.T @ D).T
