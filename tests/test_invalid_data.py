"""Invalid data reaching a library (issue 22), on synthetic fixtures and real processes: a Vermont library
compared with a Wyoming census, a text `prob` column that elicit would append to, a count file that is a
symlink to /dev/zero, and value ranges that come from the codebook. Each failed on main."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from openai_echo import EchoServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "data"))
from make_fixtures import make_pums  # noqa: E402


def _cli(cwd: Path, *args: str, preexec_fn=None) -> subprocess.CompletedProcess:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PERSONAGEN_API_KEY")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120, preexec_fn=preexec_fn)


def _refused(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert all(w in r.stderr for w in words), r.stderr


@pytest.fixture(scope="module")
def vt_lib(tmp_path_factory: pytest.TempPathFactory, synthetic: dict[str, Path]) -> Path:
    """A 12-persona library built from the synthetic Vermont file, and a synthetic Wyoming file beside it."""
    w = tmp_path_factory.mktemp("states")
    r = _cli(w, "build", "-o", "VT", "--census", str(synthetic["pums"]), "-n", "12")
    assert r.returncode == 0, r.stderr
    make_pums(w / "wy", 200, state="WY", seed=1)
    return w / "VT"


def test_vermont_library_against_wyoming_census_is_refused(vt_lib: Path) -> None:
    wy = vt_lib.parent / "wy" / "psam_p56.csv"
    _refused(_cli(vt_lib.parent, "describe", "VT", "--census", str(wy)), "Wyoming", "Vermont", str(wy))
    moved = vt_lib.parent / "VT_wy"  # a manifest whose census source now holds Wyoming
    shutil.copytree(vt_lib, moved)
    mf = json.loads((moved / "manifest.json").read_text())
    mf["census"] = {**mf["census"], "path": str(wy), "state": None, "states": ["WY"]}
    (moved / "manifest.json").write_text(json.dumps(mf))
    before = sorted(p.name for p in moved.iterdir())
    _refused(_cli(vt_lib.parent, "calibrate", "VT_wy", "--census-margins", "age_band,sex"), "Wyoming", "Vermont")
    assert sorted(p.name for p in moved.iterdir()) == before  # no calibration written
    r = _cli(vt_lib.parent, "describe", "VT")  # its own census still compares
    assert r.returncode == 0, r.stderr


def test_elicit_refuses_to_append_to_text_prob_before_any_call(tmp_path: Path, vt_lib: Path) -> None:
    lib = tmp_path / "L"
    shutil.copytree(vt_lib, lib)
    ids = pl.read_parquet(lib / "personas.parquet")["persona_id"].to_list()
    pl.DataFrame({"persona_id": ids[:1] * 2, "survey_id": "S", "qid": "q0", "option": ["Yes", "No"],
                  "prob": ["0.5", "0.5"], "mode": "logprobs", "model": "m", "n": 1, "valid": True}
                 ).write_parquet(lib / "responses.parquet")
    before = (lib / "responses.parquet").read_bytes()
    from personagen.surveys import Survey

    Survey.from_records("S", [{"qid": f"q{j}", "question": f"Q{j}?", "options": ["Yes", "No"],
                               "targets": {"overall": {"Yes": 0.5, "No": 0.5}}} for j in range(3)]
                        ).save(tmp_path / "S.parquet")
    with EchoServer() as srv:
        r = _cli(tmp_path, "elicit", "L", "--survey", "S.parquet", "--backend", "openai", "--base-url", srv.base_url,
                 "--model", "m", "--no-progress")
        paid = srv.total
    _refused(r, "responses.parquet", "'prob'")
    assert paid == 0 and (lib / "responses.parquet").read_bytes() == before


def _memory_cap() -> None:
    """In the child: at most 4 GB of address space, so main's endless read of /dev/zero fails instead of
    exhausting the machine."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_count_file_symlink_to_dev_zero_is_refused(tmp_path: Path, synthetic: dict[str, Path]) -> None:
    wave = tmp_path / synthetic["wave"].name
    shutil.copytree(synthetic["wave"], wave)
    (wave / "SEX_data.json").unlink()
    (wave / "SEX_data.json").symlink_to("/dev/zero")
    r = _cli(tmp_path, "surveys", "import", "opinionqa", str(wave), "-o", "S.parquet", preexec_fn=_memory_cap)
    _refused(r, "SEX_data.json", "not a regular file")
    assert not (tmp_path / "S.parquet").exists()


@pytest.mark.parametrize("args", [["surveys", "import", "generic", "zero.yaml", "-o", "S.parquet"],
                                  ["surveys", "import", "subpop", "zero.jsonl", "-o", "S.parquet"],
                                  ["surveys", "import", "wvs", "zero.json", "-o", "S.parquet"],
                                  ["build", "-o", "OUT", "--census", "zero.csv", "-n", "3"]])
def test_other_inputs_linked_to_dev_zero_are_refused(tmp_path: Path, args: list[str]) -> None:
    names = ["zero.csv", "zero.json", "zero.jsonl", "zero.yaml"]
    for name in names:
        (tmp_path / name).symlink_to("/dev/zero")
    r = _cli(tmp_path, *args, preexec_fn=_memory_cap)
    _refused(r, "not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_value_ranges_come_from_the_codebook(tmp_path: Path) -> None:
    from personagen.census import read_raw
    from personagen.census.codebook import ranges
    from personagen.errors import BadInput

    assert ranges(2018)["AGEP"] == ranges(2021)["AGEP"] == (0, 99)  # the data dictionaries' "1 to 99 (top-coded)"
    rows = "".join(f"2021HU{i:07d},1,50,10,{age},2\n" for i, age in enumerate([0, 45, 99]))
    ok = tmp_path / "ok.csv"
    ok.write_text("SERIALNO,SPORDER,ST,PWGTP,AGEP,SEX\n" + rows)
    assert sorted(read_raw(ok, min_age=None).df["AGEP"].to_list()) == [0, 45, 99]
    bad = tmp_path / "bad.csv"
    bad.write_text("SERIALNO,SPORDER,ST,PWGTP,AGEP,SEX\n" + rows + "2021HU0000009,1,50,10,100,2\n")
    with pytest.raises(BadInput, match=r"AGEP holds 100, outside the PUMS 2021 codebook range 0-99"):
        read_raw(bad)  # refused even though --min-age would keep the record
