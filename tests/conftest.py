"""Shared test fixtures: the real public data in ../shared/data (tests skip with a reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def vt_pums(shared_data: Path) -> Path:
    p = shared_data / "acs_pums" / "psam_p50.csv.gz"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    return p


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
