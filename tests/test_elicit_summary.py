"""elicit's result type: an ElicitSummary, and ElicitFailed (exit 1) when answers failed after retries, from
Python as from the CLI. A real loopback HTTP server refuses some requests with HTTP 400 (not retried)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import yes_no_library
from loopback import LoopbackServer

from personagen import ElicitOptions
from personagen.cli import main
from personagen.elicit import ElicitFailed, ElicitSummary, elicit_library
from personagen.surveys import load

BAD = (400, {}, {"error": {"message": "malformed request"}})


def _kw(srv: LoopbackServer) -> dict:
    return dict(backend="openai", base_url=srv.base_url, model=srv.model, progress=False, constrain="none",
                concurrency=1)


def test_python_call_raises_naming_how_many_failed(tmp_path: Path) -> None:
    lib, survey = yes_no_library(tmp_path)
    with LoopbackServer() as srv:
        srv.script.extend([BAD, BAD])
        with pytest.raises(ElicitFailed, match=r"^2 answer\(s\) failed after retries") as e:
            elicit_library(lib, load(survey), ElicitOptions(**_kw(srv)))
        s = e.value.summary
        assert isinstance(s, ElicitSummary) and s.errors == 2 and "HTTP 400" in s.first_error
        assert s.answers_written == 4 and lib.responses().select("persona_id", "qid").unique().height == 4
        again = lib.elicit(load(survey), ElicitOptions(**_kw(srv)))  # the rerun asks only the two failed answers
    assert again.ok and again.answers_written == 2 and again.requests_sent == 2 and srv.hits == 8
    assert again.answers_total == 6 and again.to_dict()["errors"] == 0
    with pytest.warns(DeprecationWarning, match="summary.answers_written"):
        assert again["answers_written"] == 2


def test_cli_prints_the_summary_then_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lib, survey = yes_no_library(tmp_path)
    with LoopbackServer() as srv:
        srv.script.append(BAD)
        with pytest.raises(SystemExit) as e:
            main(["elicit", str(lib.path), "--survey", str(survey), "--backend", "openai", "--base-url",
                  srv.base_url, "--model", srv.model, "--no-progress", "--constrain", "none", "--concurrency", "1",
                  "--json"])
    out = capsys.readouterr()
    assert e.value.code == 1
    s = json.loads(out.out.strip().splitlines()[-1])
    assert s["errors"] == 1 and s["answers_written"] == 5 and s["engine"] == "single"
    assert "1 answer(s) failed after retries" in out.err and "Traceback" not in out.err
