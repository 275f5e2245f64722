"""Shared test fixtures: the real public data in ../shared/data, and synthetic fixtures generated from the
repository alone (tests/data/make_fixtures.py).

A test that needs the real files asks for the `shared_data` fixture (directly or through `vt_pums`, ...): it is
marked `real_data` here, centrally, and skips with one line saying where the data goes when it is absent, so a
fresh clone runs the rest (`pytest -m "not real_data"` deselects them). CI has ../shared/data and sets
PERSONAGEN_REQUIRE_DATA=1, which turns a missing folder into a failure instead of a skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_DATA_FIXTURES = {"shared_data", "vt_pums"}


def _missing(path: Path) -> None:
    """Skip (or, under PERSONAGEN_REQUIRE_DATA=1, fail) a test whose real data file or folder is absent."""
    msg = (f"needs the public data sets: put them in {SHARED_DATA} (layout and sources: "
           f"CONTRIBUTING.md, 'Test data'); {path} not present")
    if os.environ.get("PERSONAGEN_REQUIRE_DATA") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that reaches ../shared/data (through a real-data fixture) `real_data`."""
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture(scope="session", autouse=True)
def _suite_cache(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN202
    """The suite's personagen cache (float copies of GGUF models, census downloads) in a temporary folder of its
    own, not the user's ~/.cache, unless $PERSONAGEN_CACHE names one; subprocesses inherit it."""
    if os.environ.get("PERSONAGEN_CACHE"):
        yield
        return
    os.environ["PERSONAGEN_CACHE"] = str(tmp_path_factory.mktemp("personagen-cache"))
    yield
    os.environ.pop("PERSONAGEN_CACHE", None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test (one line saying where the data goes) when it is not there."""
    if not SHARED_DATA.is_dir():
        _missing(SHARED_DATA)
    return SHARED_DATA


def opinionqa_wave(shared_data: Path, wave: str):  # noqa: ANN201
    """The OpinionQA wave folder `wave` under ../shared/data, imported; skips when it is not there."""
    from personagen.surveys import import_opinionqa

    p = shared_data / "opinionqa" / "human_resp" / wave
    if not p.is_dir():
        pytest.skip(f"{p} not present")
    return import_opinionqa(p)


@pytest.fixture(scope="session")
def vt_pums(shared_data: Path) -> Path:
    p = shared_data / "acs_pums" / "psam_p50.csv.gz"
    if not p.is_file():
        _missing(p)
    return p


# ---- synthetic fixtures: generated from the codebook and invented questions, never copied from real data --
@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"pums": a 400-record Vermont PUMS-shaped csv, "wave": a mini OpinionQA-shaped wave folder}."""
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from make_fixtures import make_opinionqa_wave, make_pums

    out = tmp_path_factory.mktemp("synthetic")
    return {"pums": make_pums(out, 400, state="VT", seed=0), "wave": make_opinionqa_wave(out, seed=0)}


# ---- llm workstream: the bundled local model server, once per test session ------------------------------
@pytest.fixture(scope="session")
def local_llm_url():
    """Base URL (http://127.0.0.1:PORT/v1) of the bundled SmolLM2 server; skips when it is not installed."""
    from personagen.llm import LocalServer, local_available

    reason = local_available()
    if reason:
        pytest.skip(reason)
    server = LocalServer()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def yes_no_library(tmp_path: Path, n: int = 3, nq: int = 2):  # noqa: ANN201
    """A tiny library (n personas) and a saved yes/no survey of nq questions: (Library, survey path)."""
    import polars as pl

    from personagen import Library  # the API class: with its verbs (lib.elicit)
    from personagen.surveys import Survey

    lib = Library.init(tmp_path / "LIB", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [f"p{i}" for i in range(n)], "source": ["census"] * n,
                                     "text_narrative": [f"I am person {i}." for i in range(n)]}))
    qs = [{"qid": f"q{j}", "question": f"Question {j}?", "options": ["Yes", "No"],
           "targets": {"overall": {"Yes": 0.5, "No": 0.5}}} for j in range(nq)]
    Survey.from_records("S", qs).save(tmp_path / "S.parquet")
    return lib, tmp_path / "S.parquet"
