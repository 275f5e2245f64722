"""Locate the shipped data folders (templates/, census/, datasets/) in a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


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
