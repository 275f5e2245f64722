"""endow stage."""
