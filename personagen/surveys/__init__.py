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
from personagen.surveys.refusals import is_non_substantive, is_refusal
from personagen.surveys.schema import (
    OVERALL,
    SPLITS,
    Question,
    QuestionRecord,
    Survey,
    assign_splits,
    kfold_groups,
    load,
)
from personagen.surveys.select import parse_qids, select_questions

__all__ = [
    "FORMATS",
    "OVERALL",
    "SPLITS",
    "Question",
    "QuestionRecord",
    "Survey",
    "assign_splits",
    "import_generic",
    "import_opinionqa",
    "import_subpop",
    "import_survey",
    "import_wvs",
    "is_non_substantive",
    "is_refusal",
    "kfold_groups",
    "load",
    "opinionqa_respondents",
    "parse_qids",
    "select_questions",
]
