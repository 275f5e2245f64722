"""personas stage: the persona table's schema (columns, dtypes, order) and the text renderers (Jinja styles).

The face: what the build pipeline and other stages use.
"""

from personagen.personas.render import STYLES, render_cost, render_personas
from personagen.personas.schema import PERSONA_SCHEMA, order_columns

__all__ = ["PERSONA_SCHEMA", "STYLES", "order_columns", "render_cost", "render_personas"]
