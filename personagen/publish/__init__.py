"""publish stage: export a library + calibration as a Hub dataset, push it, pull it back, sample a panel."""

from __future__ import annotations

from personagen.publish.export import PublishOptions, export_panel, survey_licence, validate_repo_id
from personagen.publish.hub import publish_panel
from personagen.publish.pull import PullOptions, load_panel, pull_panel, sample_panel

__all__ = ["export_panel", "publish_panel", "pull_panel", "load_panel", "sample_panel", "survey_licence",
           "validate_repo_id", "PublishOptions", "PullOptions"]
