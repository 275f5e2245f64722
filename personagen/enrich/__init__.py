"""enrich stage: open-ended, judge-filtered traits for census personas (PERSONA-style), and a near-duplicate report.

The face: `enrich_library` (EnrichOptions in, the report out) and the category names and checks around it.
"""

from personagen.enrich.dedup import jaccard, library_duplicates, minhash_signatures, near_duplicates, shingles
from personagen.enrich.traits import (
    CATEGORIES,
    DEFAULT_CATEGORIES,
    EnrichOptions,
    enrich_frame,
    enrich_library,
    parse_verdict,
)

__all__ = ["CATEGORIES", "DEFAULT_CATEGORIES", "EnrichOptions", "enrich_frame", "enrich_library", "jaccard",
           "library_duplicates", "minhash_signatures", "near_duplicates", "parse_verdict", "shingles"]
