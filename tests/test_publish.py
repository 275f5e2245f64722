"""publish / pull / sample-panel: export folder, licence rules, Hub push/pull against a loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from personagen import CalibrateOptions, Library
from personagen.calibration_report import read_report
from personagen.errors import BadInput
from personagen.publish import (
    PublishOptions,
    export_panel,
    load_panel,
    publish_panel,
    pull_panel,
    sample_panel,
)
from personagen.publish.export import survey_licence
from personagen.store import atomic_write_json, atomic_write_parquet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_server import HubServer  # noqa: E402

TOKEN = "hf_testTOKEN_5f3a9c1e7b2d4a6f8e0c"
N = 30


def _report(name: str = "main", **over: object) -> dict:
    ci = {"value": 0.012, "ci_low": 0.008, "ci_high": 0.017}
    rep = {
        "name": name, "method": "simplex", "survey_id": "opinionqa_W26", "group": "overall",
        "created": "2025-01-01T00:00:00+00:00", "lam": 0.1, "alpha": None, "n_personas": N, "nonzeros": 12,
        "ess": 9.5, "negative_weights": 0, "solver": "active-set", "solver_seconds": 0.01,
        "metrics": {s: {"mse": ci, "one_minus_jsd": {"value": 0.8, "ci_low": 0.75, "ci_high": 0.85}}
                    for s in ("train", "valid", "test")},
        "baselines": {"uniform_average": {"test": {"mse": {"value": 0.02, "ci_low": 0.015, "ci_high": 0.03}}},
                      "uniform_distribution": {"test": {"mse": {"value": 0.05, "ci_low": 0.04,
                                                                "ci_high": 0.06}}}},
        "survey_path": "/home/someone/private/opinionqa.parquet",
    }
    rep.update(over)
    return rep


def write_calibration(lib: Library, name: str, weights: np.ndarray, ids: list[str] | None = None,
                      **report: object) -> None:
    d = lib.calibration_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    ids = ids if ids is not None else lib.personas()["persona_id"].to_list()
    atomic_write_parquet(d / "weights.parquet", pl.DataFrame({"persona_id": ids, "weight": weights}))
    atomic_write_json(d / "report.json", _report(name, **report))


def make_library(path: Path, *, calibrate: bool = True, survey_id: str = "opinionqa_W26") -> Library:
    """A small library built directly (no pipeline): personas, responses with question text, one calibration."""
    rng = np.random.default_rng(0)
    lib = Library.init(path, seed=7, census={"path": "/home/someone/data/psam_p50.csv.gz", "sha256": "ab" * 32,
                                             "year": 2018, "state": "Vermont"},
                       config={"template_hashes": {"personas/narrative.j2": "cd" * 32}})
    ages = rng.integers(18, 90, N)
    personas = pl.DataFrame({
        "persona_id": [f"p{i:04d}" for i in range(N)],
        "source": ["census"] * N, "mode": pl.Series([None] * N, dtype=pl.String), "enriched": [False] * N,
        "weight_census": np.full(N, 1 / N), "pwgtp": rng.integers(5, 200, N),
        "state": ["Vermont"] * N, "age": ages, "sex": rng.choice(["Male", "Female"], N).tolist(),
        "education": rng.choice(["High school", "Bachelor's degree", None], N).tolist(),
        "big5_openness": rng.normal(50, 10, N),
        "text_narrative": [f"I am a {a}-year-old from Vermont." for a in ages],
    })
    lib.write_personas(personas)
    rows = []
    for pid in personas["persona_id"]:
        for q in ("Q1", "Q2"):
            for opt, p in (("Yes", 0.6), ("No", 0.4)):
                rows.append({"persona_id": pid, "survey_id": survey_id, "qid": q, "option": opt, "prob": p,
                             "mode": "logprobs", "model": "smollm2", "n": 1, "valid": True,
                             "question": f"PEW WORDING {q}: do you approve?", "raw_prompt": "secret prompt"})
    lib.append_responses(pl.DataFrame(rows))
    lib.record("elicit", survey_id=survey_id, survey_source="opinionqa", model="smollm2")
    if calibrate:
        w = rng.random(N)
        w[::3] = 0.0
        write_calibration(lib, "main", w / w.sum(), survey_id=survey_id)
    return lib


@pytest.fixture()
def lib(tmp_path: Path) -> Library:
    return make_library(tmp_path / "lib")


# ---- export ---------------------------------------------------------------------------------------

def test_export_folder_layout_and_card(lib: Library, tmp_path: Path) -> None:
    out = tmp_path / "panel"
    res = export_panel(lib, out, repo="acme/vt-panel")
    assert res.n_personas == N and res.n_responses == N * 4
    for cfg in ("personas", "responses", "calibration"):
        assert (out / "data" / cfg / "train-00000-of-00001.parquet").is_file()
    p = pl.read_parquet(out / "data/personas/train-00000-of-00001.parquet")
    assert abs(p["weight"].sum() - 1) < 1e-9 and (p["weight"] >= 0).all()
    assert p["persona_id"].to_list() == lib.personas()["persona_id"].to_list()
    r = pl.read_parquet(out / "data/responses/train-00000-of-00001.parquet")
    assert "question" not in r.columns and "raw_prompt" not in r.columns
    assert set(r.columns) == {"persona_id", "survey_id", "qid", "option", "prob", "mode", "model", "n", "valid"}
    m = pl.read_parquet(out / "data/calibration/train-00000-of-00001.parquet")
    assert {"estimator", "split", "metric", "value", "ci_low", "ci_high"} <= set(m.columns)
    assert m.filter((pl.col("estimator") == "calibrated") & (pl.col("split") == "test")).height == 2

    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    fm = yaml.safe_load(text.split("---", 2)[1])
    assert fm["license"] == "cc-by-4.0" and fm["size_categories"] == ["n<1K"]
    assert "task_categories" in fm and "synthetic" in fm["tags"]
    assert [c["config_name"] for c in fm["configs"]] == ["personas", "responses", "calibration"]
    assert fm["configs"][0]["data_files"][0]["path"] == "data/personas/train-00000-of-00001.parquet"
    for needle in ("Provenance", "psam_p50.csv.gz", "ab" * 32, "Vermont", "smollm2", "cd" * 32, "simplex",
                   "λ", "train (in-sample)", "| test | held out |", "0.008", "## Caveats", "Intended use", "Limitations and ethics", "Castricato",
                   "Prompts to Proxies", "Suh", "Santurkar", "ACS PUMS", "public domain", "question text",
                   "survey target distributions", "0.1.0"):
        assert needle in text, needle
    everything = "".join(f.read_text(errors="ignore") for f in out.rglob("*") if f.suffix in (".md", ".json"))
    assert "PEW WORDING" not in everything and "/home/someone" not in everything
    assert b"PEW WORDING" not in (out / "data/responses/train-00000-of-00001.parquet").read_bytes()
    meta = json.loads((out / "personagen.json").read_text())
    assert meta["surveys"]["opinionqa_W26"]["restricted"] is True
    assert "survey_path" not in meta["report"]


def test_licence_rules() -> None:
    for sid in ("opinionqa_W26", "wvs_wave7", "pew_global_2020", "gss_2018", "subpop_train", "ATP_W92"):
        d = survey_licence(sid)
        assert d["restricted"] and not d["question_text"], sid
    assert survey_licence("census_vt_margins")["question_text"] is True
    assert survey_licence("my_poll") == {"restricted": False, "question_text": False,
                                         "reason": survey_licence("my_poll")["reason"]}


def test_open_survey_keeps_question_text(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib", survey_id="census_vt")
    lib.manifest["history"] = []
    lib.save_manifest()
    export_panel(lib, tmp_path / "panel")
    r = pl.read_parquet(tmp_path / "panel/data/responses/train-00000-of-00001.parquet")
    assert "question" in r.columns and "raw_prompt" not in r.columns


def test_datasets_load_every_config(lib: Library, tmp_path: Path) -> None:
    out = tmp_path / "panel"
    export_panel(lib, out, repo="acme/vt-panel")
    code = (
        "import sys, json; from datasets import load_dataset\n"
        "res = {c: load_dataset(sys.argv[1], name=c, split='train').num_rows "
        "for c in ('personas', 'responses', 'calibration')}\n"
        "d = load_dataset(sys.argv[1], name='personas', split='train')\n"
        "res['weight_sum'] = sum(d['weight'])\n"
        "print(json.dumps(res))\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "ds")}
    r = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["personas"] == N and res["responses"] == N * 4 and res["calibration"] == 8
    assert abs(res["weight_sum"] - 1) < 1e-9


# ---- bad input ------------------------------------------------------------------------------------

def test_refuses_bad_weights_and_missing_calibration(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "nocal", calibrate=False)
    with pytest.raises(BadInput, match="no calibration"):
        export_panel(lib, tmp_path / "o1")
    write_calibration(lib, "half", np.full(N, 0.5 / N))
    with pytest.raises(BadInput, match="sum to 0.5"):
        export_panel(lib, tmp_path / "o2", PublishOptions(calibration="half"))
    w = np.full(N, 1 / N)
    w[0], w[1] = -0.1, w[1] + 0.1
    write_calibration(lib, "signed", w)
    with pytest.raises(BadInput, match="negative"):
        export_panel(lib, tmp_path / "o3", PublishOptions(calibration="signed"))
    write_calibration(lib, "p2p", np.full(N, 1 / N), negative_weights=3)
    with pytest.raises(BadInput, match="negative"):
        export_panel(lib, tmp_path / "o4", PublishOptions(calibration="p2p"))
    write_calibration(lib, "ghost", np.full(N, 1 / N), ids=[f"x{i}" for i in range(N)])
    with pytest.raises(BadInput, match="not in personas"):
        export_panel(lib, tmp_path / "o5", PublishOptions(calibration="ghost"))
    with pytest.raises(BadInput, match="several calibrations"):
        export_panel(lib, tmp_path / "o6")
    with pytest.raises(BadInput, match="invalid repo id"):
        export_panel(lib, tmp_path / "o7", PublishOptions(calibration="half"), repo="not a repo")
    assert not any(tmp_path.glob("o*")) and not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True,
                          env=e, timeout=60)


def _main(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run the CLI in-process (personagen.cli.main maps errors to exit codes); returns code, stdout, stderr."""
    from personagen.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


