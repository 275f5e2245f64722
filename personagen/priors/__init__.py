"""priors stage."""
