"""Enrich: trait generation + consistency judge with a scripted loopback model, and MinHash near-duplicates."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from enrich_helpers import census_library, scripted_client  # noqa: E402

from personagen import Library  # noqa: E402
from personagen.enrich import (  # noqa: E402  # noqa: E402
    enrich_library,
    jaccard,
    minhash_signatures,
    near_duplicates,
    parse_verdict,
    shingles,
)
from personagen.errors import BadInput  # noqa: E402


def test_parse_verdict() -> None:
    cats = ["ideology", "religion", "personal_time"]
    assert parse_verdict("CONSISTENT", cats) == ("consistent", None)
    assert parse_verdict("INCONSISTENT: religion", cats) == ("inconsistent", "religion")
    assert parse_verdict("  inconsistent - the personal time does not fit", cats) == ("inconsistent", "personal_time")
    assert parse_verdict("The traits contradict each other", cats) == ("inconsistent", None)
    assert parse_verdict("Yes", cats) == ("consistent", None)
    assert parse_verdict("banana", cats) == ("unparsed", None)
    assert parse_verdict(None, cats) == ("unparsed", None)


def _scripted_model() -> object:
    """Religion comes back empty for even seeds, then fine; the first two ideology requests (distinct seeds,
    in arrival order) are contradictory and rejected by the judge, their resamples (new seeds) are fine."""
    seen: dict[int, bool] = {}
    lock = threading.Lock()  # the server answers on several threads

    def reply(user: str, system: str, body: dict) -> str | None:
        seed = body.get("seed") or 0
        if "Check this person's profile" in user:
            return "INCONSISTENT: ideology" if "anarcho" in user else "CONSISTENT"
        if "Religion:" in user:
            return "" if seed % 2 == 0 and "p000" not in user else "Lapsed Catholic who goes at Christmas."
        if "Ideology:" in user:
            with lock:
                seen.setdefault(seed, True)
                first = len(seen) <= 2
            return "anarcho-monarchist" if "\"" not in user and first else "Pragmatic centrist."
        return "As an AI, I cannot"

    return reply


def test_enrich_scripted(tmp_path: Path) -> None:
    lib = census_library(tmp_path / "lib", n=3)
    with scripted_client(tmp_path, _scripted_model()) as (c, srv):
        rep = enrich_library(lib, client=c, categories=["ideology", "religion"], max_retries=2)
        assert srv.hits == c.stats["requests_sent"] > 0 and c.stats["errors"] == 0
        assert rep["llm"]["requests_sent"] == srv.hits and rep["model"] == "scripted"
        df = Library.open(lib.path).personas()
        assert df["enriched"].all()
        assert {"trait_ideology", "trait_religion", "enrich_consistent", "text_narrative_base"} <= set(df.columns)
        assert df["trait_ideology"].to_list() == ["Pragmatic centrist."] * 3
        assert all("Ideology: Pragmatic centrist." in t for t in df["text_narrative"].to_list())
        assert all(t.startswith(b) for t, b in zip(df["text_narrative"], df["text_narrative_base"]))
        pc = rep["per_category"]
        assert pc["ideology"]["by_rule"]["judge"] >= 1  # rejected by the judge, then resampled
        assert rep["judge"]["judge_rejections"] >= 1
        assert set(rep["rejections_by_rule"]) == {"empty", "refusal", "judge"}
        assert 0 <= pc["religion"]["rejection_rate"] <= 1
        assert (lib.path / "enrich" / "report.json").is_file() and (lib.path / "enrich" / "duplicates.json").is_file()
        assert rep["duplicates"]["n_pairs"] >= 0
        # already enriched personas are skipped unless --fresh; re-enriching does not append twice
        hits = srv.hits
        rep2 = enrich_library(lib, client=c, categories=["ideology"], max_retries=1)
        assert rep2["n_personas"] == 0 and srv.hits == hits  # nothing to do: no call
        enrich_library(lib, client=c, categories=["ideology"], max_retries=1, fresh=True, limit=1)
        assert c.stats["cache_hits"] >= 1  # the same first ideology request is answered from the cache
    df2 = Library.open(lib.path).personas()
    assert df2["text_narrative"][0].count("Ideology:") == 1


def test_enrich_garbage_never_crashes(tmp_path: Path) -> None:
    lib = census_library(tmp_path / "lib", n=2)
    with scripted_client(tmp_path, lambda u, s, b: None) as (c, srv):  # every call: HTTP 500
        rep = enrich_library(lib, client=c, categories=["quirks"], max_retries=2)
        assert rep["per_category"]["quirks"]["generated"] == 2 * 3  # first try + 2 retries each
        assert rep["per_category"]["quirks"]["rejection_rate"] == 1.0
        # 6 trait calls + 3 judge calls (first ask + 2 re-asks of an unparsed verdict), all failing;
        # each also retried once by the client
        assert c.stats["errors"] == 2 * 3 + 2 * 3 and srv.hits == 2 * (2 * 3 + 2 * 3)
        # the judge fails closed: unparsed verdicts are re-asked, then the profile is rejected and counted
        assert rep["judge"]["judge_unparsed"] == 2 * 3 and rep["judge"]["judge_unparsed_rejected"] == 2
        assert rep["inconsistent_after_retries"] == 2
    df = Library.open(lib.path).personas()
    assert df["trait_quirks"].is_null().all() and df["enriched"].all()
    assert not df["enrich_consistent"].any()
    with scripted_client(tmp_path, lambda u, s, b: "x") as (c, srv):
        with pytest.raises(BadInput, match="--categories"):
            enrich_library(lib, client=c, categories=["nope"], fresh=True)
    assert srv.hits == 0


def test_minhash_matches_jaccard() -> None:
    a = shingles("the cat sat on the mat and looked at the dog for a while")
    b = shingles("the cat sat on the mat and looked at the bird for a while")
    sig = minhash_signatures([a, b], num_perm=512, seed=1)
    est = float((sig[0] == sig[1]).mean())
    assert est == pytest.approx(jaccard(a, b), abs=0.08)
    assert shingles("") == set() and len(shingles("two words")) == 1


def test_near_duplicates_report() -> None:
    base = "You are a 45-year-old nurse in Vermont who loves hiking, reads mysteries and volunteers at church."
    texts = [base, base.replace("mysteries", "thrillers"), "Completely different person: a young welder from Texas.",
             base, ""]
    rep = near_duplicates(texts, ["a", "b", "c", "d", "e"], threshold=0.6)
    pairs = {(p["a"], p["b"]) for p in rep["pairs"]}
    assert ("a", "d") in pairs and ("a", "b") in pairs and not any("c" in p for p in pairs)
    assert rep["n_personas_in_pairs"] == 3
    assert rep["pairs"][0]["jaccard"] == 1.0
    json.dumps(rep)
    assert near_duplicates(texts, threshold=0.99)["n_pairs"] == 1


def test_dedup_standalone(tmp_path: Path) -> None:
    from personagen.enrich import library_duplicates

    lib = census_library(tmp_path / "lib", n=4)
    df = lib.personas().with_columns(pl.lit("same text for all of them here").alias("text_narrative"))
    lib.write_personas(df)
    rep = library_duplicates(lib, threshold=0.9)
    assert rep["n_pairs"] == 6


def test_unparsed_verdict_is_reasked_then_accepted_or_rejected(tmp_path: Path) -> None:
    """Fail closed: the first judge answer is garbage; a re-ask that answers CONSISTENT keeps the persona, one that
    stays garbage rejects it (counted)."""
    lib = census_library(tmp_path / "lib", n=2)

    def reply(user: str, system: str, body: dict) -> str:
        if "Check this person's profile" in user:
            if body.get("temperature") == 0.0:
                return "banana"
            return "CONSISTENT" if "man living" in user and "woman" not in user else "maybe?"
        return "Keeps a tidy garden."

    with scripted_client(tmp_path, reply) as (c, _srv):
        rep = enrich_library(lib, client=c, categories=["quirks"], max_retries=1)
    assert rep["judge"]["judge_unparsed"] == 2 + 1  # both first answers, then p001's re-ask
    assert rep["judge"]["judge_unparsed_rejected"] == 1
    df = Library.open(lib.path).personas()
    assert df["enrich_consistent"].to_list() == [True, False]  # p000 is a man, p001 a woman
