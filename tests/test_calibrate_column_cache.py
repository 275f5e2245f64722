"""The bounded Gram-column cache (calibrate/column_cache.py) against X[:, P]ᵀ X[:, P] by numpy, and its memory rules
(the cap from `cache_mb`, geometric growth, compaction to the current support) counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from personagen.calibrate.column_cache import ColumnCache


class _Cols:
    """X's columns, gathered as the cache asks (a copy), with a log of the agents asked for."""

    def __init__(self, X: np.ndarray) -> None:
        self.X, self.asked = X, []

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        self.asked.append(np.asarray(idx).tolist())
        return self.X[:, idx].copy()

    def take(self) -> list[int]:
        """Every agent gathered since the last call, in order."""
        out = [a for call in self.asked for a in call]
        self.asked = []
        return out


def _cache(n: int, m: int, cap: int, seed: int = 0) -> tuple[ColumnCache, _Cols, np.ndarray]:
    """A cache whose `cache_mb` holds exactly `cap` agents: cap² Gram entries plus m·cap column entries, 8 bytes each."""
    X = np.random.default_rng(seed).standard_normal((m, n))
    cols = _Cols(X)
    return ColumnCache(n, m, (cap * cap + m * cap) * 8 / 2**20, cols), cols, X


def _gram(X: np.ndarray, P: np.ndarray, Q: np.ndarray | None = None) -> np.ndarray:
    return X[:, P].T @ X[:, P if Q is None else Q]


def test_cap_solves_the_memory_budget_by_hand():
    # m = 50 rows, 15,000 words: c² + 50c = 15,000 has the root c = (−50 + √(2,500 + 60,000))/2 = (−50 + 250)/2 = 100
    assert ColumnCache(1000, 50, 15_000 * 8 / 2**20, _Cols(np.zeros((50, 1000)))).cap_max == 100
    # 1 MB = 131,072 words at m = 200: (−200 + √(40,000 + 524,288))/2 = 275.6… → 275
    assert ColumnCache(1000, 200, 1.0, _Cols(np.zeros((200, 1000)))).cap_max == 275
    assert ColumnCache(80, 50, 15_000 * 8 / 2**20, _Cols(np.zeros((50, 80)))).cap_max == 80  # no more than n agents
    assert ColumnCache(1000, 50, 0.0, _Cols(np.zeros((50, 1000)))).cap_max == 16  # the floor of 16 agents
    assert ColumnCache(10, 50, 0.0, _Cols(np.zeros((50, 10)))).cap_max == 10


def test_blocks_are_gathered_once_and_grow_geometrically():
    cache, cols, X = _cache(400, 30, 300)
    P = np.array([7, 0, 3, 12, 5, 9, 1, 2, 30, 11])
    assert np.allclose(cache.block(P), _gram(X, P), rtol=1e-13, atol=1e-12)
    assert sorted(cols.take()) == sorted(P.tolist())
    assert cache._cap == 64  # the first allocation: 64 agents (private: the memory rule, no answer depends on it)
    assert np.allclose(cache.block(P[::-1]), _gram(X, P[::-1]), rtol=1e-13, atol=1e-12)
    assert cols.take() == []  # every agent of P cached, agent 0 (slot 1) and agent 7 (slot 0) included
    Q = np.arange(31, 85)  # 54 new agents: 10 + 54 = 64 fills the first allocation exactly
    assert np.allclose(cache.block(Q), _gram(X, Q), rtol=1e-13, atol=1e-12)
    assert cache._cap == 64 and cols.take() == Q.tolist()
    R = np.arange(100, 201)  # 101 more: 165 > 2·64, so the cache grows to the need, 165
    assert np.allclose(cache.block(np.concatenate([P, R])), _gram(X, np.concatenate([P, R])), rtol=1e-13,
                       atol=1e-12)
    assert cache._cap == 165 and sorted(cols.take()) == R.tolist()
    S = np.arange(250, 260)  # 10 more: doubling (330) capped at 300
    cache.block(S)
    assert cache._cap == 300
    both = np.concatenate([P, Q[:3], R[-4:], S])
    assert np.allclose(cache.block(both), _gram(X, both), rtol=1e-13, atol=1e-12)
    assert cols.take() == S.tolist()  # S gathered once, by the first block


