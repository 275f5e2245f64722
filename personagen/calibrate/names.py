"""The calibration vocabulary, owned here once: estimator, pull, base and λ-search names (the CLI choices read these)."""

METHODS = ("simplex", "sparse", "p2p-lasso", "p2p-enet", "rake")
PULLS = ("l2", "kl")
BASES = ("uniform", "census")
SEARCHES = ("refine", "full")  # how CV walks the λ grid: coarse-to-fine (default grid) or every value
