"""census stage."""
