"""Best-effort control of the BLAS thread pools (numpy's and scipy's bundled OpenBLAS).

Why: the many small Cholesky solves of the active-set method run 10–20× slower with a multi-threaded
OpenBLAS on a busy 2-core machine (thread hand-off dominates a 200×200 factorisation); large Gram
products still benefit from threads.

Uses threadpoolctl, with one `ThreadpoolController` built on first use and kept: a fresh
`threadpool_limits(1, "blas")` rescans the loaded libraries on every call (~1 ms, and a CV fit makes a
hundred such calls), `controller.limit` costs ~40 µs. Without threadpoolctl, falls back to calling the
bundled OpenBLAS' own set/get functions through ctypes; a no-op when neither works.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator
from typing import Any

_CONTROLLER: Any = None
_LIBS: list[tuple[ctypes.CDLL, str, str]] | None = None


def _controller() -> Any:
    """The cached threadpoolctl controller, False when threadpoolctl is unavailable or fails."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            import numpy  # noqa: F401 - load the BLAS libraries before the controller scans for them
            import scipy.linalg  # noqa: F401
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        except Exception:  # noqa: BLE001 - purely an optimisation
            _CONTROLLER = False
    return _CONTROLLER


def _libs() -> list[tuple[ctypes.CDLL, str, str]]:
    """Fallback: the scipy-openblas set/get-threads symbols of numpy.libs / scipy.libs, via ctypes."""
    global _LIBS
    if _LIBS is not None:
        return _LIBS
    found: list[tuple[ctypes.CDLL, str, str]] = []
    try:
        import numpy
        import scipy

        for pkg in (numpy, scipy):
            libdir = os.path.join(os.path.dirname(os.path.dirname(pkg.__file__)), pkg.__name__ + ".libs")
            for path in glob.glob(os.path.join(libdir, "*openblas*.so*")):
                lib = ctypes.CDLL(path)
                for sfx in ("64_", ""):
                    s, g = f"scipy_openblas_set_num_threads{sfx}", f"scipy_openblas_get_num_threads{sfx}"
                    if hasattr(lib, s) and hasattr(lib, g):
                        found.append((lib, s, g))
                        break
    except Exception:  # noqa: BLE001 - purely an optimisation
        found = []
    _LIBS = found
    return found


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Temporarily limit BLAS threads to n (restored on exit)."""
    ctl = _controller()
    if ctl:
        with ctl.limit(limits=n, user_api="blas"):
            yield
        return
    libs = _libs()
    old = []
    for lib, s, g in libs:
        try:
            old.append(int(getattr(lib, g)()))
            getattr(lib, s)(ctypes.c_int(n))
        except Exception:  # noqa: BLE001
            old.append(-1)
    try:
        yield
    finally:
        for (lib, s, _), o in zip(libs, old):
            if o > 0:
                getattr(lib, s)(ctypes.c_int(o))
