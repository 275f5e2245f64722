"""The Python API of docs/design.md §4: the verbs that sit above the stages.

`Library` here is the plain library directory (personagen.library) plus the verbs `elicit` and `calibrate`;
`build` and `load_panel` are the package-level verbs. Stages are imported inside the verbs, so importing the
package (and the CLI) stays cheap, and no stage ever imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from personagen import library as _library


class Library(_library.Library):
    """A persona library directory with its verbs (see docs/design.md §2 and §4)."""

    def elicit(self, survey: Any, **kw: Any) -> dict:
        """Answer `survey` as every persona (personagen.elicit.elicit_library) -> run summary."""
        from personagen.elicit import elicit_library

        return elicit_library(self, survey, **kw)

    def calibrate(self, survey: Any = None, **kw: Any) -> Any:
        """Fit persona weights to `survey` (personagen.calibrate.calibrate_library) -> Calibration."""
        from personagen.calibrate import calibrate_library

        return calibrate_library(self, survey, **kw)

    def estimate(self, survey: Any, calibration: str | None = None, by: Sequence[str] | str = (),
                 questions: Sequence[str] | str | None = None, level: float = 0.95, model: str | None = None,
                 mode: str | None = None) -> Any:
        """Weighted answer shares of the calibrated panel -> polars frame (qid, option, by, group, estimate, se,
        lo, hi, n, ess, target, error, split, plo, phi); personagen.calibrate.estimate_library has the details."""
        from personagen.calibrate import EstimateOptions, estimate_library

        opts = EstimateOptions(calibration=calibration, by=by, questions=questions, level=level, model=model,
                               mode=mode)
        return estimate_library(self, survey, opts).table

    def describe(self, calibration: str | None = None, census: str | None = None) -> dict:
        """The weighted panel beside the pool and the census (personagen.calibrate.describe_calibration): per
        attribute shares, TVD/ASMD before and after weighting, Kish ESS, design effect."""
        from personagen.calibrate import describe_calibration

        return describe_calibration(self, calibration, census)


def build(out: str | os.PathLike, census: str | None = None, n: int = 1000, seed: int = 0, **kw: Any) -> Library:
    """Build a persona library from PUMS (see personagen.pipeline.build_library) -> Library."""
    from personagen.pipeline import build_library

    lib = build_library(out=out, census=census, n=n, seed=seed, **kw)
    return Library(lib.path, lib.manifest)


def load_panel(repo_or_path: str, revision: str | None = None, **kw: Any) -> Any:
    """Load a published panel (Hub repo or local folder/library) as a polars frame with a weight column."""
    from personagen.publish import load_panel as _load_panel

    return _load_panel(repo_or_path, revision=revision, **kw)
