"""SubPOP data, steering prompts, few-shot selection and bounds (paper 003), on real OpinionQA / SubPOP files.

Formula checks are against values worked out by hand in the comments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from personagen.finetune import (
    Example,
    HashedTfidf,
    Steering,
    export_jsonl,
    human_bound,
    nearest,
    open_survey,
    parse_distribution,
    question_prompt,
    read_jsonl,
    relative_improvement,
    respondents_for,
    survey_examples,
    training_examples,
    uniform_wd,
)
from personagen.surveys import opinionqa_respondents


@pytest.fixture(scope="module")
def w26(shared_data: Path) -> Path:
    p = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not p.is_dir():
        pytest.skip(f"{p} not present")
    return p


def _ex(target, ordinal=(1.0, 2.0), group="g", qid="q") -> Example:
    return Example("s", qid, "Q?", tuple(f"o{i}" for i in range(len(target))), tuple(ordinal), "CREGION", group,
                   tuple(target), "test")


def test_training_split_is_by_question_and_keeps_human_distributions(w26: Path) -> None:
    sv = open_survey(w26)
    train, valid = training_examples([sv], seed=0)
    tq, vq = {e.qid for e in train}, {e.qid for e in valid}
    assert tq and vq and not tq & vq  # a question's groups never straddle the split
    assert abs(len(vq) / (len(tq) + len(vq)) - 0.1) < 0.06
    e = train[0]
    assert e.target == tuple(sv.distributions(e.group)[e.qid][o] for o in e.options)
    assert all(x.group != "overall" for x in train + valid)


def test_jsonl_export_round_trips(w26: Path, tmp_path: Path) -> None:
    exs = survey_examples(open_survey(w26), split="valid")[:5]
    p = export_jsonl(exs, tmp_path / "x.jsonl")
    first = json.loads(p.read_text().splitlines()[0])
    assert first["split"] == "validation" and first["prompt"].endswith("Answer:")
    assert abs(sum(first["distribution"]) - 1) < 1e-9
    assert [e.to_json() for e in read_jsonl(p)] == [e.to_json() for e in exs]  # NaN positions: compare as JSON


def test_steering_formats_name_the_group_and_end_with_the_answer_cue() -> None:
    qa = question_prompt(Steering("CREGION", "South", "qa"), "Is it hot?", ["Yes", "No"])
    assert "C. South" in qa and qa.endswith("Answer:") and "A. Yes\nB. No" in qa
    bio = question_prompt(Steering("POLPARTY", "Democrat", "bio"), "Is it hot?", ["Yes", "No"])
    portray = question_prompt(Steering("RACE", "Other (RACE)", "portray"), "Is it hot?", ["Yes", "No"])
    assert "Democrat" in bio and "Answer next" not in bio
    assert "as if" in portray and "Other" in portray and "(RACE)" not in portray
    assert question_prompt(Steering("overall", "overall"), "Q?", ["a", "b"]).startswith("Question: Q?")


def test_parse_distribution_reads_the_fig15_json() -> None:
    assert parse_distribution(" {'A': 0.2, 'B': 0.6}\nQuestion", 2) == pytest.approx([0.25, 0.75])
    assert parse_distribution('{"A": 1, "B": 0, "C": 3}', 2) == [1.0, 0.0]  # letters past the options ignored
    assert parse_distribution("I think A", 2) is None


def test_nearest_puts_the_most_similar_question_last() -> None:
    pool = ["Do you own a gun?", "How often do you go hunting?", "Do you approve of the president?"]
    m = HashedTfidf(pool)
    idx = nearest(m.embed(["Does anyone in your household own a gun?"])[0], m.embed(pool), k=2)
    assert idx[-1] == 0 and len(idx) == 2


def test_uniform_bound_by_hand() -> None:
    # target (1, 0) on positions 1, 2; uniform (.5, .5): |F_H(1) - F_U(1)| = |1 - .5| = .5, range 1 -> 0.5
    # target (.2, .3, .5) on 1, 2, 3: CDFs (.2, .5) vs (1/3, 2/3): (.1333 + .1667) / 2 = 0.15
    wd = uniform_wd([_ex((1.0, 0.0)), _ex((0.2, 0.3, 0.5), (1.0, 2.0, 3.0))])
    assert wd == pytest.approx([0.5, 0.15])


def test_human_bound_by_hand() -> None:
    # n = 1 respondent, p = (.5, .5): every resample is (1, 0) or (0, 1), each at WD .5 from p -> exactly 0.5
    b = human_bound([_ex((0.5, 0.5))], [1], reps=200)["g"]
    assert b.mean == pytest.approx(0.5) and b.lo == pytest.approx(0.5)
    # n = 2: resample (1,0) w.p. 1/4 (WD .5), (.5,.5) w.p. 1/2 (WD 0), (0,1) w.p. 1/4 (WD .5) -> E = 0.25
    assert human_bound([_ex((0.5, 0.5))], [2], reps=20000)["g"].mean == pytest.approx(0.25, abs=0.01)
    # larger samples sit closer to the human distribution; unknown n leaves the group out
    assert human_bound([_ex((0.3, 0.7))], [10000], reps=200)["g"].mean < 0.01
    assert human_bound([_ex((0.3, 0.7))], [None]) == {}


def test_human_bound_uses_opinionqa_respondent_counts(w26: Path) -> None:
    sv = open_survey(w26)
    qids = [q for q in sv.qids if sv.positions(q)][:8]
    exs = survey_examples(sv, qids=qids, groups=["White", "Asian"])
    n = respondents_for(exs, opinionqa_respondents(w26), None)
    assert all(isinstance(x, int) and x > 0 for x in n)
    b = human_bound(exs, n, reps=300)
    assert b["Asian"].mean > b["White"].mean  # far fewer Asian respondents -> more sampling noise


def test_human_bound_reproduces_table9_white(shared_data: Path) -> None:
    # Paper 003, Table 9: the White human baseline on OpinionQA is 0.012 (mean over every question of every wave)
    from personagen.reproduce import BoundsOptions, subpop_bounds

    waves = sorted(str(p) for p in (shared_data / "opinionqa" / "human_resp").glob("American_Trends_Panel_W*"))
    res = subpop_bounds(BoundsOptions(evals=tuple(waves), groups=("White",), reps=20))
    (white,) = res["groups"]
    assert white["paper"] == {"human_bound": 0.012}
    assert white["human_bound"] == pytest.approx(0.012, abs=0.0005)


def test_human_bound_distance_paper_is_the_unnormalised_w1() -> None:
    # n = 1, p = (.5, 0, .5) on positions (1, 2, 3): every resample is all-A or all-C; CDF gaps |F^-F| are
    # .5 at both steps of width 1 -> un-normalised W1 = 1.0, normalised by the range 2 -> 0.5
    ex = Example("s", "q", "Q?", ("a", "b", "c"), (1.0, 2.0, 3.0), "SEX", "g", (0.5, 0.0, 0.5), "test")
    assert human_bound([ex], [1], reps=50)["g"].mean == pytest.approx(1.0)
    assert human_bound([ex], [1], reps=50, distance="normalised")["g"].mean == pytest.approx(0.5)


def test_relative_improvement_by_hand() -> None:
    # (0.17 - 0.10) / (0.17 - 0.03) = 0.07 / 0.14 = 0.5
    assert relative_improvement(0.17, 0.10, 0.03) == pytest.approx(0.5)
    assert math.isnan(relative_improvement(0.02, 0.01, 0.03))
    assert np.isfinite(relative_improvement(0.2, 0.25, 0.03))


def test_fewshot_prompt_uses_the_groups_own_distributions(w26: Path) -> None:
    from personagen.finetune import fewshot_prompts

    sv = open_survey(w26)
    train = survey_examples(sv, groups=["South", "Democrat"])
    test = [e for e in train if e.group == "Democrat"][0]
    prompt = fewshot_prompts([test], [e for e in train if e.qid != test.qid], k=3)[0]
    shots = [e for e in train if e.group == "Democrat" and e.qid != test.qid]
    assert prompt.count("Answer distribution:") == 4 and prompt.rstrip().endswith("Answer distribution:")
    assert "Democrat" in prompt and "South" not in prompt.split("\n")[0]
    first = prompt.split("Answer distribution: ")[1].splitlines()[0]
    assert first.startswith("{'A': 0.") and all(len(v.split(".")[1]) == 3 for v in first[1:-1].split(", "))
    first_json = json.loads(first.replace("'", '"'))  # Fig. 15: {'A': 0.050, ...}, three decimals
    assert any(tuple(round(x, 3) for x in s.target) == tuple(first_json.values()) for s in shots)
    assert prompt.startswith("Predict the answer distribution of the following questions for people whose "
                             "political party is Democrat.")


def test_official_steering_prompt_is_the_authors_fig14(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Fig. 14's second example, laid out as the authors' generate_mcq + prepare_finetuning_data.py join it
    official = shared_data / "subpop" / "subpopulation_metadata" / "steering_prompts.json"
    monkeypatch.setenv("PERSONAGEN_SUBPOP_STEERING", str(official))
    got = question_prompt(Steering("RELIG", "Atheist", "qa"), "Do you believe there is a life after death?",
                          ["Yes", "No", "Refused"])
    assert got == ("Question: What is your present religion, if any?\nA. Protestant\nB. Roman Catholic\nC. Mormon\n"
                   "D. Orthodox\nE. Jewish\nF. Muslim\nG. Buddhist\nH. Hindu\nI. Atheist\nJ. Agnostic\nK. Other\n"
                   "L. Nothing in particular\n\nAnswer: I. Atheist\n\n"
                   "Answer the following question keeping in mind your previous answers.\n"
                   "Question: Do you believe there is a life after death?\nA. Yes\nB. No\nC. Refused\n"
                   "Answer as a choice between A.,B.,C.\n\nAnswer:")
    bio = question_prompt(Steering("SEX", "Female", "bio"), "Q?", ["Yes", "No"])
    assert bio.startswith("Below you will be asked to provide a short description of the sex you were assigned at "
                          "birth and then answer some questions.\nDescription: I identify as Female.\n\nQuestion: Q?")
    # a group the official file does not cover keeps our wording; so does switching the file off
    assert "Answer as a choice" not in question_prompt(Steering("CITIZEN", "Yes", "qa"), "Q?", ["a", "b"])
    monkeypatch.setenv("PERSONAGEN_SUBPOP_STEERING", "none")
    assert "Answer as a choice" not in question_prompt(Steering("RELIG", "Atheist", "qa"), "Q?", ["a", "b"])


def test_off_scale_options_are_kept_and_left_out_of_the_wd(shared_data: Path) -> None:
    from personagen.finetune import example_wd

    # the authors' ordinal_emd, Example 2: p = (.2, .5, .3), q = (.3, .4, .3), ordinal (1, 2, -1): the third
    # option is dropped and both renormalised: |.2/.7 - .3/.7| * (2 - 1) / (2 - 1) = 1/7
    ex = Example("s", "q", "Q?", ("a", "b", "c"), (1.0, 2.0, float("nan")), "SEX", "g", (0.2, 0.5, 0.3), "test")
    assert example_wd([ex], [(0.3, 0.4, 0.3)])[0] == pytest.approx(1 / 7)
    sv = open_survey(shared_data / "subpop" / "subpop-eval" / "subpop_eval.jsonl")
    assert sv.question("sexeduc").options == ("Favor", "Oppose", "Depends on age/grade (vol.)", "Refused")
    pos = sv.positions("sexeduc")
    assert pos[:2] == (1.0, 2.0) and math.isnan(pos[2]) and math.isnan(pos[3])
    assert sum(sv.positions(q) is not None for q in sv.qids) == 133  # SubPOP-Eval: every question evaluated


def test_refused_is_an_option_of_the_training_target(w26: Path) -> None:
    sv = open_survey(w26)
    ex = next(e for e in survey_examples(sv, groups=["South"]) if e.options[-1] == "Refused")
    assert abs(sum(ex.target) - 1) < 1e-9 and ex.target[-1] > 0 and math.isnan(ex.ordinal[-1])
    assert ex.prompt().rstrip().endswith("Answer:") and "Refused" in ex.prompt()


def test_training_defaults_to_the_papers_22_groups(w26: Path) -> None:
    from personagen.finetune import PAPER_GROUPS_22, FinetuneOptions

    assert len(PAPER_GROUPS_22) == 22 and FinetuneOptions(train=(str(w26),), out="x").groups == PAPER_GROUPS_22
    train, valid = training_examples([open_survey(w26)], groups=PAPER_GROUPS_22)
    got = {e.group for e in train + valid}
    assert "South" in got and "Midwest" not in got and "18-29" not in got


def test_overlap_filter_finds_a_repeated_question() -> None:
    from personagen.finetune import overlapping

    train = ["How much do you trust the news media?", "Do you own a gun?"]
    hits = overlapping(["Do you own a gun?", "How often do you go fishing in winter?"], train, embedder="tfidf")
    assert hits == [True, False]
