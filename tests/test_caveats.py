"""Caveats that travel: the newcomer's panel (2,000 personas built, 20 asked 4 questions of the real W26 wave)
warns at calibrate, and its published personagen.json and card carry the caveats; sample-panel warns when the
draws repeat few personas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_calibrate_library import _responses, run_cli

from personagen import Library


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory, shared_data: Path):  # noqa: ANN001, ANN201
    from personagen.surveys import import_opinionqa

    p = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not p.is_dir():
        pytest.skip(f"{p} not present")
    w26 = import_opinionqa(p)
    qs = w26.split_qids("train")[:2] + w26.split_qids("valid")[:1] + w26.split_qids("test")[:1]
    s4 = w26.subset(qs)
    root = tmp_path_factory.mktemp("newcomer")
    lib = Library.init(root / "lib", seed=0)
    pids = [f"p{i:04d}" for i in range(2000)]
    lib.write_personas(pl.DataFrame({"persona_id": pids, "source": ["census"] * 2000}))
    lib.append_responses(_responses(s4, pids[:20], (np.arange(20) >= 15).astype(int), 0))
    return lib, s4.save(root / "s4.parquet")


def test_newcomer_warns_and_caveats_travel(newcomer, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    lib, sp = newcomer
    code, out, err = run_cli(["calibrate", str(lib.path), "--survey", str(sp), "--drop-incomplete", "--name", "c",
                              "--replicates", "10"], capsys)
    assert code == 0, err
    warn = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    text = " ".join(warn)
    for needle in ("effective sample size", "only 2 training question", "held-out valid split has only 1",
                   "held-out test split has only 1", "only 20 of 2000 built personas"):
        assert needle in text, needle
    rep = json.loads((lib.calibration_dir("c") / "report.json").read_text())
    assert len(rep["caveats"]) == len([w for w in warn if "lack answers" not in w])
    assert rep["personas_built"] == 2000 and rep["personas_asked"] == 20 and rep["replicates"]["r"] == 10
    w = pl.read_parquet(lib.calibration_dir("c") / "weights.parquet")
    assert w.height == 2000 and int(w["asked"].sum()) == 20
    assert w.filter(~pl.col("asked")).select(pl.exclude("persona_id", "asked")).to_numpy().max() == 0

    code, out, err = run_cli(["publish", str(lib.path), "--out", str(tmp_path / "P")], capsys)
    assert code == 0, err
    meta = json.loads((tmp_path / "P" / "personagen.json").read_text())
    cav = " ".join(meta["caveats"])
    assert "warning: effective sample size" in cav and "2 train (fitted), 1 valid and 1 test" in cav
    assert "20 / 2000" in cav and "10 half-sample replicate weights" in cav
    card = (tmp_path / "P" / "README.md").read_text()
    sec = card.split("## Caveats", 1)[1].split("\n## ", 1)[0]
    assert "effective sample size" in sec and "20 / 2000" in sec and "rep_1` … `rep_10`" in card
    pers = pl.read_parquet(tmp_path / "P" / "data/personas/train-00000-of-00001.parquet")
    assert {"asked", "rep_1", "rep_10"} <= set(pers.columns)

    code, out, err = run_cli(["pull", str(tmp_path / "P"), "-o", str(tmp_path / "L2")], capsys)
    assert code == 0, err  # the replicate weights come back with a pulled panel: estimate has its SEs
    code, out, err = run_cli(["estimate", str(tmp_path / "L2"), "--survey", str(sp), "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out.strip().splitlines()[-1])["rows"]
    assert rows and all(r["se"] is not None and r["n"] <= 20 for r in rows)

    code, out, err = run_cli(["sample-panel", str(lib.path), "-n", "1000"], capsys)
    assert code == 0 and err.startswith("warning: the 1000 draws hold only"), err
