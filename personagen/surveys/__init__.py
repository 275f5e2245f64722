"""Surveys: schema (questions, options, ordinals, target distributions per group, splits) and loaders."""

from personagen.surveys.loaders import (
    FORMATS,
    import_generic,
    import_opinionqa,
    import_subpop,
    import_survey,
    import_wvs,
    opinionqa_respondents,
)
from personagen.surveys.schema import OVERALL, SPLITS, Question, Survey, assign_splits, kfold_groups, load

__all__ = [
    "FORMATS",
    "OVERALL",
    "SPLITS",
    "Question",
    "Survey",
    "assign_splits",
    "import_generic",
    "import_opinionqa",
    "import_subpop",
    "import_survey",
    "import_wvs",
    "kfold_groups",
    "load",
    "opinionqa_respondents",
]