def test_full_cache_compacts_to_the_current_support():
    cache, cols, X = _cache(100, 20, 40, seed=1)
    A = np.arange(0, 30)
    cache.block(A)
    assert cols.take() == A.tolist()
    B = np.arange(25, 40)  # 10 new: 40 agents, exactly the cap: nothing evicted
    cache.block(B)
    assert cache._cap == 40 and sorted(cols.take()) == list(range(30, 40))
    cache.block(A)
    assert cols.take() == []
    C = np.concatenate([[0, 1], np.arange(35, 40), np.arange(60, 70)])  # 10 new: 50 > 40, keep only C's 7 cached
    assert np.allclose(cache.block(C), _gram(X, C), rtol=1e-13, atol=1e-12)
    assert cols.take() == list(range(60, 70))
    assert np.allclose(cache.block(C[::-1]), _gram(X, C[::-1]), rtol=1e-13, atol=1e-12)
    assert np.allclose(cache.cross(C[:4], C[-5:]), _gram(X, C[:4], C[-5:]), rtol=1e-13, atol=1e-12)
    assert cols.take() == []  # C's agents survived the compaction, agent 0 (slot 0 before and after) included
    w = np.zeros(100)
    w[C] = np.linspace(0.1, 1.0, len(C))
    assert np.allclose(cache.answers(w, C), X[:, C] @ w[C], rtol=1e-13, atol=1e-12)
    assert cache.answers(w, np.array([2, 3])) is None  # evicted agents: not cached any more
    D = np.arange(2, 12)
    assert np.allclose(cache.block(D), _gram(X, D), rtol=1e-13, atol=1e-12)
    assert cols.take() == D.tolist()  # 17 + 10 fits: no compaction, the evicted agents gathered again
    E = np.concatenate([[0], np.arange(70, 95)])  # 25 new on 27 cached: compacted to agent 0, then 26 agents
    assert np.allclose(cache.block(E), _gram(X, E), rtol=1e-13, atol=1e-12)
    assert cols.take() == list(range(70, 95))
    assert cache.answers(w, np.array([1])) is None and cache.answers(w, np.array([0])) is not None


def test_compaction_only_past_the_cap_and_growth_after_it():
    cache, cols, X = _cache(200, 20, 100, seed=2)
    cache.block(np.arange(0, 60))  # capacity 64
    cache.block(np.arange(60, 100))  # 60 + 40 = 100, exactly the cap: grown to 100, nothing evicted
    assert cache._cap == 100 and sorted(cols.take()) == list(range(0, 100))
    cache.block(np.arange(0, 60))
    assert cols.take() == []

    cache, cols, X = _cache(200, 20, 100, seed=2)
    cache.block(np.arange(0, 60))
    cols.take()
    P = np.concatenate([np.arange(0, 20), np.arange(100, 160)])  # 60 + 60 > 100: keep 20, then 20 + 60 > 64: grow
    assert np.allclose(cache.block(P), _gram(X, P), rtol=1e-13, atol=1e-12)
    assert cache._cap == 100 and cols.take() == list(range(100, 160))

    cache, cols, X = _cache(200, 20, 100, seed=2)
    cache.block(np.arange(0, 60))
    cols.take()
    P = np.concatenate([np.arange(0, 4), np.arange(100, 160)])  # 60 + 60 > 100: keep 4, and 4 + 60 = 64 fits
    assert np.allclose(cache.block(P), _gram(X, P), rtol=1e-13, atol=1e-12)
    assert cache._cap == 64 and cols.take() == list(range(100, 160))


def test_supports_beyond_the_cap_are_formed_uncached():
    cache, cols, X = _cache(100, 20, 30, seed=3)
    P = np.arange(0, 31)
    assert np.allclose(cache.block(P), _gram(X, P), rtol=1e-13, atol=1e-12)
    assert cache.block(P).shape == (31, 31) and cols.take() == P.tolist() * 2  # gathered again each time
    assert cache.cross(P[:20], P[20:]) is None
    w = np.ones(100)
    assert cache.answers(w, P) is None
    Q = np.arange(0, 30)  # exactly the cap: cached
    assert np.allclose(cache.block(Q), _gram(X, Q), rtol=1e-13, atol=1e-12)
    cols.take()
    assert np.allclose(cache.cross(Q[:10], Q[10:]), _gram(X, Q[:10], Q[10:]), rtol=1e-13, atol=1e-12)
    assert np.allclose(cache.answers(w, Q), X[:, Q].sum(axis=1), rtol=1e-13, atol=1e-12)
    assert cols.take() == []
    assert cache.answers(w, np.array([], dtype=np.int64)) is None


@pytest.mark.parametrize("n,m", [(50, 8), (300, 120)])
def test_random_supports_match_numpy(n: int, m: int):
    """A walk of overlapping supports through a small cache: every block and cross product as numpy forms it."""
    rng = np.random.default_rng(n)
    cache, _, X = _cache(n, m, 24)
    for _ in range(40):
        P = rng.choice(n, int(rng.integers(1, 20)), replace=False)
        assert np.allclose(cache.block(P), _gram(X, P), rtol=1e-12, atol=1e-11)
        Q = rng.choice(np.setdiff1d(np.arange(n), P), int(rng.integers(1, 6)), replace=False)
        got = cache.cross(P, Q)
        if len(P) + len(Q) <= 24:
            assert np.allclose(got, _gram(X, P, Q), rtol=1e-12, atol=1e-11)
        else:
            assert got is None
