"""Near-duplicate detection over persona texts: MinHash on word shingles with LSH banding (numpy only).

PERSONA (Castricato et al. 2024) filters its generated personas so the pool stays diverse; here the check is
a report: every pair of personas whose texts have (estimated) Jaccard similarity ≥ threshold over word
k-shingles. MinHash: for each of P universal hashes h_j(x) = (a_j·x + b_j) mod (2^31 − 1) the signature keeps
min over the shingles, and P(sig_j(A) = sig_j(B)) = J(A, B). LSH: signatures cut into b bands of r rows;
pairs sharing any whole band are candidates, then confirmed with the exact Jaccard of their shingle sets.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from personagen.errors import BadInput
from personagen.library import Library
from personagen.store import atomic_write_json

PRIME = (1 << 31) - 1


def shingles(text: str, k: int = 3) -> set[int]:
    """Hashed word k-shingles (lower-cased words); texts shorter than k words give one shingle."""
    words = re.findall(r"[a-z0-9']+", (text or "").lower())
    if not words:
        return set()
    if len(words) < k:
        return {zlib.crc32(" ".join(words).encode())}
    return {zlib.crc32(" ".join(words[i:i + k]).encode()) for i in range(len(words) - k + 1)}


def minhash_signatures(sets: Sequence[set[int]], num_perm: int = 128, seed: int = 0) -> np.ndarray:
    """(n × num_perm) uint64 MinHash signatures; an empty set gets the all-PRIME signature."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, PRIME, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, PRIME, size=num_perm, dtype=np.uint64)
    sig = np.full((len(sets), num_perm), PRIME, dtype=np.uint64)
    for i, s in enumerate(sets):
        if not s:
            continue
        x = np.fromiter(s, dtype=np.uint64, count=len(s)) % np.uint64(PRIME)
        hv = (x[:, None] * a[None, :] + b[None, :]) % np.uint64(PRIME)  # < 2^62, no overflow
        sig[i] = hv.min(axis=0)
    return sig


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_duplicates(texts: Sequence[str], ids: Sequence[str] | None = None, *, threshold: float = 0.8,
                    k: int = 3, num_perm: int = 128, bands: int = 32, seed: int = 0) -> dict:
    """Report pairs with Jaccard ≥ threshold: {"n", "threshold", "n_pairs", "n_personas_in_pairs", "pairs"}.

    Empty texts are skipped. Bands must divide num_perm; r = num_perm / bands rows per band (32 × 4 catches
    pairs with J ≥ 0.8 with probability > 0.9999).
    """
    if num_perm % bands:
        raise ValueError("bands must divide num_perm")
    ids = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    sets = [shingles(t, k) for t in texts]
    keep = [i for i, s in enumerate(sets) if s]
    sig = minhash_signatures([sets[i] for i in keep], num_perm, seed)
    r = num_perm // bands
    cands: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = np.ascontiguousarray(sig[:, band * r:(band + 1) * r])
        for row, key in enumerate(block):
            buckets[key.tobytes()].append(row)
        for rows in buckets.values():
            if len(rows) > 1:
                for x in range(len(rows)):
                    for y in range(x + 1, len(rows)):
                        cands.add((rows[x], rows[y]))
    pairs = []
    for x, y in sorted(cands):
        i, j = keep[x], keep[y]
        est = float((sig[x] == sig[y]).mean())
        exact = jaccard(sets[i], sets[j])
        if exact >= threshold:
            pairs.append({"a": ids[i], "b": ids[j], "jaccard": round(exact, 4), "jaccard_minhash": round(est, 4)})
    pairs.sort(key=lambda p: -p["jaccard"])
    members = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    return {"n": len(texts), "threshold": threshold, "shingle_words": k, "num_perm": num_perm,
            "n_pairs": len(pairs), "n_personas_in_pairs": len(members), "pairs": pairs}


def library_duplicates(lib: Library, *, column: str = "text_narrative", threshold: float = 0.8,
                       write: bool = True) -> dict:
    """Run `near_duplicates` over a library's personas (one text column); writes LIB/enrich/duplicates.json."""
    df = lib.personas()
    if column not in df.columns:
        raise BadInput(f"{lib.personas_path}: no column {column!r} to check for near-duplicates")
    texts = [t or "" for t in df[column].to_list()]
    rep = near_duplicates(texts, df["persona_id"].to_list(), threshold=threshold)
    rep["column"] = column
    if write:
        out = lib.path / "enrich"
        out.mkdir(exist_ok=True)
        atomic_write_json(out / "duplicates.json", rep)
    return rep
