"""Survey loaders, splits and the `surveys` CLI, on the real files in ../shared/data and small hand-made ones."""

from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from personagen.errors import BadInput
from personagen.surveys import (
    OVERALL,
    assign_splits,
    import_generic,
    import_opinionqa,
    import_subpop,
    import_survey,
    import_wvs,
    kfold_groups,
    load,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "datasets" / "surveys" / "example_generic.yaml"


def _wave(shared: Path, w: str) -> Path:
    p = shared / "opinionqa" / "human_resp" / f"American_Trends_Panel_{w}"
    if not p.is_dir():
        pytest.skip(f"{p} not present")
    return p


def _expected_shares(counts: dict, refs: list[str], drop: bool = True) -> dict[str, float]:
    opts = [o for o in refs if not (drop and o == "Refused")]
    tot = sum(counts.get(o, 0.0) for o in opts)
    return {o: counts.get(o, 0.0) / tot for o in opts}


# ---- OpinionQA ----------------------------------------------------------------------------------
@pytest.mark.parametrize("wave", ["W26", "W82"])
def test_opinionqa_overall_is_sum_of_regions(shared_data: Path, wave: str) -> None:
    folder = _wave(shared_data, wave)
    s = import_opinionqa(folder)
    assert s.survey_id == f"opinionqa_{wave}"
    region = json.loads((folder / "CREGION_data.json").read_text())
    age = json.loads((folder / "AGE_data.json").read_text())
    info = {r["key"]: r for r in csv.DictReader((folder / "info.csv").open())}
    assert set(s.qids) == set(region) & set(info)
    overall = s.distributions(OVERALL)
    young = s.distributions("18-29")
    for q in s.qids:
        refs = ast.literal_eval(info[q]["references"])
        summed: Counter = Counter()
        for g, c in region[q].items():
            if g not in ("MC_options", "question_text"):
                summed.update(c)
        exp = _expected_shares(dict(summed), refs)
        assert "Refused" not in s.options(q)
        assert s.options(q) == [o for o in refs if o != "Refused"]
        np.testing.assert_allclose([overall[q][o] for o in exp], list(exp.values()), atol=1e-12)
        if sum(age[q]["18-29"].get(o, 0) for o in exp):
            exp_y = _expected_shares(age[q]["18-29"], refs)
            np.testing.assert_allclose([young[q][o] for o in exp_y], list(exp_y.values()), atol=1e-12)
    attrs = s.attributes()
    assert set(attrs) == {"overall", "AGE", "CREGION", "EDUCATION", "INCOME", "POLIDEOLOGY", "POLPARTY", "RACE", "SEX"}
    assert "nan" not in s.groups() and "Refused" not in s.groups()


def test_opinionqa_ordinals_and_keep_refused(shared_data: Path) -> None:
    s = import_opinionqa(_wave(shared_data, "W82"))
    assert s.ordinal("GAP21Q1_W82") == [1.0, 2.0, 3.0, 4.0]
    assert all(s.ordinal(q) is not None for q in s.qids)
    keep = import_opinionqa(_wave(shared_data, "W82"), refused="keep")
    assert keep.options("GAP21Q1_W82")[-1] == "Refused"
    assert keep.ordinal("GAP21Q1_W82") is None  # Refused has no position -> no mapping for the question
    d = keep.distributions()["GAP21Q1_W82"]
    assert d["Refused"] > 0 and abs(sum(d.values()) - 1) < 1e-12
    # "Not sure" without a position -> no ordinal mapping
    w32 = import_opinionqa(_wave(shared_data, "W32"))
    assert "Not sure" in w32.options("WANTMOVE_W32") and w32.ordinal("WANTMOVE_W32") is None


def test_opinionqa_disagreement_folder_refused(shared_data: Path) -> None:
    p = shared_data / "opinionqa" / "human_resp" / "Pew_American_Trends_Panel_disagreement_500"
    if not p.is_dir():
        pytest.skip("disagreement_500 not present")
    with pytest.raises(BadInput, match="no <ATTR>_data.json"):
        import_opinionqa(p)


def _mini_wave(tmp: Path, count: object = 3.0) -> Path:
    w = tmp / "American_Trends_Panel_W99"
    w.mkdir()
    with (w / "info.csv").open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["", "key", "option_mapping", "question", "references", "option_ordinal"])
        wr.writerow([0, "Q1_W99", "{1.0: 'Yes', 2.0: 'No', 99.0: 'Refused'}", "Do you?", "['Yes', 'No', 'Refused']",
                     "[1.0, 2.0]"])
    q = {"MC_options": ["Yes", "No", "Refused"], "question_text": "Do you?"}
    (w / "CREGION_data.json").write_text(json.dumps({"Q1_W99": {**q, "South": {"Yes": 1.0, "No": count},
                                                                "West": {"Yes": 2.0, "Refused": 1.0}}}))
    (w / "RACE_data.json").write_text(json.dumps({"Q1_W99": {**q, "Other": {"Yes": 1.0, "No": 1.0}}}))
    (w / "POLPARTY_data.json").write_text(json.dumps({"Q1_W99": {**q, "Other": {"No": 2.0}, "nan": {}}}))
    return w


