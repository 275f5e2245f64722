"""Collisions (issue 22): two commands creating one folder, a library made while a slow build ran, a kill -9
between answers and their record, links planted in a library, two stages writing the personas table at once.

Real processes (`python -m personagen.cli`), real files, real loopback model servers. A process is paused with
SIGSTOP at the moment that matters (inside its staged folder, waiting on the model) so each race is played the
same way every time."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from enrich_helpers import census_library
from loopback import LoopbackServer
from openai_echo import EchoServer
from test_hostile import cli, make_library, popen
from test_mixture import _scripted_numbers

from personagen.errors import BadInput
from personagen.library import Library
from personagen.store import staged_dir, undo_on_bad_input
from personagen.surveys import Survey


def _stop_inside(proc: subprocess.Popen, folder: Path, pattern: str, timeout: float = 120) -> None:
    """Pause `proc` (SIGSTOP) as soon as a file matching `pattern` appears in `folder` (its staged folder)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and proc.poll() is None:
        if any(folder.glob(pattern)):
            os.kill(proc.pid, signal.SIGSTOP)
            return
        time.sleep(0.002)
    raise AssertionError(f"{pattern} never appeared (rc {proc.poll()}: {proc.communicate()[1][-500:]})")


def _one_line_exit_2(r: subprocess.CompletedProcess | tuple[int, str], *words: str) -> None:
    rc, err = (r.returncode, r.stderr) if isinstance(r, subprocess.CompletedProcess) else r
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith((".partial", ".claim", ".old"))]


# ---- two commands creating one folder ------------------------------------------------------------------
def test_second_build_to_a_folder_being_built_is_refused(vt_pums: Path, tmp_path: Path) -> None:
    out = tmp_path / "L"
    a = popen("build", "-o", str(out), "--census", str(vt_pums), "-n", "20")
    _stop_inside(a, tmp_path, ".L.pid*.partial")
    try:
        b = cli("build", "-o", str(out), "--census", str(vt_pums), "-n", "20", "--seed", "5")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    _, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    _one_line_exit_2(b, str(out), "another command is creating it")
    lib = Library.open(out)  # the first build's library, whole
    assert lib.manifest["seed"] == 0 and lib.personas().height == 20
    assert [h["stage"] for h in lib.manifest["history"]] == ["build"]
    _no_leftovers(tmp_path)


def test_slow_build_never_replaces_a_library_made_meanwhile(vt_pums: Path, tmp_path: Path) -> None:
    out = tmp_path / "L"
    a = popen("build", "-o", str(out), "--census", str(vt_pums), "-n", "20")
    _stop_inside(a, tmp_path, ".L.pid*.partial")
    try:  # meanwhile a library appears at L (made by other means) and is paid into: answers and the cache
        lib = make_library(out, n=3)
        lib.append_responses(pl.DataFrame({"persona_id": ["p0"], "survey_id": ["S"], "qid": ["q"], "option": ["Yes"],
                                           "prob": [1.0], "mode": ["sample"], "model": ["m"], "n": [1],
                                           "valid": [True]}))
        sqlite3.connect(lib.llm_db).execute("CREATE TABLE paid (x)").connection.close()
    finally:
        os.kill(a.pid, signal.SIGCONT)
    _, err = a.communicate(timeout=120)
    _one_line_exit_2((a.returncode, err), str(out), "appeared while this command ran")
    kept = Library.open(out)
    assert kept.personas().height == 3 and kept.responses().height == 1 and kept.llm_db.is_file()
    _no_leftovers(tmp_path)


def test_overwrite_never_replaces_a_library_a_writer_holds(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "L", n=2)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from personagen.locking import library_lock\n"
                               "with library_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)",
                               str(lib.path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BadInput, match="a command is writing to it"), staged_dir(lib.path, overwrite=True) as tmp:
            (tmp / "x").write_text("new")
    finally:
        holder.kill()
        holder.wait()
    assert Library.open(lib.path).personas().height == 2
    _no_leftovers(tmp_path)


