"""PWGTP-proportional sampling: with replacement (inverse CDF) and without (Pareto πps)."""

from __future__ import annotations

import numpy as np
import pytest

from personagen.census.sample import inclusion_probabilities, sample_indices
from personagen.errors import BadInput


def test_with_replacement_is_seeded_and_proportional() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    a = sample_indices(w, 200_000, seed=7)
    assert np.array_equal(a, sample_indices(w, 200_000, seed=7))
    assert not np.array_equal(a, sample_indices(w, 200_000, seed=8))
    freq = np.bincount(a, minlength=5) / a.size
    assert np.allclose(freq, w / w.sum(), atol=0.005) and freq[4] == 0


def test_without_replacement_unique_and_pps() -> None:
    rng = np.random.default_rng(0)
    w = rng.integers(1, 100, size=30).astype(float)
    w[0] = 2000.0  # certainty unit
    n = 8
    lam = inclusion_probabilities(w, n)
    assert lam[0] == 1.0 and np.isclose(lam.sum(), n) and lam.max() <= 1.0
    counts = np.zeros(w.size)
    for s in range(3000):
        idx = sample_indices(w, n, seed=s, replace=False)
        assert len(set(idx.tolist())) == n
        counts[idx] += 1
    pi = counts / 3000
    assert pi[0] == 1.0
    assert np.abs(pi - lam).max() < 0.05  # Pareto πps: inclusion ≈ target λ


def test_sampling_bad_input() -> None:
    with pytest.raises(BadInput, match="-n 0"):
        sample_indices(np.ones(3), 0, seed=0)
    with pytest.raises(BadInput, match="needs n ≤ the 3 eligible"):
        sample_indices(np.ones(3), 4, seed=0, replace=False)
    with pytest.raises(BadInput, match="no census records"):
        sample_indices(np.ones(0), 4, seed=0)


def test_distinct_draws_only_while_self_weighting() -> None:
    from personagen.census.sample import distinct_draws_ok

    # weights 1,1,1,1,6 (Σ 10): n = 1 -> λ = (.1,.1,.1,.1,.6), no excess; n = 2 -> λ_5 = 1.2, excess 0.2 = 10 % of n
    w = np.array([1, 1, 1, 1, 6])
    assert distinct_draws_ok(w, 1) and not distinct_draws_ok(w, 2)
    assert distinct_draws_ok(w, 2, tol=0.1) and not distinct_draws_ok(w, 2, tol=0.09)
    assert not distinct_draws_ok(w, 6)  # more than the records
    assert distinct_draws_ok(np.ones(100), 100)  # equal weights: every record once, exactly self-weighting


@pytest.mark.parametrize("replace", [True, False])
def test_two_pass_sample_equals_sampling_the_whole_population(vt_pums, tmp_path, replace: bool) -> None:
    """read_sample (sampling columns first, then only the drawn rows) gives the draws of sampling read_raw's
    frame, with every column, also through a multi-member Census zip (the national csv_pus.zip layout)."""
    import zipfile

    import polars as pl

    from personagen.census import read_raw, read_sample

    raw = read_raw(vt_pums)
    idx = sample_indices(raw.df["PWGTP"].to_numpy(), 3000, 5, replace=replace)
    want = raw.df[idx]
    got = read_sample(vt_pums, 3000, 5, replace=replace)
    assert got.records_eligible == raw.df.height and got.records_read == raw.records_read
    assert got.rule_counts == raw.rule_counts and got.df.height == np.unique(idx).size
    assert got.df[got.draws].equals(want)
    # split the file in two members of a zip: row positions run on across members
    text = pl.read_csv(vt_pums, infer_schema=False)
    half = text.height // 2
    z = tmp_path / "csv_pus.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("psam_pusa.csv", text[:half].write_csv())
        zf.writestr("psam_pusb.csv", text[half:].write_csv())
    assert read_sample(z, 3000, 5, replace=replace).df[got.draws].equals(want)