def test_cli_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    lib = make_library(tmp_path / "lib")
    nocal = make_library(tmp_path / "nocal", calibrate=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    cases = [
        (["publish", str(nocal.path), "--out", str(tmp_path / "o1")], ""),
        (["publish", str(lib.path), "--repo", "acme/x"], ""),  # no HF_TOKEN
        (["publish", str(lib.path), "--repo", "bad//name"], TOKEN),
        (["publish", str(lib.path), "--repo", "-bad/x", "--out", str(tmp_path / "o2")], ""),
        (["pull", "not a/repo id!", "-o", str(tmp_path / "o3")], ""),
        (["publish", str(lib.path), "--out", str(tmp_path / "o4"), "--private"], ""),
        (["sample-panel", str(lib.path), "-n", "0"], ""),
        (["sample-panel", str(nocal.path), "-n", "5"], ""),
    ]
    for args, tok in cases:
        monkeypatch.setenv("HF_TOKEN", tok)
        code, _, err = _main(args, capsys)
        assert code == 2, (args, code, err)
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not any(tmp_path.glob("o*"))


# ---- Hub push / pull against a loopback server ---------------------------------------------------

@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    with HubServer(token=TOKEN) as srv:
        import huggingface_hub.constants as c

        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hfhome" / "hub"))
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        # huggingface_hub reads these at import time; point the already-imported constants at the server too
        monkeypatch.setattr(c, "ENDPOINT", srv.url)
        monkeypatch.setattr(c, "HUGGINGFACE_CO_URL_TEMPLATE", srv.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hfhome" / "hub"))
        monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
        yield srv


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_push_pull_roundtrip_cli(lib: Library, tmp_path: Path, hub: HubServer, capsys: pytest.CaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hfcli"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    r = _cli("publish", str(lib.path), "--repo", "acme/vt-panel", "--private", "--json", env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert TOKEN not in r.stdout + r.stderr
    assert len(hub.commits) == 1
    c = hub.commits[0]
    assert c["authorization"] == f"Bearer {TOKEN}" and c["revision"] == "main" and res["commit"] == c["sha"]
    assert set(c["paths"]) == {"README.md", "personagen.json", "data/personas/train-00000-of-00001.parquet",
                               "data/responses/train-00000-of-00001.parquet",
                               "data/calibration/train-00000-of-00001.parquet"}
    assert hub.repos[("dataset", "acme/vt-panel")].private
    writes = [q for q in hub.requests if q["method"] == "POST"]
    assert writes and all(q["authorization"] == f"Bearer {TOKEN}" for q in writes)

    out = tmp_path / "pulled"
    monkeypatch.delenv("HF_TOKEN", raising=False)  # private repo: invisible without the token
    code, _, err = _main(["pull", "acme/vt-panel", "-o", str(out)], capsys)
    assert code == 2 and "not found" in err and not out.exists()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, _, err = _main(["pull", "acme/vt-panel", "-o", str(out), "--json"], capsys)
    assert code == 0, err
    pulled = Library.open(out)
    src = pulled.manifest["config"]["source"]
    assert src["kind"] == "hub" and src["repo"] == "acme/vt-panel" and src["commit"] == c["sha"]
    p = pulled.personas()
    assert "weight" in p.columns and abs(p["weight"].sum() - 1) < 1e-9
    orig = export_panel(lib, tmp_path / "ref").path
    ref = pl.read_parquet(orig / "data/personas/train-00000-of-00001.parquet")
    assert p.equals(ref)
    assert pulled.responses().height == N * 4 and pulled.calibrations() == ["main"]
    for folder in (out, lib.path, orig, tmp_path / "hfcli", tmp_path / "hfhome"):
        assert TOKEN.encode() not in _all_bytes(folder)

    code, sout, err = _main(["sample-panel", str(out), "-n", "50", "--seed", "3", "--json"], capsys)
    assert code == 0, err
    js = json.loads(sout.strip().splitlines()[-1])
    assert len(js["rows"]) == 50
    zero = set(p.filter(pl.col("weight") == 0)["persona_id"].to_list())
    assert not zero & {row["persona_id"] for row in js["rows"]}


def test_push_revision_load_panel_and_no_token(lib: Library, tmp_path: Path, hub: HubServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(BadInput, match="HF_TOKEN"):
        publish_panel(lib, "acme/p2")
    assert not hub.requests
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    res = publish_panel(lib, "acme/p2", PublishOptions(revision="v1"))
    assert res["revision"] == "v1" and len(hub.commits) == 1 and hub.commits[0]["revision"] == "v1"
    repo = hub.repos[("dataset", "acme/p2")]
    assert "README.md" not in repo.commits[repo.branches["main"]]
    df = load_panel("acme/p2", revision="v1")
    assert df.height == N and abs(df["weight"].sum() - 1) < 1e-9
    with pytest.raises(BadInput, match="revision 'nope' not found"):
        load_panel("acme/p2", revision="nope")
    with pytest.raises(BadInput):
        load_panel("acme/missing")
    # wrong token: refused by the server, nothing committed
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(BadInput, match="refused"):
        publish_panel(lib, "acme/p3")
    assert len(hub.commits) == 1


def test_pull_local_folder_and_sample(lib: Library, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "panel"
    export_panel(lib, out)
    df = load_panel(out)
    assert df.height == N and "weight" in df.columns
    assert load_panel(lib.path)["weight"].to_list() == df["weight"].to_list()
    pulled = pull_panel(out, tmp_path / "lib2")
    assert pulled.manifest["config"]["source"]["kind"] == "folder"
    got_rep = read_report(pulled.calibration_dir("main") / "report.json")  # the schema-0 fixture, upgraded
    assert got_rep.schema_version == 1 and got_rep.ess == 9.5 and got_rep.pulled_from["kind"] == "folder"
    assert got_rep.metric("test") == 0.012 and got_rep.method == "simplex"
    with pytest.raises(BadInput, match="not empty"):
        pull_panel(out, tmp_path / "lib2")
    a = sample_panel(lib, 2000, seed=1)
    b = sample_panel(pulled, 2000, seed=1)
    assert a["persona_id"].to_list() == b["persona_id"].to_list()
    freq = a["persona_id"].value_counts()
    w = dict(zip(df["persona_id"], df["weight"]))
    top = max(w, key=w.get)
    got = freq.filter(pl.col("persona_id") == top)["count"][0] / 2000
    assert abs(got - w[top]) < 0.05
    assert not set(a["persona_id"]) & {k for k, v in w.items() if v == 0}
    f = tmp_path / "s.parquet"
    code, _, err = _main(["sample-panel", str(lib.path), "-n", "10", "-o", str(f)], capsys)
    assert code == 0, err
    assert pl.read_parquet(f).height == 10


def test_real_census_library_exports(vt_pums: Path, tmp_path: Path) -> None:
    """A library built from Vermont PUMS by the pipeline (skips while it is not there), weighted by census
    PWGTP shares (or calibrated to census margins when the calibrate stage is available)."""
    pipeline = pytest.importorskip("personagen.pipeline")
    lib = pipeline.build_library(out=tmp_path / "lib", census=vt_pums, n=120, seed=0)
    try:
        from personagen.calibrate import calibrate_library

        calibrate_library(lib, None, CalibrateOptions(census_margins="age_band,sex", n_boot=50, name="census"))
    except ImportError:
        p = lib.personas()
        write_calibration(lib, "census", (p["weight_census"] / p["weight_census"].sum()).to_numpy(),
                          method="rake", survey_id="census_vt_margins")
    res = export_panel(lib, tmp_path / "panel", PublishOptions(calibration="census"), repo="acme/vt-census")
    text = (tmp_path / "panel" / "README.md").read_text()
    assert lib.manifest["census"]["sha256"] in text and "psam_p50.csv.gz" in text and "2018" in text
    assert "/work/" not in text and str(vt_pums.parent) not in (tmp_path / "panel/personagen.json").read_text()
    df = load_panel(tmp_path / "panel")
    assert df.height == res.n_personas == 120 and abs(df["weight"].sum() - 1) < 1e-6
    s = sample_panel(lib, 500, seed=0, calibration="census")
    assert s.height == 500 and set(s["persona_id"]) <= set(df["persona_id"])
