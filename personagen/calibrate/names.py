"""The calibration vocabulary, owned here once: estimator, pull and base names (the CLI choices read these)."""

METHODS = ("simplex", "sparse", "p2p-lasso", "p2p-enet", "rake")
PULLS = ("l2", "kl")
BASES = ("uniform", "census")
