"""elicit stage."""
