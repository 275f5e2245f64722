"""Persona rendering: every style, null handling, generated personas, user templates, errors, fast path."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from personagen.errors import BadInput
from personagen.personas import PERSONA_SCHEMA, STYLES, order_columns, render_cost, render_personas
from personagen.personas import render as R
from personagen.priors import add_priors
from personagen.templating import get_template

# Labels as decoded from the PUMS codebook (census/codebook_2018.yaml); row 3 carries junk strings.
ROWS = [
    dict(persona_id="c1", source="census", mode=None, enriched=False, weight_census=0.4, pwgtp=97,
         serialno="2018HU0001", state="Vermont", state_code="50", puma="00100", age=47, age_band="45-54",
         sex="Female", race="White", hispanic="Not Hispanic", ancestry="Irish",
         language="English only", english_ability=None, education="Bachelor's degree", employment="Employed",
         class_of_worker="Private for-profit employee", industry="Hardware stores",
         occupation="Cashiers", income=52340, income_band="$50,000-$74,999", marital_status="Married",
         birthplace="Massachusetts", citizenship="Born in the US", nativity="Native-born",
         veteran="Never served", disability="No disability", dis_cognitive=None,
         dis_vision=None, dis_hearing=None, dis_ambulatory=None, dis_selfcare=None, dis_independent=None,
         health_insurance="Employer-based insurance", fertility=None),
    dict(persona_id="c2", source="census", mode=None, enriched=False, weight_census=0.6, pwgtp=150,
         serialno="2018HU0002", state="New Mexico", state_code="35", puma="00400", age=71, age_band="65-74",
         sex="Male", race="Some other race", hispanic="Mexican", ancestry=None, language="Spanish",
         english_ability="Well", education="Grade 11", employment="Not in labor force",
         class_of_worker="Self-employed, not incorporated", industry="Construction (the cleaning of buildings "
         "and dwellings is incidental during construction and immediately after construction)",
         occupation="Carpenters", income=-1200, income_band="No income or loss",
         marital_status="Widowed", birthplace="Mexico", citizenship="Naturalized citizen",
         nativity="Foreign-born", veteran="Veteran", disability="With a disability", dis_cognitive="No",
         dis_vision="Vision difficulty", dis_hearing="Hearing difficulty", dis_ambulatory=None, dis_selfcare="No",
         dis_independent=None, health_insurance="No health insurance", fertility=None),
    dict(persona_id="c3", source="census", age=23, sex="Male", state="Wyoming", education="nan", income=0,
         race="Two or more races", marital_status="None"),
]
BAD = ("None", "nan", "null", "NaN")


@pytest.fixture(scope="module")
def census() -> pl.DataFrame:
    return add_priors(pl.DataFrame(ROWS, schema_overrides={k: v for k, v in PERSONA_SCHEMA.items()
                                                              if k in ROWS[0]}), 5)


def _clean(text: str) -> None:
    assert text and text.strip() == text
    for bad in BAD:
        assert bad not in text.replace("Not Hispanic", ""), (bad, text)


def test_every_style_renders_realistic_rows(census: pl.DataFrame) -> None:
    out = render_personas(census, STYLES)
    for style in STYLES:
        for text in out[f"text_{style}"].to_list():
            _clean(text)
    n = out.row(0, named=True)
    assert n["text_narrative"].startswith("You are a 47-year-old woman living in Vermont. You are White. "
                                          "You are not Hispanic or Latino.")
    assert "$52,340" in n["text_narrative"] and "You value " in n["text_narrative"]
    assert "You work as a cashier at a hardware store, for a private company." in n["text_narrative"]
    assert "I work as a cashier at a hardware store, for a private company." in n["text_bio"]
    assert "Question: What is your occupation?\nAnswer: Cashier\n" in n["text_qa"]
    assert "Question: Are you a citizen of the United States?\nAnswer: Yes, by birth" in n["text_qa"]
    assert n["big5_openness_level"] + " in openness" in n["text_narrative"]
    assert "Question: How old are you?\nAnswer: 47\n\nQuestion: What is the sex" in n["text_qa"]
    assert n["text_bio"].startswith("Below you will be asked to provide a short description of yourself and then "
                                    "answer some questions. Description: I currently reside in Vermont.")
    assert n["text_portray"].startswith("Answer the following question as if you are a 47-year-old woman; "
                                        "you currently reside in Vermont; ")
    m = out.row(1, named=True)
    assert "A loss of $1,200" in m["text_qa"]
    assert "You have a disability: serious difficulty seeing and serious difficulty hearing." in m["text_narrative"]
    # not in the labour force: the last job in the past tense, never "you work as"
    assert "You last worked as a carpenter in construction, in your own business." in m["text_narrative"]
    assert "You work" not in m["text_narrative"] and "What was your most recent occupation?" in m["text_qa"]
    assert "You were born in Mexico and became a naturalized U.S. citizen." in m["text_narrative"]
    third = out.row(2, named=True)["text_narrative"]  # "nan"/"None" strings are treated as unknown
    assert "education" not in third and "married" not in third and "no personal income last year" in third


def test_all_null_row_and_generated_persona() -> None:
    nulls = pl.DataFrame({c: [None] for c in PERSONA_SCHEMA}, schema=PERSONA_SCHEMA)
    out = render_personas(nulls.with_columns(pl.lit("p1").alias("persona_id")), STYLES)
    assert out["text_narrative"][0] == "You are a person."
    for style in ("narrative", "bio", "portray"):
        _clean(out[f"text_{style}"][0])
    assert out["text_qa"][0] is None  # nothing known -> null, not an empty or "None" string

    gen = pl.DataFrame({"persona_id": ["g1"], "text_narrative": ["A retired welder from Ohio who loves jazz."]})
    out = render_personas(gen, STYLES)
    assert out["text_narrative"][0] == "A retired welder from Ohio who loves jazz."  # kept, not overwritten
    for style in STYLES:
        _clean(out[f"text_{style}"][0])
        assert "retired welder" in out[f"text_{style}"][0]
    gen2 = gen.with_columns(source=pl.lit("bank"), age=pl.lit(None, pl.Int64), sex=pl.lit(None, pl.String))
    assert render_personas(add_priors(gen2, 0))["text_narrative"][0] == gen["text_narrative"][0]


def test_census_text_is_rerendered(census: pl.DataFrame) -> None:
    stale = census.with_columns(text_narrative=pl.lit("old text"))
    assert render_personas(stale)["text_narrative"][0].startswith("You are a 47-year-old woman")


def test_fast_path_matches_row_by_row(census: pl.DataFrame) -> None:
    df = pl.concat([census] * 3)
    for style in STYLES:
        tmpl = get_template(R.template_name(style))
        assert R._fast_path_ok(tmpl, set(R._context_frame(df, R._variables(tmpl)).columns)), style
        assert R._render_style(df, tmpl, fast=True) == R._render_style(df, tmpl, fast=False)


def test_user_templates_override(tmp_path: Path, census: pl.DataFrame) -> None:
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "narrative.j2").write_text(
        "{{ persona_id }}: {{ state | upper if state is defined else 'somewhere' }}\n")
    out = render_personas(census, ("narrative", "qa"), templates=tmp_path)
    assert out["text_narrative"].to_list() == ["c1: VERMONT", "c2: NEW MEXICO", "c3: WYOMING"]  # row-by-row path
    assert out["text_qa"][0].startswith("Question:")  # the shipped template fills in
    with pytest.raises(BadInput, match="does not exist"):
        render_personas(census, templates=tmp_path / "missing")


def test_unknown_style_and_undefined_variable(tmp_path: Path, census: pl.DataFrame) -> None:
    with pytest.raises(BadInput, match="narrative, qa, bio, portray"):
        render_personas(census, ("essay",))
    (tmp_path / "personas").mkdir()
    (tmp_path / "personas" / "bio.j2").write_text("I live in {{ occupation }}.")
    with pytest.raises(BadInput, match="occupation"):
        render_personas(census, ("bio",), templates=tmp_path)


def test_render_cost_and_schema(census: pl.DataFrame) -> None:
    df = pl.concat([census] * 2000)
    cost = render_cost(df, "narrative")
    assert cost["rows"] == 6000 and cost["seconds"] > 0 and cost["rows_per_s"] > 5000
    out = order_columns(render_personas(census).with_columns(extra=pl.lit(1)))
    assert out.columns[0] == "persona_id" and out.columns[-1] == "extra"
