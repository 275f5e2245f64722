"""personagen: census-grounded synthetic persona panels for LLM survey simulation."""

from __future__ import annotations

from personagen import surveys
from personagen._version import __version__
from personagen.api import Library, build, load_panel
from personagen.errors import BadInput, PersonagenError

__all__ = ["__version__", "Library", "BadInput", "PersonagenError", "build", "load_panel", "surveys"]
