"""Enrich end to end against the bundled local model (tiny SmolLM2: garbage in, robust handling out)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from enrich_helpers import census_library  # noqa: E402

from personagen import Library  # noqa: E402

pytestmark = pytest.mark.llm


def test_enrich_cli_local_model(tmp_path: Path, local_llm_url: str) -> None:
    lib = census_library(tmp_path / "lib", n=3)
    cmd = [sys.executable, "-m", "personagen.cli", "enrich", str(lib.path), "--backend", "openai",
           "--base-url", local_llm_url, "--model", "smollm2", "--categories", "ideology,quirks",
           "--max-retries", "1", "--limit", "2", "--max-tokens", "24", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["n_personas"] == 2 and set(rep["per_category"]) == {"ideology", "quirks"}
    for v in rep["per_category"].values():
        assert 0.0 <= v["rejection_rate"] <= 1.0
    df = Library.open(lib.path).personas()
    assert df["enriched"].to_list() == [True, True, False]
    assert {"trait_ideology", "trait_quirks"} <= set(df.columns)
    assert (lib.path / "enrich" / "duplicates.json").is_file()
    assert any(h["stage"] == "enrich" for h in Library.open(lib.path).manifest["history"])
    # bad input exits 2 with one line
    r2 = subprocess.run(cmd[:5] + ["--categories", "nope", "--backend", "openai", "--base-url", local_llm_url,
                                   "--model", "smollm2"], capture_output=True, text=True, timeout=120)
    assert r2.returncode == 2 and "nope" in r2.stderr
