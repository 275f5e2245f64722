"""surveys stage."""
