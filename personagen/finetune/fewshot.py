"""Few-shot baseline (paper 003, appendix D, Fig. 15): for a test question and group, the k training
questions most similar to it by cosine similarity of text embeddings, with the group's distributions as JSON.

The paper embeds with OpenAI text-embedding-3-large; here, offline and dependency-free, a question is a
hashed TF-IDF vector of its words and word bigrams (2^18 buckets, crc32 hashing, smooth IDF over the training
questions, L2-normalised). A deliberate substitute: lexical, not semantic, similarity.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from personagen.finetune.data import Example
from personagen.finetune.steering import fewshot_prompt

DIM = 1 << 18
K_SHOTS = 5  # sec. 4.1: "the top five few-shot examples"
_WORD = re.compile(r"[a-z0-9']+")


def _features(text: str) -> list[int]:
    w = _WORD.findall(text.lower())
    grams = w + [f"{a} {b}" for a, b in zip(w, w[1:])]
    return [zlib.crc32(g.encode()) % DIM for g in grams]


class HashedTfidf:
    """Fit on a corpus; `embed` maps texts to L2-normalised sparse rows (dense numpy, one row per text)."""

    def __init__(self, corpus: Sequence[str]):
        df: dict[int, int] = {}
        for t in corpus:
            for f in set(_features(t)):
                df[f] = df.get(f, 0) + 1
        n = len(corpus)
        self.idf = {f: float(np.log((1 + n) / (1 + c)) + 1) for f, c in df.items()}
        self.default_idf = float(np.log(1 + n) + 1)

    def embed(self, texts: Sequence[str]) -> list[dict[int, float]]:
        out = []
        for t in texts:
            v: dict[int, float] = {}
            for f in _features(t):
                v[f] = v.get(f, 0.0) + self.idf.get(f, self.default_idf)
            norm = float(np.sqrt(sum(x * x for x in v.values()))) or 1.0
            out.append({f: x / norm for f, x in v.items()})
        return out


def _cos(a: dict[int, float], b: dict[int, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(f, 0.0) for f, x in a.items())


def nearest(query: dict[int, float], pool: Sequence[dict[int, float]], k: int = K_SHOTS) -> list[int]:
    """Indices of the k pool vectors most similar to the query, in *ascending* similarity (Fig. 15 order)."""
    sims = [_cos(query, v) for v in pool]
    top = sorted(range(len(pool)), key=lambda i: (-sims[i], i))[:k]
    return top[::-1]


def fewshot_prompts(tests: Sequence[Example], train: Sequence[Example], k: int = K_SHOTS) -> list[str]:
    """One few-shot prompt per test example; shots are training questions answered by the same group
    (by group label), fewer than k when the training surveys have fewer for that group."""
    by_group: dict[str, list[Example]] = {}
    for e in train:
        by_group.setdefault(e.group, []).append(e)
    model = HashedTfidf(list(dict.fromkeys(e.question for e in train)))
    vectors = {g: model.embed([e.question for e in exs]) for g, exs in by_group.items()}
    prompts = []
    for t in tests:
        exs = by_group.get(t.group, [])
        idx = nearest(model.embed([t.question])[0], vectors[t.group], k) if exs else []
        shots = [(exs[i].question, exs[i].options, exs[i].target) for i in idx]
        prompts.append(fewshot_prompt(t.attribute, t.group, shots, t.question, t.options))
    return prompts
