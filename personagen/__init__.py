"""personagen: census-grounded synthetic persona panels for LLM survey simulation.

The face names (`Library`, `build`, `load_panel`, `surveys`) are imported on first use, so that
`import personagen.cli` (hence `personagen --help`) does not pay for polars, numpy or the stages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from personagen._version import __version__
from personagen.errors import BadInput, PersonagenError

if TYPE_CHECKING:
    from personagen import surveys
    from personagen.api import Library, build, load_panel, pull
    from personagen.calibrate import CalibrateOptions, DescribeOptions, EstimateOptions, plot_estimate
    from personagen.elicit import ElicitOptions
    from personagen.publish import PublishOptions, PullOptions

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "Library": ("personagen.api", "Library"),
    "build": ("personagen.api", "build"),
    "load_panel": ("personagen.api", "load_panel"),
    "surveys": ("personagen.surveys", None),
    "pull": ("personagen.api", "pull"),
    "ElicitOptions": ("personagen.elicit", "ElicitOptions"),
    "CalibrateOptions": ("personagen.calibrate", "CalibrateOptions"),
    "EstimateOptions": ("personagen.calibrate", "EstimateOptions"),
    "DescribeOptions": ("personagen.calibrate", "DescribeOptions"),
    "PublishOptions": ("personagen.publish", "PublishOptions"),
    "PullOptions": ("personagen.publish", "PullOptions"),
    "plot_estimate": ("personagen.calibrate", "plot_estimate"),
}  # the options objects are the verbs' arguments (docs/design.md §4)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'personagen' has no attribute {name!r}")
    mod, attr = _LAZY[name]
    value = importlib.import_module(mod) if attr is None else getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


__all__ = ["__version__", "Library", "BadInput", "PersonagenError", "build", "load_panel", "surveys", "pull",
           "ElicitOptions", "CalibrateOptions", "EstimateOptions", "DescribeOptions", "PublishOptions", "PullOptions",
           "plot_estimate"]