def test_opinionqa_mini_wave_label_clash(tmp_path: Path) -> None:
    s = import_opinionqa(_mini_wave(tmp_path), seed=1)
    assert s.distributions()["Q1_W99"] == pytest.approx({"Yes": 0.5, "No": 0.5})
    assert s.attributes()["RACE"] == ["Other (RACE)"] and s.attributes()["POLPARTY"] == ["Other (POLPARTY)"]
    assert s.distributions("Other (POLPARTY)")["Q1_W99"] == {"Yes": 0.0, "No": 1.0}


def test_opinionqa_bad_counts(tmp_path: Path) -> None:
    w = _mini_wave(tmp_path, count=float("nan"))
    with pytest.raises(BadInput, match="CREGION_data.json: Q1_W99/South/No"):
        import_opinionqa(w)
    with pytest.raises(BadInput, match="does not exist"):
        import_opinionqa(tmp_path / "nope")


# ---- SubPOP ---------------------------------------------------------------------------------------
def test_subpop_eval(shared_data: Path) -> None:
    p = shared_data / "subpop" / "subpop-eval" / "subpop_eval.jsonl"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    s = import_subpop(p)
    assert s.survey_id == "subpop_eval_gss2022"
    assert len(s.qids) == 133 and len(s.groups()) == 22
    with pytest.raises(BadInput, match="'overall' not in survey"):
        s.distributions(OVERALL)
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    r = next(x for x in rows if x["qkey"] == "natspac" and x["group"] == "South")
    d = s.distributions("South")["natspac"]
    np.testing.assert_allclose(list(d.values()), r["responses"], atol=1e-12)
    assert s.ordinal("natspac") == [1.0, 2.0, 3.0]
    assert s.ordinal("pres16") is None  # -1 marks non-ordinal options
    keep = import_subpop(p, refused="keep")
    r2 = next(x for x in rows if x["refusal_rate"] > 0)
    d2 = keep.distributions(r2["group"])[r2["qkey"]]
    assert d2["Refused"] == pytest.approx(r2["refusal_rate"])
    assert sum(d2.values()) == pytest.approx(1.0)


def test_subpop_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"qkey": "a", "attribute": "SEX", "group": "Male", "question": "q?",
                             "options": ["x", "y", "Refused"], "ordinal": [1, 2], "responses": [0.5, 0.6],
                             "refusal_rate": 0.0}) + "\n")
    with pytest.raises(BadInput, match=r"s.jsonl:1: responses sum to 1.1"):
        import_subpop(f)


# ---- WVS / Pew --------------------------------------------------------------------------------------
def test_wvs_and_pew(shared_data: Path) -> None:
    p = shared_data / "cao2025_wvs" / "sft_wvs_valid.json"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    s = import_wvs(p)
    assert len(s.qids) == 35 and len(s.groups()) == 46
    assert s.attributes() == {"COUNTRY": s.groups()}
    items = json.loads(p.read_text())
    it = items[0]
    d = s.distributions("Andorra")[f"wvs_{it['id']}"]
    assert list(d)[0] == "Not at all important"
    assert d["Not at all important"] == pytest.approx(it["options_dist"]["A"] / 100)
    assert all(s.ordinal(q) is None for q in s.qids)
    pew = import_wvs(p.with_name("global_pew_test.json"))
    assert pew.survey_id == "cao2025_global_pew_test" and len(pew.qids) > 1000
    assert not any("Refused" in o for q in pew.qids for o in pew.options(q))