def test_bad_input_cleanup_never_removes_a_library_another_process_made(tmp_path: Path) -> None:
    out = tmp_path / "L"  # a run that would create L fails on bad input after another process made L
    with pytest.raises(BadInput), undo_on_bad_input(out):
        subprocess.run([sys.executable, "-c", "import sys; from personagen.library import Library\n"
                        "Library.init(sys.argv[1])", str(out)], check=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        raise BadInput("unknown model")
    assert Library.open(out).manifest["history"] == []
    with pytest.raises(BadInput), undo_on_bad_input(tmp_path / "M"):  # one this process made is removed
        with staged_dir(tmp_path / "M") as tmp:
            Library.init(tmp)
        raise BadInput("unknown model")
    assert not (tmp_path / "M").exists()


def test_second_pull_to_a_folder_being_pulled_is_refused(tmp_path: Path) -> None:
    n = 200_000  # a panel large enough that the first pull can be caught inside its staged folder
    panel = tmp_path / "panel"
    (panel / "data" / "personas").mkdir(parents=True)
    pl.DataFrame({"persona_id": [f"p{i}" for i in range(n)], "weight": np.full(n, 1 / n)}).write_parquet(
        panel / "data" / "personas" / "train-00000-of-00001.parquet")
    (panel / "personagen.json").write_text(json.dumps({"format": "personagen-panel", "calibration": "c"}))
    work = tmp_path / "work"
    work.mkdir()
    a = popen("pull", str(panel), "-o", str(work / "L2"))
    _stop_inside(a, work, ".L2.pid*.partial")
    try:
        b = cli("pull", str(panel), "-o", str(work / "L2"))
    finally:
        os.kill(a.pid, signal.SIGCONT)
    _, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    _one_line_exit_2(b, "L2", "another command is creating it")
    lib = Library.open(work / "L2")
    assert lib.personas().height == n and [h["stage"] for h in lib.manifest["history"]] == ["pull"]
    _no_leftovers(work)


# ---- kill -9 between answers written and their record -------------------------------------------------
def test_killed_elicit_gets_its_history_entry_on_the_rerun(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib", n=4)
    qs = [{"qid": f"q{j}", "question": f"Q{j}?", "options": ["Yes", "No"],
           "targets": {"overall": {"Yes": 0.5, "No": 0.5}}} for j in range(3)]
    survey = Survey.from_records("K", qs).save(tmp_path / "k.parquet")
    release = threading.Event()
    hits = []

    def responder(body: dict) -> str:
        hits.append(1)
        if len(hits) == 1:
            time.sleep(2.1)  # past the 2 s flush interval: the first answer goes to a part file
        else:
            release.wait(60)  # the next one hangs until the test has killed the run
        return "A"

    with LoopbackServer(model="m", responder=responder) as srv:
        base = ["--survey", str(survey), "--backend", "openai", "--base-url", srv.base_url, "--model", "m",
                "--no-progress", "--concurrency", "1"]
        p = popen("elicit", str(lib.path), *base)
        try:
            t_end = time.monotonic() + 60
            while not list((lib.path / ".responses").glob("part-*.parquet")) and time.monotonic() < t_end:
                time.sleep(0.01)
            t_end = time.monotonic() + 10  # the flush has updated the run's pending entry (none on main: 10 s)
            while time.monotonic() < t_end and not any('"answers_written": 1' in f.read_text()
                                                       for f in lib.path.glob(".run-*.json")):
                time.sleep(0.01)
            assert p.poll() is None
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        finally:
            release.set()
        r = cli("elicit", str(lib.path), *base)
        assert r.returncode == 0, r.stderr
    hist = [h for h in Library.open(lib.path).manifest["history"] if h["stage"] == "elicit"]
    answered = Library.open(lib.path).responses().select("persona_id", "qid").unique().height
    assert answered == 12
    assert [h.get("interrupted", False) for h in hist] == [True, False], hist
    assert hist[0]["answers_written"] == 1 and hist[0]["requests_sent"] >= 1
    assert sum(h["answers_written"] for h in hist) == answered
    assert not list(lib.path.glob(".run-*"))


# ---- links planted in a library -------------------------------------------------------------------------
def test_links_planted_in_a_library_are_refused(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib", n=3)
    splits = ["train"] * 4 + ["valid", "test"]
    qs = [{"qid": f"c{j}", "question": f"C{j}?", "options": ["Yes", "No"], "split": sp,
           "targets": {"overall": {"Yes": 0.7, "No": 0.3}}} for j, sp in enumerate(splits)]
    survey = Survey.from_records("C", qs).save(tmp_path / "c.parquet")
    lib.append_responses(pl.DataFrame([
        {"persona_id": f"p{i}", "survey_id": "C", "qid": f"c{j}", "option": o, "prob": pr, "mode": "logprobs",
         "model": "m", "n": 1, "valid": True}
        for i in range(3) for j in range(6) for o, pr in (("Yes", 0.2 + 0.3 * i), ("No", 0.8 - 0.3 * i))]))
    outside = tmp_path / "outside"
    outside.mkdir()
    with EchoServer() as srv:
        elicit = ["elicit", str(lib.path), "--survey", str(survey), "--backend", "openai", "--base-url",
                  srv.base_url, "--model", "m", "--no-progress", "--max-questions", "1"]
        for name, target, cmd in ((".lock", outside / "lockfile", ["calibrate", str(lib.path), "--survey",
                                                                   str(survey)]),
                                  ("llm.sqlite", outside / "evil.sqlite", elicit),
                                  ("calibrations", outside, ["calibrate", str(lib.path), "--survey", str(survey)])):
            (lib.path / name).unlink(missing_ok=True)
            (lib.path / name).symlink_to(target)
            _one_line_exit_2(cli(*cmd), name, "symbolic link")
            assert list(outside.iterdir()) == [], name  # nothing created or written through the link
            (lib.path / name).unlink()
        assert srv.total == 0
    assert Library.open(lib.path).calibrations() == []  # the library itself opens again once the links are gone


# ---- two stages writing the personas table at once ------------------------------------------------------
def test_enrich_beside_mixture_keeps_both_stages_personas(tmp_path: Path) -> None:
    lib = census_library(tmp_path / "lib", n=3)
    target = tmp_path / "target.csv"
    pl.DataFrame({"offer": list(np.random.default_rng(1).integers(0, 101, 40))}).write_csv(target)
    mixture_done = threading.Event()
    enrich_seen = threading.Event()

    def responder(body: dict) -> str | None:
        msgs = body.get("messages") or []
        system = next((m["content"] for m in msgs if m.get("role") == "system"), "")
        user = msgs[-1]["content"] if msgs else ""
        if any(k in user for k in ("crafted system prompt", "single number", "ratings only")):
            return _scripted_numbers(user, system, body)
        enrich_seen.set()
        mixture_done.wait(120)  # enrich has read the personas; it writes them back after mixture wrote its own
        return "CONSISTENT" if "Check this person's profile" in user else "Keeps a tidy garden."

    with LoopbackServer(model="scripted", responder=responder) as srv:
        base = ["--backend", "openai", "--base-url", srv.base_url, "--model", "scripted"]
        e = popen("enrich", str(lib.path), "--categories", "quirks", "--max-retries", "0", "--concurrency", "1",
                  *base)
        try:
            assert enrich_seen.wait(120), e.communicate()[1][-500:]
            m = cli("mixture", "--target", str(target), "--column", "offer", "--out", str(lib.path), "--components",
                    "2", "--iters", "1", "--samples", "3", "--improve-rounds", "0", *base)
        finally:
            mixture_done.set()
        _, err = e.communicate(timeout=120)
    assert m.returncode == 0, m.stderr
    assert e.returncode == 0, err
    df = Library.open(lib.path).personas()
    assert df["persona_id"].to_list()[:3] == ["p000", "p001", "p002"]  # enriched in place, in their order
    assert df.filter(pl.col("source") == "census")["enriched"].all()
    assert df.filter(pl.col("source") == "mixture").height == 2  # not lost to enrich's write
    assert [h["stage"] for h in Library.open(lib.path).manifest["history"]] == ["mixture", "enrich"]
