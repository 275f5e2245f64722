"""The Python API of docs/design.md §4: the verbs that sit above the stages.

`Library` here is the plain library directory (personagen.library) plus the verbs `elicit`, `calibrate`,
`estimate`, `describe` and `publish`; `build`, `pull` and `load_panel` are the package-level verbs. Each verb takes
its stage's options object (docs/design.md §4). Stages are imported inside the verbs, so importing the package
(and the CLI) stays cheap, and no stage ever imports this module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from personagen import library as _library

if TYPE_CHECKING:  # the stages are imported inside the verbs (a cheap `import personagen`)
    import polars as pl

    from personagen.calibrate import CalibrateOptions, Calibration, DescribeOptions, EstimateOptions
    from personagen.elicit import ElicitOptions, ElicitSummary
    from personagen.llm import LLMClient
    from personagen.publish import PublishOptions, PullOptions
    from personagen.surveys import Survey


class Library(_library.Library):
    """A persona library directory with its verbs (see docs/design.md §2 and §4).

    Each verb takes the stage's options object, the one the CLI builds and the manifest records:
    `lib.calibrate(survey, CalibrateOptions(method="sparse"))`; `help(CalibrateOptions)` lists its fields and an
    editor completes them. Keyword arguments in its place still work for one release (DeprecationWarning)."""

    def elicit(self, survey: Survey, options: ElicitOptions | None = None, *, client: LLMClient | None = None,
               **deprecated: Any) -> ElicitSummary:
        """Answer `survey` as every persona (personagen.elicit.elicit_library) -> ElicitSummary; raises
        ElicitFailed (the summary attached as `.summary`) when answers failed after retries.

        options: ElicitOptions (backend, model, mode, samples, limit, max_questions, ...; None: the bundled
        local model, logprobs); client: an open LLMClient to reuse (left open)."""
        from personagen.elicit import elicit_library

        return elicit_library(self, survey, options, client=client, **deprecated)

    def calibrate(self, survey: Survey | str | os.PathLike | None = None, options: CalibrateOptions | None = None,
                  **deprecated: Any) -> Calibration:
        """Fit persona weights to `survey` (personagen.calibrate.calibrate_library) -> Calibration.

        options: CalibrateOptions (method, group, census_margins, name, replicates, ...; None: simplex, CV)."""
        from personagen.calibrate import calibrate_library

        return calibrate_library(self, survey, options, **deprecated)

    def estimate(self, survey: Survey | str | os.PathLike, options: EstimateOptions | None = None,
                 **deprecated: Any) -> pl.DataFrame:
        """Weighted answer shares of the calibrated panel -> polars frame (qid, option, by, group, estimate, se,
        lo, hi, n, ess, target, error, split, plo, phi); personagen.calibrate.estimate_library has the details.

        options: EstimateOptions (calibration, by, questions, level, model, mode)."""
        from personagen.calibrate import estimate_library

        return estimate_library(self, survey, options, **deprecated).table

    def describe(self, options: DescribeOptions | None = None, **deprecated: Any) -> dict:
        """The weighted panel beside the pool and the census (personagen.calibrate.describe_calibration): per
        attribute shares, TVD/ASMD before and after weighting, Kish ESS, design effect.

        options: DescribeOptions (calibration, census)."""
        from personagen.calibrate import describe_calibration

        return describe_calibration(self, options, **deprecated)

    def publish(self, repo: str | None = None, options: PublishOptions | None = None, *,
                out: str | os.PathLike | None = None) -> dict:
        """Push the library and one calibration to the Hub dataset `repo` (ORG/NAME; token from $HF_TOKEN), or
        with `out` write the dataset folder there instead (personagen.publish) -> what was written.

        options: PublishOptions (calibration, templates, private, revision, commit_message, overwrite)."""
        from personagen.errors import BadInput
        from personagen.publish import export_panel, publish_panel

        if out is not None:
            return export_panel(self, out, options, repo=repo).to_dict()
        if repo is None:
            raise BadInput("repo: give the Hub dataset ORG/NAME to push to (or out=DIR for a local folder)",
                           field="repo")
        return publish_panel(self, repo, options)


def build(out: str | os.PathLike, census: str | None = None, n: int = 1000, seed: int = 0, **kw: Any) -> Library:
    """Build a persona library from PUMS (see personagen.pipeline.build_library) -> Library."""
    from personagen.pipeline import build_library

    lib = build_library(out=out, census=census, n=n, seed=seed, **kw)
    return Library(lib.path, lib.manifest)


def load_panel(repo_or_path: str, revision: str | None = None, **kw: Any) -> Any:
    """Load a published panel (Hub repo or local folder/library) as a polars frame with a weight column."""
    from personagen.publish import load_panel as _load_panel

    return _load_panel(repo_or_path, revision=revision, **kw)


def pull(repo_or_path: str | os.PathLike, out: str | os.PathLike | None = None,
         options: PullOptions | None = None) -> Library:
    """Download a published panel `ORG/NAME` (or read an exported folder) into a library at `out` (default:
    ./NAME) -> Library (personagen.publish.pull_panel). options: PullOptions (revision)."""
    from personagen.publish import pull_panel

    lib = pull_panel(repo_or_path, out, options)
    return Library(lib.path, lib.manifest)
