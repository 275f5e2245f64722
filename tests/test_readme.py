"""README's notebook session runs as written (issue 20 §4): the Python block under `<!-- notebook-session -->`,
executed offline against the bundled local model on a synthetic census file and wave (tests/data/make_fixtures.py)
named as the README names them; only the panel is made smaller (50 personas -> 4, 4 questions per split -> 2)."""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
SHRINK = {"n=50": "n=4", "per_split=4": "per_split=2"}


def notebook_session() -> str:
    """The README's notebook session, as a user would paste it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- notebook-session -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md lost its notebook session block"
    return m.group(1)


def test_the_session_is_build_elicit_calibrate_estimate_by_group_plot() -> None:
    code = notebook_session()
    verbs = re.findall(r"(pg\.build|lib\.elicit|lib\.calibrate|lib\.estimate|pg\.plot_estimate)\(", code)
    assert verbs == ["pg.build", "lib.elicit", "lib.calibrate", "lib.estimate", "pg.plot_estimate"]
    assert "by=" in code and len([ln for ln in code.splitlines() if ln.strip()]) <= 7


@pytest.mark.slow
@pytest.mark.llm
def test_readme_notebook_session_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from personagen.llm import local_available

    if reason := local_available():
        pytest.skip(reason)
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from make_fixtures import make_opinionqa_wave, make_pums

    pums = make_pums(tmp_path, 400, state="VT", seed=0)
    (tmp_path / "psam_p50.csv.gz").write_bytes(gzip.compress(Path(pums).read_bytes()))
    make_opinionqa_wave(tmp_path, seed=0, name="American_Trends_Panel_W26")
    code = notebook_session()
    for big, small in SHRINK.items():
        assert code.count(big) == 1, big
        code = code.replace(big, small)
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    with pytest.warns(UserWarning, match="effective sample size"):  # 4 personas: the thin-panel caveat
        exec(compile(code, "README.md", "exec"), env)  # noqa: S102 - the README's own lines
    est = env["est"]
    overall = est.filter(pl.col("group") == "overall")
    assert overall.height > 0 and overall["estimate"].is_not_null().all()
    assert set(est.filter(pl.col("by") == "sex")["group"]) <= {"Female", "Male"} and (est["by"] == "sex").any()
    assert (tmp_path / "estimate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((tmp_path / "LIB" / "manifest.json").read_text())["history"]
    recorded = {h["stage"]: h.get("options") for h in history}
    assert recorded["elicit"]["per_split"] == 2 and recorded["calibrate"]["name"] == "w26"
