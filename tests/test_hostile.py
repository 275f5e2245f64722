"""Hostile and concurrent use, against real processes and real loopback servers (no mocks):
names from files/options that would escape the library, API keys echoed back by a server, several
`personagen elicit` processes writing one library at once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from openai_echo import EchoServer

from personagen.errors import BadInput
from personagen.library import Library
from personagen.llm import redact
from personagen.names import safe_name
from personagen.surveys import Survey

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test-THIS-KEY-MUST-NEVER-BE-STORED-0123456789"
KEY_ENVS = ("OPENAI_API_KEY", "PERSONAGEN_API_KEY", "HF_TOKEN")


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `personagen ARGS` in a fresh interpreter (this worktree first on the path)."""
    e = {k: v for k, v in os.environ.items() if k not in KEY_ENVS}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=300)


def popen(*args: str) -> subprocess.Popen:
    e = {k: v for k, v in os.environ.items() if k not in KEY_ENVS}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "personagen.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)


def make_library(path: Path, n: int = 6) -> Library:
    lib = Library.init(path, seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [f"p{i}" for i in range(n)], "source": ["census"] * n,
                                     "text_narrative": [f"I am person number {i}." for i in range(n)]}))
    return lib


def make_survey(path: Path, sid: str, nq: int = 4) -> Path:
    qs = [{"qid": f"{sid}_q{j}", "question": f"Question {j} of {sid}?", "options": ["Yes", "No", "Unsure"],
           "targets": {"overall": {"Yes": 0.5, "No": 0.3, "Unsure": 0.2}}} for j in range(nq)]
    Survey.from_records(sid, qs).save(path)
    return path


# ---- names that become paths ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../../x", "/tmp/abs", "..", ".hidden", "a/b", "", "x\n", "a" * 200, None, 3])
def test_safe_name_refuses_escapes(bad: object) -> None:
    with pytest.raises(BadInput, match="not a valid name"):
        safe_name(bad, "calibration")


def test_safe_name_keeps_ordinary_names() -> None:
    for ok in ("simplex-ATP_W82-overall", "mixture", "v1.2", "A_b-3"):
        assert safe_name(ok, "x") == ok


def _exported_panel(tmp_path: Path, calibration: str) -> Path:
    """A panel folder as `publish --out` writes it, with `calibration` written into personagen.json."""
    folder = tmp_path / "panel"
    (folder / "data" / "personas").mkdir(parents=True)
    pl.DataFrame({"persona_id": ["a", "b"], "weight": [0.25, 0.75]}).write_parquet(
        folder / "data" / "personas" / "train-00000-of-00001.parquet")
    (folder / "personagen.json").write_text(json.dumps({"format": "personagen-panel", "calibration": calibration}))
    return folder


@pytest.mark.parametrize("evil", ["../../../escaped", "/tmp/personagen-abs-escape", "..", "a/../../b"])
def test_pull_refuses_calibration_names_that_escape(tmp_path: Path, evil: str) -> None:
    folder = _exported_panel(tmp_path, evil)
    before = set(tmp_path.rglob("*"))
    r = cli("pull", str(folder), "-o", str(tmp_path / "work" / "lib"))
    assert r.returncode == 2, r.stderr
    assert "calibration" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert set(tmp_path.rglob("*")) == before  # nothing written anywhere under tmp_path
    assert not Path("/tmp/personagen-abs-escape").exists()


