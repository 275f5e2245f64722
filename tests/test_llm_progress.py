"""Progress lines (personagen.llm.progress): counts, rate and time left at least every interval, on a timer, so a
slow call out or a run of many short batches still reports; off a terminal in a real command too."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from openai_echo import EchoServer

from personagen.library import Library
from personagen.llm.progress import LineProgress
from personagen.surveys import Survey

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<desc>.+): (?P<n>\d+)/(?P<total>\d+) (?P<unit>\w+) \(\d+%\), (?P<rate>[\d.e+-]+) \w+/s, "
                  r"(?P<el>\S+) elapsed, (~(?P<left>\S+) left|time left unknown)")


def test_lines_come_on_a_timer_with_rate_and_time_left() -> None:
    out = io.StringIO()
    bar = LineProgress(10, "work", unit="item", file=out, interval_s=0.2)
    bar.update(4)  # then nothing for a while: the timer still reports
    time.sleep(0.9)
    bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3, lines
    m = LINE.match(lines[0])
    assert m and m["n"] == "4" and m["total"] == "10" and m["unit"] == "item" and m["left"], lines[0]
    rate = float(m["rate"])
    assert 0 < rate <= 4 / 0.2 + 1e-9  # 4 items over at least one interval
    assert LINE.match(lines[-1])["n"] == "5"


def test_resumed_run_rates_only_this_process_work() -> None:
    out = io.StringIO()
    with LineProgress(100, "finetune", unit="step", file=out, interval_s=0.2, initial=90) as bar:
        time.sleep(0.3)
        bar.update(1)
    last = LINE.match(out.getvalue().splitlines()[-1])
    assert last["n"] == "91" and float(last["rate"]) < 5  # 1 step in >= 0.3 s, not 91


def test_elicit_reports_while_a_slow_call_is_out(tmp_path: Path) -> None:
    """Off a terminal, a request slower than the interval still gets lines with counts, rate and time left."""
    lib = Library.init(tmp_path / "lib", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": ["a", "b"], "source": ["census"] * 2,
                                     "text_narrative": ["I am A.", "I am B."]}))
    Survey.from_records("S", [{"qid": "q", "question": "Q?", "options": ["Yes", "No"],
                               "targets": {"overall": {"Yes": 0.5, "No": 0.5}}}]).save(tmp_path / "s.parquet")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PERSONAGEN_PROGRESS_S": "0.3"}
    with EchoServer(delay_s=0.7) as srv:
        r = subprocess.run([sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey",
                            str(tmp_path / "s.parquet"), "--backend", "openai", "--base-url", srv.base_url,
                            "--model", "m", "--concurrency", "1"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [m for x in r.stderr.splitlines() if (m := LINE.match(x)) and m["desc"] == "elicit logprobs"]
    assert any(m["n"] == "0" for m in lines), r.stderr  # while the first call was out
    assert lines[-1]["n"] == "2" and lines[-1]["total"] == "2", r.stderr
