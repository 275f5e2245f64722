"""The Python API a notebook user expects (issue 20 §4): each verb takes its stage's options object, which help()
shows, the CLI builds and the manifest records whole; a bad option names the Python argument (`BadInput.field`)
and only the CLI turns it into its flag."""

from __future__ import annotations

import inspect
import pydoc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import personagen as pg
from personagen.cli import main
from personagen.errors import BadInput
from personagen.surveys import Survey

N, Q = 30, 15


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[pg.Library, Survey, Path]:
    """LIB: 30 personas in 3 regions, answers to 15 two-option questions (no model), calibrated once as "c"."""
    w = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(0)
    survey = Survey.from_records("S", [{"qid": f"q{j}", "question": f"Q{j}?", "options": ["Yes", "No"],
                                        "targets": {"overall": {"Yes": 0.3 + 0.02 * j, "No": 0.7 - 0.02 * j}}}
                                       for j in range(Q)])
    survey.save(w / "S.parquet")
    lib = pg.Library.init(w / "LIB", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [f"p{i}" for i in range(N)], "source": ["census"] * N,
                                     "region": ["A", "B", "C"] * (N // 3)}))
    p = rng.uniform(0.05, 0.95, size=(N, Q))
    lib.append_responses(pl.DataFrame([
        {"persona_id": f"p{i}", "survey_id": "S", "qid": f"q{j}", "option": o, "prob": float(v), "mode": "logprobs",
         "model": "m", "n": 1, "valid": True}
        for i in range(N) for j in range(Q) for o, v in (("Yes", p[i, j]), ("No", 1 - p[i, j]))]))
    with pytest.warns(UserWarning):  # a small panel's caveats (thin held-out splits)
        lib.calibrate(survey, pg.CalibrateOptions(name="c", n_boot=20, replicates=5))
    return pg.Library.open(lib.path), survey, w


@pytest.mark.parametrize("verb, cls", [
    (pg.Library.elicit, "ElicitOptions"), (pg.Library.calibrate, "CalibrateOptions"),
    (pg.Library.estimate, "EstimateOptions"), (pg.Library.describe, "DescribeOptions"),
    (pg.Library.publish, "PublishOptions"), (pg.pull, "PullOptions")])
def test_each_verb_shows_its_options_object_in_help(verb: object, cls: str) -> None:
    assert cls in str(inspect.signature(verb).parameters["options"].annotation)
    assert cls in pydoc.render_doc(verb)
    assert getattr(pg, cls).__dataclass_params__.frozen  # the object is importable from the package face


def test_calibrate_records_its_options_whole_and_they_rebuild_the_object(small: tuple) -> None:
    lib, _, _ = small
    entry = [h for h in lib.manifest["history"] if h["stage"] == "calibrate"][-1]
    assert pg.CalibrateOptions(**entry["options"]) == pg.CalibrateOptions(name="c", n_boot=20, replicates=5)


def test_keyword_options_are_deprecated_but_give_the_same_fit(small: tuple) -> None:
    lib, survey, _ = small
    opts = dict(n_boot=20, replicates=5, write=False)
    with pytest.warns(UserWarning) as caveats:
        new = lib.calibrate(survey, pg.CalibrateOptions(**opts))
    assert {w.filename for w in caveats} == {__file__}  # a notebook sees its own line, not personagen's
    with pytest.warns(DeprecationWarning, match=r"pass CalibrateOptions\(n_boot=\.\.\.") as caught:
        old = lib.calibrate(survey, **opts)
    assert [w.filename for w in caught if w.category is DeprecationWarning] == [__file__]  # the caller's line
    np.testing.assert_array_equal(new.weights["weight"].to_numpy(), old.weights["weight"].to_numpy())
    with pytest.raises(BadInput, match="not both") as e:
        lib.calibrate(survey, pg.CalibrateOptions(), n_boot=20)
    assert e.value.field == "options"


BAD = {  # a bad value given from Python -> the Python argument the error names
    "method": lambda lib, s, w: lib.calibrate(s, pg.CalibrateOptions(method="nope")),
    "folds": lambda lib, s, w: lib.calibrate(s, pg.CalibrateOptions(folds=1)),
    "group": lambda lib, s, w: lib.calibrate(s, pg.CalibrateOptions(group="Nowhere")),
    "replicates": lambda lib, s, w: pg.CalibrateOptions(replicates=1),
    "census_margins": lambda lib, s, w: lib.calibrate(None, pg.CalibrateOptions(census_margins="shoe_size")),
    "min_mass": lambda lib, s, w: lib.elicit(s, pg.ElicitOptions(min_mass=1.5)),
    "max_questions": lambda lib, s, w: pg.ElicitOptions(max_questions=0),
    "level": lambda lib, s, w: lib.estimate(s, pg.EstimateOptions(level=2)),
    "by": lambda lib, s, w: lib.estimate(s, pg.EstimateOptions(by="shoe_size")),
    "questions": lambda lib, s, w: lib.estimate(s, pg.EstimateOptions(questions="nope")),
    "private": lambda lib, s, w: lib.publish("acme/x", pg.PublishOptions(private=True), out=w / "P"),
    "repo": lambda lib, s, w: lib.publish("not a repo", out=w / "P"),
    "revision": lambda lib, s, w: pg.pull(w / "P", w / "L2", pg.PullOptions(revision=" ")),
    "options": lambda lib, s, w: lib.calibrate(s, {"method": "sparse"}),
    "patch_ratio": lambda lib, s, w: _endow_options(budget=3, patch_ratio=2.0),
    "test_fraction": lambda lib, s, w: _mixture_options(test_fraction=1.0),
}


def _endow_options(**kw: object) -> object:
    from personagen.endow import EndowOptions

    return EndowOptions(**kw)


def _mixture_options(**kw: object) -> object:
    from personagen.mixture import MixtureRunOptions

    return MixtureRunOptions(**kw)


@pytest.mark.parametrize("field", list(BAD))
def test_a_bad_python_option_names_the_python_argument(small: tuple, field: str) -> None:
    lib, survey, w = small
    with pytest.raises(BadInput) as e:
        BAD[field](lib, survey, w)
    assert e.value.field == field and str(e.value).startswith((field + " ", field + ":")), str(e.value)
    assert "--" not in str(e.value).split(":")[0]
    assert not (w / "P").exists()


@pytest.mark.parametrize("args, line", [
    (["calibrate", "LIB", "--census-margins", "shoe_size"], "error: --census-margins: personas have no column"),
    (["calibrate", "LIB", "--survey", "S.parquet", "--target", "Nowhere"], "error: --target 'Nowhere': not in"),
    (["estimate", "LIB", "--survey", "S.parquet", "--by", "shoe_size"], "error: --by shoe_size: personas.parquet"),
    (["estimate", "LIB", "--survey", "S.parquet", "--level", "2"], "error: --level 2.0: must be a number"),
    (["estimate", "LIB", "--survey", "S.parquet", "--questions", "nope"], "error: --questions: nope not in"),
    (["pull", "not a repo", "-o", "PL"], "error: REPO 'not a repo': invalid repo id"),  # an argument
])
def test_the_cli_names_the_flag_for_the_same_bad_value(small: tuple, args: list[str], line: str,
                                                       capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    monkeypatch.chdir(small[2])
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(line), err


def test_one_mapping_from_python_arguments_to_flags() -> None:
    from personagen.commands import load
    from personagen.commands.flags import flag

    assert flag("group", load("calibrate")) == "--target"  # read off the command's own declarations
    assert flag("max_tokens_budget", load("elicit")) == "--token-budget"
    assert flag("min_mass", load("elicit")) == "--min-mass"
    assert flag("repo", load("pull")) == "REPO"  # an argument, not a flag
    assert flag("n_updates") == "--n-updates"


def test_recorded_options_hold_no_secret() -> None:
    from personagen.llm import register_secret
    from personagen.options import options_record

    key = "sk-test-0123456789abcdef"
    register_secret(key)
    from personagen.llm import redact

    rec = options_record(pg.ElicitOptions(backend="openai", base_url=f"https://bob:{key}@api.example/v1",
                                          model="m", questions=("q1", "q2")), redact)
    assert rec["base_url"] == "https://api.example/v1" and rec["questions"] == ["q1", "q2"]
    assert key not in repr(rec)


def test_publish_and_pull_give_a_library_with_the_verbs(small: tuple, tmp_path: Path) -> None:
    lib, survey, _ = small
    res = lib.publish("acme/api-panel", pg.PublishOptions(calibration="c"), out=tmp_path / "P")
    assert res["calibration"] == "c" and res["n_personas"] == N
    pulled = pg.pull(tmp_path / "P", tmp_path / "L2")
    assert isinstance(pulled, pg.Library) and pulled.personas().height == N
    assert pulled.manifest["history"][-1]["options"] == {"revision": None}  # the options, recorded whole