# ---- generic --------------------------------------------------------------------------------------
def test_generic_example() -> None:
    s = import_generic(EXAMPLE)
    assert s.survey_id == "example_everyday_life" and len(s.qids) >= 8
    assert s.groups() == [OVERALL]
    assert s.options("vacation_plans")[-1] == "Not at all likely"  # Refused dropped, renormalised
    assert sum(s.distributions()["vacation_plans"].values()) == pytest.approx(1.0)
    assert s.ordinal("vacation_plans") == [1.0, 2.0, 3.0, 4.0]
    assert s.ordinal("cooking_frequency") == [1.0, 2.0, 3.0, 4.0]
    assert s.ordinal("commute_mode") is None
    keep = import_generic(EXAMPLE, refused="keep")
    assert keep.options("vacation_plans")[-1] == "Refused"


def _yaml(tmp: Path, body: str) -> Path:
    f = tmp / "s.yaml"
    f.write_text(body)
    return f


@pytest.mark.parametrize("body,match", [
    ("questions:\n - {qid: a, question: q, options: [x, y], targets: {overall: [.nan, 1]}}\n", r"NaN"),
    ("questions:\n - {qid: a, question: q, options: [x, y], targets: {overall: [0.5, 0.6]}}\n", r"sum to 1.1"),
    ("questions:\n - {qid: a, question: q, options: [x], targets: {overall: [1]}}\n", r"at least 2"),
    ("questions:\n - {qid: a, question: q, options: [x, y], targets: {overall: {z: 1}}}\n", r"'z'"),
    ("questions: [\n", r"not valid YAML"),
    ("questions: []\n", r"non-empty `questions`"),
])
def test_generic_bad_input(tmp_path: Path, body: str, match: str) -> None:
    f = _yaml(tmp_path, body)
    with pytest.raises(BadInput, match=match) as e:
        import_generic(f)
    assert str(f) in str(e.value) or "s.yaml" in str(e.value)
    assert "\n" not in str(e.value)


def test_generic_csv_and_dispatcher(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("qid,question,option,share,group,attribute,ordinal\n"
                 "a,Q?,lo,0.2,overall,,1\na,Q?,hi,0.8,overall,,2\n"
                 "a,Q?,lo,0.5,young,AGE,1\na,Q?,hi,0.5,young,AGE,2\n"
                 "b,R?,x,1,overall,,\nb,R?,y,0,overall,,\n")
    s = import_survey("generic", f, seed=3)
    assert s.attributes() == {"AGE": ["young"], "overall": ["overall"]} or set(s.attributes()) == {"AGE", "overall"}
    assert s.ordinal("a") == [1.0, 2.0] and s.ordinal("b") is None
    assert s.distributions("young")["a"] == {"lo": 0.5, "hi": 0.5}
    with pytest.raises(BadInput, match="unknown survey format 'spss'"):
        import_survey("spss", f)


# ---- splits -----------------------------------------------------------------------------------------
def test_splits_deterministic_and_kfold() -> None:
    qids = [f"q{i}" for i in range(100)]
    a = assign_splits(qids, seed=5)
    assert a == assign_splits(list(reversed(qids)), seed=5)
    assert Counter(a.values()) == {"train": 70, "valid": 15, "test": 15}
    assert a != assign_splits(qids, seed=6)
    folds = kfold_groups(qids, k=5, seed=2)
    assert len(folds) == 5 and sorted(sum(folds, [])) == sorted(qids)
    assert folds == kfold_groups(qids, k=5, seed=2)
    s = import_generic(EXAMPLE, seed=0)
    s2 = import_generic(EXAMPLE, seed=0)
    assert [s.split_of(q) for q in s.qids] == [s2.split_of(q) for q in s2.qids]


# ---- CLI ----------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "personagen.cli", "surveys", *args],
                          capture_output=True, text=True, cwd=REPO)


def _main(*args: str) -> int:
    """In-process `personagen surveys ...` through cli.main (same exit-code mapping, no interpreter start)."""
    from personagen.cli import main

    with pytest.raises(SystemExit) as e:
        main(["surveys", *args])
    return int(e.value.code)


