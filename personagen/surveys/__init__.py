"""Surveys: schema (questions, options, ordinals, target distributions per group, splits) and loaders."""

from personagen.surveys.schema import OVERALL, Question, Survey, assign_splits, kfold_groups, load

__all__ = ["OVERALL", "Question", "Survey", "assign_splits", "kfold_groups", "load"]
