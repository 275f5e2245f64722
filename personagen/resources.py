"""Locate the shipped data folders (templates/, census/, datasets/) in a checkout or an installed wheel, and the
user's cache folder (downloaded census files, float copies of GGUF models)."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent
ENV_CACHE = "PERSONAGEN_CACHE"


def resource_dir(name: str) -> Path:
    """Return the folder `name` (templates | census | datasets): wheel copy first, then the source checkout."""
    for cand in (_PKG / "_data" / name, _PKG.parent / name):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"personagen resource folder '{name}' not found (broken install?)")


def templates_dir() -> Path:
    return resource_dir("templates")


def census_dir() -> Path:
    return resource_dir("census")


def datasets_dir() -> Path:
    return resource_dir("datasets")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The personagen cache folder (argument, $PERSONAGEN_CACHE, $XDG_CACHE_HOME/personagen, ~/.cache/personagen)."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "personagen"
