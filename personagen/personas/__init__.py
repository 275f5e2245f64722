"""personas stage: the persona table's schema (columns, dtypes, order), the text renderers (Jinja styles), the
phrase layer that turns decoded attributes into sentences, and the persona-text checker.

The face: what the build pipeline and other stages use.
"""

from personagen.personas.check import CheckOptions, CheckResult, check_personas
from personagen.personas.render import STYLES, render_cost, render_personas
from personagen.personas.schema import PERSONA_SCHEMA, order_columns, text_column

__all__ = ["PERSONA_SCHEMA", "STYLES", "CheckOptions", "CheckResult", "check_personas", "order_columns",
           "render_cost", "render_personas", "text_column"]