def test_pull_refuses_untrusted_panel_content(tmp_path: Path) -> None:
    folder = _exported_panel(tmp_path, "ok")
    pq = folder / "data" / "personas" / "train-00000-of-00001.parquet"
    for frame, what in ((pl.DataFrame({"persona_id": [1, 2], "weight": [0.5, 0.5]}), "persona_id"),
                        (pl.DataFrame({"persona_id": ["a", None], "weight": [0.5, 0.5]}), "persona_id"),
                        (pl.DataFrame({"persona_id": ["a", "b"], "weight": ["x", "y"]}), "weight")):
        frame.write_parquet(pq)
        r = cli("pull", str(folder), "-o", str(tmp_path / "lib"))
        assert r.returncode == 2 and what in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "lib").exists()
    pq.write_bytes(b"PAR1 this is not parquet")
    r = cli("pull", str(folder), "-o", str(tmp_path / "lib"))
    assert r.returncode == 2 and "parquet" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", [["mixture", "--target", "t.csv", "--out", "M", "--name", "../../x"],
                                 ["calibrate", "LIB", "--survey", "s.parquet", "--name", "../x"],
                                 ["sample-panel", "LIB", "-n", "3", "--calibration", "../../x"]])
def test_name_options_refused_before_anything_is_written(tmp_path: Path, cmd: list[str]) -> None:
    make_library(tmp_path / "LIB")
    (tmp_path / "t.csv").write_text("y\n1\n2\n3\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    r = cli(*cmd, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not a valid name" in r.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("evil", ["checkpoints/../../escaped", "/tmp/personagen-abs-ck"])
def test_finetune_checkpoint_pointer_cannot_leave_out(tmp_path: Path, shared_data: Path, evil: str) -> None:
    """A resumed `finetune --out OUT` reads OUT/checkpoint.json: its path is a name from a file."""
    from personagen.finetune import FinetuneOptions

    wave = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not wave.is_dir():
        pytest.skip(f"{wave} not present")
    out = tmp_path / "FT"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(FinetuneOptions(train=(str(wave),), out=str(out)).run_config()))
    (out / "checkpoint.json").write_text(json.dumps({"step": 3, "path": evil}))
    r = cli("finetune", "--train", str(wave), "--out", str(out))
    assert r.returncode == 2 and "checkpoint.json" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_wave_and_export_names_stay_inside_their_folder(tmp_path: Path) -> None:
    from personagen.finetune import export_hub_config
    from personagen.reproduce.p2p import wave_name

    assert wave_name(Path("/data/American_Trends_Panel_W26")) == "W26"
    for wave in (tmp_path / "a" / "..", Path("/"), tmp_path / "my wave"):
        name = wave_name(wave)
        assert safe_name(name, "wave") == name and (tmp_path / name).parent == tmp_path
    with pytest.raises(BadInput, match="not a valid name"):
        export_hub_config([], tmp_path / "out", name="../../escaped")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escaped").exists()


# ---- secrets echoed back by a server -------------------------------------------------------------------
def test_redact_forms() -> None:
    os.environ["PERSONAGEN_API_KEY"] = "zz-custom-secret-value"
    try:
        s = redact('{"authorization": "Bearer sk-abcdefghijkl", "x": "zz-custom-secret-value hf_abcdefghij"}')
    finally:
        del os.environ["PERSONAGEN_API_KEY"]
    assert "sk-abcdefghijkl" not in s and "zz-custom" not in s and "hf_abcdefghij" not in s
    assert json.loads(s)["authorization"] == "Bearer ***"
    assert redact("max_tokens: 5, input_tokens=3") == "max_tokens: 5, input_tokens=3"  # not a secret