def test_cli_import_show_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "ex.parquet"
    r = _cli("import", "generic", str(EXAMPLE), "-o", str(out), "--seed", "1")
    assert r.returncode == 0, r.stderr
    s = load(out)
    mem = import_generic(EXAMPLE, seed=1)
    assert s.qids == mem.qids
    for q in s.qids:
        assert s.distributions()[q] == pytest.approx(mem.distributions()[q])
    r = _cli("show", str(out), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["survey_id"] == "example_everyday_life" and info["n_questions"] == len(mem.qids)
    assert sum(info["splits"].values()) == len(mem.qids)
    assert _main("show", str(out)) == 0


def test_cli_show_text(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ex.parquet"
    assert _main("import", "generic", str(EXAMPLE), "-o", str(out)) == 0
    capsys.readouterr()
    assert _main("show", str(out)) == 0
    text = capsys.readouterr().out
    assert "example_everyday_life" in text and "overall (1): overall" in text and "ordinal" in text


def test_cli_opinionqa(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "w26.parquet"
    assert _main("import", "opinionqa", str(_wave(shared_data, "W26")), "-o", str(out), "--refused", "keep",
                 "--survey-id", "w26") == 0
    s = load(out)
    assert s.survey_id == "w26" and all("Refused" in s.options(q) for q in s.qids)


@pytest.mark.parametrize("args", [
    ["import", "generic", "MISSING.yaml"],
    ["import", "spss", "x.yaml"],
    ["import", "generic", "BAD"],
    ["import", "generic", str(EXAMPLE), "--refused", "maybe"],
])
def test_cli_bad_input_exit_2_writes_nothing(tmp_path: Path, args: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("questions:\n - {qid: a, question: q, options: [x, y], targets: {overall: [0.5, 0.9]}}\n")
    args = [str(bad) if a == "BAD" else (str(tmp_path / a) if a == "MISSING.yaml" else a) for a in args]
    out = tmp_path / "out.parquet"
    assert _main(*args, "-o", str(out)) == 2
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]


def test_cli_show_missing_and_subprocess_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _main("show", str(tmp_path / "none.parquet")) == 2
    assert "does not exist" in capsys.readouterr().err
    r = _cli("import", "generic", str(tmp_path / "none.yaml"), "-o", str(tmp_path / "o.parquet"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.parquet").exists()


# ---- issue 21: text labels, one refusal rule, keep_last, provenance, skip report, question selection ----------
def test_yaml_labels_stay_as_written(tmp_path: Path) -> None:
    """YAML 1.1 would read Yes/No and on/off as booleans and 007 as 7; the generic reader keeps the text."""
    f = _yaml(tmp_path, "normalise: true\nquestions:\n"
                        " - {qid: 007, question: q, options: [Yes, No], targets: {overall: [3, 1]}, ordinal: true}\n"
                        " - {qid: b, question: r, options: [on, off, 010], targets: {overall: [1, 1, 2]}}\n"
                        " - {qid: c, question: s, options: [1.10, 1.1, .5], targets: {overall: [1, 1, 2]}}\n")
    s = import_generic(f)
    assert s.qids == ["007", "b", "c"]
    assert s.options("007") == ["Yes", "No"] and s.ordinal("007") == [1.0, 2.0]
    assert s.options("b") == ["on", "off", "010"] and s.options("c") == ["1.10", "1.1", ".5"]
    assert s.distributions()["007"] == {"Yes": 0.75, "No": 0.25}


def test_refusal_rule_and_keep_last() -> None:
    from personagen.surveys import is_non_substantive, is_refusal

    assert all(map(is_refusal, ["Refused", "DK/Refused", "No answer/refused", '"Dont know/Refused"']))
    assert not any(map(is_refusal, ["Don't know", "Refuse to say no", "Yes"][::2]))
    assert all(map(is_non_substantive, ["Don't know", '"Dont know"', "Not sure", "No answer", "Missing; Unknown",
                                        "Neither (VOL)", "Other (DO NOT READ)", "Dont know/can't remember"]))
    assert not any(map(is_non_substantive, ["Don't know any of them", "Neither agree nor disagree", "No", "Other"]))


def test_keep_last_flag_saved_and_derived_for_old_files(tmp_path: Path, shared_data: Path) -> None:
    import polars as pl

    s = import_opinionqa(_wave(shared_data, "W26"), refused="keep")
    q = s.qids[0]
    assert s.options(q)[-1] == "Refused" and s.keep_last(q) == [False] * (len(s.options(q)) - 1) + [True]
    s.save(tmp_path / "new.parquet")
    pl.read_parquet(tmp_path / "new.parquet").drop("keep_last").write_parquet(tmp_path / "old.parquet")
    for name in ("new", "old"):  # a file written before the flag existed gets it from the rule
        assert load(tmp_path / f"{name}.parquet").keep_last(q) == s.keep_last(q), name
    f = _yaml(tmp_path, "questions:\n - {qid: a, question: q, options: [Maybe, Yes, No], keep_last: [Maybe],"
                        " targets: {overall: [0.2, 0.4, 0.4]}}\n")
    assert import_generic(f).keep_last("a") == [True, False, False]


def test_provenance_and_licence_recorded_at_import(tmp_path: Path, shared_data: Path) -> None:
    import hashlib

    w = _wave(shared_data, "W26")
    s = import_opinionqa(w)
    s.save(tmp_path / "s.parquet")
    p = load(tmp_path / "s.parquet").provenance
    assert p["format"] == "opinionqa" and p["source"] == str(w) and "Pew" in p["licence"]
    assert p["sha256"]["info.csv"] == hashlib.sha256((w / "info.csv").read_bytes()).hexdigest()
    assert "NONE_data.json" not in p["sha256"] and "CREGION_data.json" in p["sha256"]
    assert s.import_notes == ["56 of 78 info.csv questions have no human answers"]
    g = _yaml(tmp_path, "licence: CC0\nquestions:\n - {qid: a, question: q, options: [x, y], targets: {overall: [1, 0]}}\n")
    assert import_generic(g).provenance["licence"] == "CC0"


def test_wvs_skip_report(shared_data: Path) -> None:
    p = shared_data / "cao2025_wvs" / "global_pew_test.json"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    s = import_wvs(p)
    n = len(json.loads(p.read_text()))
    assert s.import_notes == [f"8 of {n} items (question × country) have all shares zero"]


def test_select_questions_per_split_questions_and_max(shared_data: Path) -> None:
    from personagen.surveys import parse_qids, select_questions

    s = import_opinionqa(_wave(shared_data, "W82"))
    got = select_questions(s, per_split=2, seed=5)
    assert Counter(s.split_of(q) for q in got) == {"train": 2, "valid": 2, "test": 2}
    assert got == select_questions(s, per_split=2, seed=5) != select_questions(s, per_split=2, seed=6)
    assert got == [q for q in s.qids if q in got]  # survey order
    assert select_questions(s, max_questions=3) == s.qids[:3]  # --max-questions keeps its meaning
    pick = parse_qids(f"{s.qids[4]}, {s.qids[1]}")
    assert select_questions(s, questions=pick) == [s.qids[1], s.qids[4]]
    with pytest.raises(BadInput, match="no question 'nope'"):
        select_questions(s, questions=("nope",))
    test_q = s.split_qids("test")[0]
    with pytest.raises(BadInput, match="is in split 'test'"):
        select_questions(s, split="train", questions=(test_q,))


@pytest.mark.parametrize("name,body,match", [
    ("short.csv", "qid,question,option,share\na,Q?,Yes,0.5\na,Q?,No\n", r"short.csv:3: row has 3 fields, the header has 4"),
    ("empty.csv", "qid,question,option,share\na,Q?,Yes,0.5\na,Q?, ,0.5\n", r"empty.csv:3: empty option label"),
    ("space.csv", "qid,question,option,share\na,Q?,Yes,0.2\na,Q?,Yes ,0.3\na,Q?,No,0.5\n",
     r"'Yes' and 'Yes ' differ only in spaces or case"),
    ("case.yaml", "questions:\n - {qid: a, question: q, options: [Yes, yes], targets: {overall: [0.5, 0.5]}}\n",
     r"'Yes' and 'yes' differ only in spaces or case"),
])
def test_generic_refuses_ragged_rows_and_confusable_labels(tmp_path: Path, name: str, body: str, match: str) -> None:
    (tmp_path / name).write_text(body)
    with pytest.raises(BadInput, match=match):
        import_generic(tmp_path / name)
