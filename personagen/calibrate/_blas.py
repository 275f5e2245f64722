"""Best-effort control of the bundled OpenBLAS thread pools (numpy's and scipy's).

Why: the many small Cholesky solves of the active-set method run 10–20× slower with a multi-threaded
OpenBLAS on a busy 2-core machine (thread hand-off dominates a 200×200 factorisation); large Gram
products still benefit from threads. No-op when the libraries cannot be found.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator

_LIBS: list[tuple[ctypes.CDLL, str, str]] | None = None


def _libs() -> list[tuple[ctypes.CDLL, str, str]]:
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
    """Temporarily limit OpenBLAS threads to n (restored on exit)."""
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