def test_echoed_api_key_never_reaches_disk_or_screen(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib", n=2)
    survey = make_survey(tmp_path / "s.parquet", "S", nq=2)
    with EchoServer(echo_headers=True) as srv:
        r = cli("elicit", str(lib.path), "--survey", str(survey), "--backend", "openai", "--base-url",
                srv.base_url, "--model", "m", "--no-progress", "--json", env={"OPENAI_API_KEY": KEY})
        assert srv.total == 4  # the server did see the key-bearing requests (400s are not retried)
    assert r.returncode == 1, r.stderr
    assert "Bearer ***" in r.stdout + r.stderr  # the echo arrived, redacted
    assert KEY not in r.stdout + r.stderr and KEY[3:20] not in r.stdout + r.stderr
    for f in lib.path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    errors = sqlite3.connect(lib.llm_db).execute("SELECT error FROM log WHERE error IS NOT NULL").fetchall()
    assert len(errors) == 4 and all("***" in e for (e,) in errors)  # (the constraint probes are answered apart)


# ---- concurrent writers --------------------------------------------------------------------------------
def test_concurrent_elicits_pay_once_and_keep_everything(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib", n=6)
    s1 = make_survey(tmp_path / "s1.parquet", "S1", nq=4)
    s2 = make_survey(tmp_path / "s2.parquet", "S2", nq=3)
    with EchoServer(delay_s=0.03) as srv:
        base = ["--backend", "openai", "--base-url", srv.base_url, "--model", "m", "--no-progress"]
        procs = [popen("elicit", str(lib.path), "--survey", str(s), *base) for s in (s1, s1, s2, s1)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
        # 6 personas x (4 + 3) questions: every distinct request sent exactly once across the 4 processes
        assert len(srv.calls) == 6 * 7 and max(srv.calls.values()) == 1, srv.calls.most_common(3)
    r = Library.open(lib.path).responses()
    assert r.height == 6 * 7 * 3  # one row per option
    assert r.select("persona_id", "survey_id", "qid", "model", "mode", "option").is_duplicated().sum() == 0
    hist = [h for h in Library.open(lib.path).manifest["history"] if h["stage"] == "elicit"]
    assert len(hist) == 4
    assert sum(h["requests_sent"] for h in hist) == 42
    log = sqlite3.connect(lib.llm_db).execute("SELECT count(*), count(DISTINCT hash) FROM log").fetchone()
    assert log == (42 + 3, 42 + 3)  # and the three constraint probes (elicit --constrain auto), paid once too
    assert sqlite3.connect(lib.llm_db).execute("SELECT count(*) FROM claims").fetchone() == (0,)
    assert not list((lib.path / ".responses").glob("*"))


def test_stale_claim_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib", n=1)
    s1 = make_survey(tmp_path / "s1.parquet", "S1", nq=1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    with EchoServer() as srv:
        base = ["--backend", "openai", "--base-url", srv.base_url, "--model", "m", "--no-progress"]
        r = cli("elicit", str(lib.path), "--survey", str(s1), "--max-requests", "1", *base, "--dry-run")
        assert r.returncode == 0 and not lib.llm_db.exists()  # a dry run creates nothing
        # a claim left by a process that is gone, on the exact request the run needs
        from personagen.llm.cache import Cache

        c = Cache(lib.llm_db)
        from personagen.elicit import build_messages
        from personagen.llm import ChatRequest, LLMClient

        cl = LLMClient.create(backend="openai", base_url=srv.base_url, model="m")
        msgs = build_messages("I am person number 0.", "Question 0 of S1?", ["Yes", "No", "Unsure"])
        k = cl.key(ChatRequest(messages=msgs, temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=20))
        c.conn.execute("INSERT INTO claims VALUES (?,?,?)", (k, int(dead), 0.0))
        c.close()
        r = cli("elicit", str(lib.path), "--survey", str(s1), *base)
        assert r.returncode == 0, r.stderr
        assert srv.total == 1


# ---- a hostile Hub repo --------------------------------------------------------------------------------
def _hub_repo(srv: object, files: dict[str, bytes]) -> None:
    import hashlib

    from hub_server import Repo

    sha = hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
    repo = Repo("evil/panel", "dataset", private=False)
    repo.commits[sha] = files
    repo.branches["main"] = sha
    srv.repos[("dataset", "evil/panel")] = repo


def _parquet_bytes(df: pl.DataFrame, tmp: Path) -> bytes:
    p = tmp / "x.parquet"
    df.write_parquet(p)
    return p.read_bytes()


def test_hub_pull_refuses_escaping_name_and_oversized_file_before_download(tmp_path: Path) -> None:
    from hub_server import HubServer

    personas = _parquet_bytes(pl.DataFrame({"persona_id": ["a", "b"], "weight": [0.5, 0.5]}), tmp_path)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    with HubServer() as srv:
        env["HF_ENDPOINT"] = srv.url
        _hub_repo(srv, {"data/personas/train-00000-of-00001.parquet": personas,
                        "personagen.json": json.dumps({"calibration": "../../../../escaped"}).encode()})
        r = cli("pull", "evil/panel", "-o", str(tmp_path / "out"), env=env)
        assert r.returncode == 2 and "calibration" in r.stderr and not (tmp_path / "out").exists(), r.stderr
        assert not list(tmp_path.rglob("escaped"))

        junk = b"\0" * (3 * 2**20)  # 3 MB of junk where a persona file should be, and an unrelated blob
        _hub_repo(srv, {"data/personas/train-00000-of-00001.parquet": personas, "data/personas/junk.parquet": junk,
                        "weights.bin": junk, "personagen.json": b"{}"})
        srv.requests.clear()
        r = cli("pull", "evil/panel", "-o", str(tmp_path / "out"), env={**env, "PERSONAGEN_MAX_PULL_MB": "1"})
        assert r.returncode == 2 and "junk.parquet" in r.stderr and "exceeds" in r.stderr, r.stderr
        assert not [q for q in srv.requests if "/resolve/" in q["path"]]  # refused from the listing alone
        r = cli("pull", "evil/panel", "-o", str(tmp_path / "out2"), env=env)  # 512 MB default limit
        assert r.returncode == 2 and "junk.parquet" in r.stderr and "parquet" in r.stderr
        assert not [q for q in srv.requests if q["path"].endswith("weights.bin")]  # never fetched


def test_publish_cleans_temp_folders_of_killed_runs(tmp_path: Path) -> None:
    from hub_server import HubServer
    from test_publish import make_library as make_published_library

    lib = make_published_library(tmp_path / "lib")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmpdir / f"personagen-publish.pid{dead}.abc"
    (stale / "data").mkdir(parents=True)
    with HubServer(token="hf_testtokenABCDEFGH") as srv:
        env = {"HF_TOKEN": "hf_testtokenABCDEFGH", "HF_ENDPOINT": srv.url, "HF_HOME": str(tmp_path / "hf"),
               "HF_HUB_DISABLE_TELEMETRY": "1", "TMPDIR": str(tmpdir)}
        r = cli("publish", str(lib.path), "--repo", "acme/panel", env=env)
    assert r.returncode == 0, r.stderr
    assert not stale.exists() and list(tmpdir.iterdir()) == []


def test_elicit_beside_calibrate_keeps_every_history_entry(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib", n=6)
    splits = ["train"] * 4 + ["valid", "test"]
    qs = [{"qid": f"c{j}", "question": f"C{j}?", "options": ["Yes", "No"], "split": sp,
           "targets": {"overall": {"Yes": 0.7, "No": 0.3}}} for j, sp in enumerate(splits)]
    s_cal = Survey.from_records("C", qs).save(tmp_path / "c.parquet")
    s2 = make_survey(tmp_path / "s2.parquet", "S2", nq=3)
    with EchoServer(delay_s=0.02) as srv:
        base = ["--backend", "openai", "--base-url", srv.base_url, "--model", "m", "--no-progress"]
        assert cli("elicit", str(lib.path), "--survey", str(s_cal), *base).returncode == 0
        procs = [popen("elicit", str(lib.path), "--survey", str(s2), *base) for _ in range(2)]
        procs += [popen("calibrate", str(lib.path), "--survey", str(s_cal), "--name", f"cal{i}") for i in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    stages = [h["stage"] for h in Library.open(lib.path).manifest["history"]]
    assert stages.count("elicit") == 3 and stages.count("calibrate") == 2
    assert Library.open(lib.path).calibrations() == ["cal0", "cal1"]
    assert len(srv.calls) == 6 * 6 + 6 * 3 and max(srv.calls.values()) == 1
