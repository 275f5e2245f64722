"""personagen: census-grounded synthetic persona panels for LLM survey simulation."""

from __future__ import annotations

__version__ = "0.1.0"

from personagen.errors import BadInput, PersonagenError  # noqa: E402
from personagen.library import Library  # noqa: E402

__all__ = ["__version__", "Library", "BadInput", "PersonagenError", "build", "load_panel", "surveys"]


def build(out: str, census: str | None = None, n: int = 1000, seed: int = 0, **kw):  # noqa: ANN201
    """Build a persona library from PUMS (see personagen.pipeline.build_library)."""
    from personagen.pipeline import build_library

    return build_library(out=out, census=census, n=n, seed=seed, **kw)


def load_panel(repo_or_path: str, revision: str | None = None, **kw):  # noqa: ANN201
    """Load a published panel (Hub repo or local folder/library) as a polars frame with a weight column."""
    from personagen.publish.pull import load_panel as _load_panel

    return _load_panel(repo_or_path, revision=revision, **kw)


from personagen import surveys  # noqa: E402,F401  (pg.surveys.load)
