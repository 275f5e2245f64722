"""Phrase layer: decoded persona attributes -> natural sentences for the persona templates (census/phrases.yaml).

Why: the codebook labels are census categories ("Not in labor force", "Cashiers", "Born in the US"); a persona
is a person talking. Each fact is one first-person sentence that follows the person's situation (employment
status decides "I work as" / "I last worked as" / silence; citizenship, nativity and birthplace are one
sentence; "none/no" values are said naturally or left out), derived column-wise (per distinct label, then
polars string expressions), so rendering stays vectorised. Helper columns a template can use:
`i_<fact>` (first person, BIO), `you_<fact>` (second person, narrative), `asif_<fact>` (a PORTRAY clause:
second person, no capital, no period) and `a_<answer>` (style QA answers). Unknown or unsayable = null.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import polars as pl
import yaml

from personagen.personas.schema import BIG5_DOMAINS, DISABILITY_DETAIL_COLUMNS, TRAIT_COLUMNS
from personagen.resources import census_dir

__all__ = ["FACTS", "ANSWERS", "PHRASE_HELPERS", "phrase_columns", "phrase_data", "job_phrases"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_JUNK = ["", " ", "None", "none", "nan", "NaN", "null", "NULL", "NA", "N/A"]
_S = pl.String
# First person -> second person (applied in order, whole words): the narrative and PORTRAY forms.
_TO_YOU = ((r"\bI am\b", "you are"), (r"\bI was\b", "you were"), (r"\bI\b", "you"), (r"\bmy\b", "your"),
           (r"\bMy\b", "Your"), (r"\bme\b", "you"), (r"\bmyself\b", "yourself"))


def _load(name: str) -> Any:
    with open(census_dir() / name, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)


@functools.lru_cache(maxsize=1)
def phrase_data() -> dict[str, Any]:
    """census/phrases.yaml (loaded once per process)."""
    return _load("phrases.yaml")


@functools.lru_cache(maxsize=1)
def job_phrases() -> tuple[dict[str, str | None], dict[str, str | None]]:
    """({occupation label: noun phrase}, {industry label: prepositional phrase}) over every shipped vintage."""
    occ: dict[str, str | None] = {}
    ind: dict[str, str | None] = {}
    for vintage in sorted(set(map(str, _load("attributes.yaml")["years"].values()))):
        labels = _load(f"codebook_{vintage}.yaml")["variables"]
        jobs = _load(f"jobs_{vintage}.yaml")
        for var, table, out in (("OCCP", jobs["occupation"], occ), ("INDP", jobs["industry"], ind)):
            for code, label in labels[var]["labels"].items():
                if label is not None:
                    out.setdefault(label, table.get(int(code)))
    return occ, ind


def _map(s: pl.Series, fn: Callable[[Any], str | None]) -> pl.Series:
    """fn applied to each distinct non-null value only (labels repeat a lot); nulls stay null."""
    uniq = [v for v in s.unique().to_list() if v is not None]
    return s.replace_strict(uniq, [fn(v) for v in uniq], default=None, return_dtype=_S)


def _col(df: pl.DataFrame, name: str) -> pl.Series:
    """A column as strings (phrase_columns has nulled junk like "", "None", "nan"); all-null when absent."""
    if name not in df.columns:
        return pl.Series(name, [None] * df.height, dtype=_S)
    return df[name] if df[name].dtype == _S else df[name].cast(_S)


def _say(var: str, key: str = "say", frame_key: str = "frame") -> Callable[[Any], str | None]:
    """Label -> phrase: an explicit entry (null = leave out), else the frame with {x}, else None."""
    spec = phrase_data()[var]
    table, frame, xs = spec.get(key) or {}, spec.get(frame_key), spec.get("x") or {}
    frame = frame or spec.get("fallback")

    def fn(label: Any) -> str | None:
        if label in table:
            return table[label]
        return frame.format(x=xs.get(label, label)) if frame else None

    return fn


def _answer(var: str) -> Callable[[Any], str | None]:
    """Label -> QA answer: explicit answer, else answer_frame with {x}, else the label itself."""
    spec = phrase_data()[var]
    table, frame, xs = spec.get("answer") or {}, spec.get("answer_frame"), spec.get("x") or {}

    def fn(label: Any) -> str | None:
        if label in table:
            return table[label]
        return frame.format(x=xs.get(label, label)) if frame else _cap(str(xs.get(label, label)))

    return fn


def _cap(s: str | None) -> str | None:
    return s[:1].upper() + s[1:] if s else s


def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _place(label: Any) -> str | None:
    """A birthplace label as a place name: 'the Netherlands', 'Asia' (from 'Other Asia, Not Specified')."""
    xs = phrase_data()["birthplace"].get("x") or {}
    if label in xs:
        return xs[label]
    s = re.sub(r",\s*Not Specified$", "", str(label))
    return re.sub(r"^Other\s+", "", s)


def _language(label: Any) -> str:
    xs = phrase_data()["language"].get("x") or {}
    if label in xs:
        return xs[label]
    s = re.sub(r"\s*\([^)]*\)", "", str(label))
    m = re.match(r"^(?:Other\s+)?(.*?)\s+languages$", s)
    if m:
        return _article(re.sub(r"^languages of (.*)$", r"language from \1", m.group(1) + " language")
                        if not m.group(1).startswith("languages") else m.group(1))
    return re.sub(r"^Other\s+", "", s)


def _usd(v: Any) -> str | None:
    try:
        x = round(float(v))
    except (TypeError, ValueError):
        return None
    return f"${abs(x):,}"


def _lit(s: str | None) -> pl.Expr:
    return pl.lit(s, dtype=_S)


def _frame(**cols: pl.Series) -> pl.DataFrame:
    return pl.DataFrame([s.alias(k) for k, s in cols.items()])


# ---- facts: each returns the first-person sentence column (null = nothing to say) -------------------------

def _age_sex(df: pl.DataFrame, with_state: bool) -> pl.Series:
    age = df["age"].cast(pl.Int64, strict=False) if "age" in df.columns else pl.Series([None] * df.height,
                                                                                      dtype=pl.Int64)
    spec = phrase_data()["sex"]
    f = _frame(age=age, adult=_map(_col(df, "sex"), spec["noun"].get), child=_map(_col(df, "sex"), spec["noun_child"].get),
               state=_col(df, "state") if with_state else pl.Series([None] * df.height,
                                                                                       dtype=_S))
    f = f.with_columns(noun=pl.when(pl.col("age") < 18).then(pl.col("child")).otherwise(pl.col("adult")))
    a = pl.col("age").cast(_S)
    an = pl.when(a.str.starts_with("8") | pl.col("age").is_in([11, 18])).then(_lit("an ")).otherwise(_lit("a "))
    where = pl.when(pl.col("state").is_not_null()).then(pl.concat_str(_lit(" living in "), pl.col("state"))) \
        .otherwise(_lit(""))
    expr = (pl.when((pl.col("age") == 0) & pl.col("noun").is_not_null())  # under one year old: a baby
            .then(pl.concat_str(_lit("I am a baby "), pl.col("noun"), where, _lit(".")))
            .when(pl.col("age").is_not_null() & pl.col("noun").is_not_null())
            .then(pl.concat_str(_lit("I am "), an, a, _lit("-year-old "), pl.col("noun"), where, _lit(".")))
            .when(pl.col("age").is_not_null()).then(pl.concat_str(_lit("I am "), a, _lit(" years old"), where,
                                                                  _lit(".")))
            .when(pl.col("noun").is_not_null()).then(pl.concat_str(_lit("I am a "), pl.col("noun"), where, _lit(".")))
            .when(pl.col("state").is_not_null()).then(pl.concat_str(_lit("I live in "), pl.col("state"), _lit("."))))
    return f.select(expr.alias("x")).to_series()


def _intro(df: pl.DataFrame) -> pl.Series:
    return _age_sex(df, with_state=True)


def _agesex(df: pl.DataFrame) -> pl.Series:
    return _age_sex(df, with_state=False)


def _residence(df: pl.DataFrame) -> pl.Series:
    return _frame(s=_col(df, "state")).select(
        pl.concat_str(_lit("I currently reside in "), pl.col("s"), _lit(".")).alias("x")).to_series()


def _simple(var: str, col: str | None = None) -> Callable[[pl.DataFrame], pl.Series]:
    return lambda df: _map(_col(df, col or var), _say(var))


def _birth(df: pl.DataFrame) -> pl.Series:
    """Citizenship + birthplace (+ nativity) as one sentence; nativity alone when that is all that is known."""
    spec = phrase_data()["citizenship"]
    f = _frame(cit=_col(df, "citizenship"), place=_map(_col(df, "birthplace"), _place),
               nat=_map(_col(df, "nativity"), _say("nativity")))
    expr = pl.when(pl.col("cit").is_null() & pl.col("place").is_not_null()) \
        .then(pl.concat_str(_lit("I was born in "), pl.col("place"), _lit(".")))
    for label, sentence in spec["say"].items():
        pre, post = sentence.split("{place}")
        place = pl.col("place").fill_null(_lit(spec["unknown_place"][label]))
        expr = expr.when(pl.col("cit") == label).then(pl.concat_str(_lit(pre), place, _lit(post)))
    pre, mid = spec["fallback"].split("{place}")
    mid, post = mid.split("{x}")
    expr = expr.when(pl.col("cit").is_null()).then(pl.col("nat")).otherwise(pl.concat_str(
        _lit(pre), pl.col("place").fill_null(_lit("an unknown place")), _lit(mid), pl.col("cit"), _lit(post)))
    return f.select(expr.alias("x")).to_series()


def _language_sentence(df: pl.DataFrame) -> pl.Series:
    f = _frame(lang=_map(_col(df, "language"), lambda v: "At home I speak " + _language(v)),
               eng=_map(_col(df, "english_ability"), _say("english_ability")))
    expr = (pl.when(pl.col("lang").is_not_null() & pl.col("eng").is_not_null())
            .then(pl.concat_str(pl.col("lang"), _lit(", and "), pl.col("eng"), _lit(".")))
            .when(pl.col("lang").is_not_null()).then(pl.concat_str(pl.col("lang"), _lit(".")))
            .when(pl.col("eng").is_not_null()).then(pl.concat_str(pl.col("eng"), _lit("."))))
    return f.select(expr.alias("x")).to_series()


def _work_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Columns status (now/past/null), occ (noun phrase), ind (prepositional phrase), emp (employer phrase)."""
    occ_map, ind_map = job_phrases()
    spec = phrase_data()["employment"]
    emp = _col(df, "employment")
    status = _map(emp, lambda v: spec["status"].get(v))
    occ = _map(_col(df, "occupation"),
               lambda v: occ_map[v] if v in occ_map else _article(str(v).lower()))
    ind = _map(_col(df, "industry"), lambda v: ind_map[v] if v in ind_map else f"in {str(v).lower()}")
    cow = _map(_col(df, "class_of_worker"), _say("class_of_worker"))
    f = _frame(emp=emp, status=status, occ=occ, ind=ind, cow=cow)
    # no employment status known (e.g. a generated persona): a stated job is a current one
    return f.with_columns(pl.when(pl.col("status").is_null() & pl.col("emp").is_null()
                                  & (pl.col("occ").is_not_null() | pl.col("ind").is_not_null()))
                          .then(_lit("now")).otherwise(pl.col("status")).alias("status"))


def _job(df: pl.DataFrame) -> pl.Series:
    """'I work as a cashier at a hardware store, for a private company.' / 'I last worked as ...' / null."""
    f = _work_frame(df)
    ind = pl.concat_str(_lit(" "), pl.col("ind"))
    cow = pl.concat_str(_lit(", "), pl.col("cow"))
    what = (pl.when(pl.col("occ").is_not_null())
            .then(pl.concat_str(_lit("as "), pl.col("occ"), ind.fill_null(""), cow.fill_null("")))
            .when(pl.col("ind").is_not_null()).then(pl.concat_str(pl.col("ind"), cow.fill_null("")))
            .when(pl.col("cow").is_not_null() & (pl.col("status") == "now")).then(pl.col("cow")))
    expr = (pl.when((pl.col("status") == "now") & what.is_not_null())
            .then(pl.concat_str(_lit("I work "), what, _lit(".")))
            .when((pl.col("status") == "past") & (pl.col("occ").is_not_null() | pl.col("ind").is_not_null()))
            .then(pl.concat_str(_lit("I last worked "), what, _lit("."))))
    return f.select(pl.when(pl.col("status").is_not_null()).then(expr).alias("x")).to_series()


def _employment(df: pl.DataFrame) -> pl.Series:
    spec = phrase_data()["employment"]
    f = _work_frame(df).with_columns(
        say=_map(_col(df, "employment"), lambda v: spec["say"][v] if v in spec["say"]
                 else spec["fallback"].format(x=v)),
        no_job=_map(_col(df, "employment"), lambda v: spec["say_no_job"].get(v, spec["say"].get(v))
                    if v in spec["say"] else spec["fallback"].format(x=v)))
    has_job = pl.col("occ").is_not_null() | pl.col("ind").is_not_null()
    return f.select(pl.when(has_job).then(pl.col("say")).otherwise(pl.col("no_job")).alias("x")).to_series()


def _income(df: pl.DataFrame) -> pl.Series:
    inc = df["income"].cast(pl.Float64, strict=False) if "income" in df.columns else \
        pl.Series([None] * df.height, dtype=pl.Float64)
    f = _frame(inc=inc.fill_nan(None), usd=_map(inc.fill_nan(None), _usd), band=_col(df, "income_band"))
    expr = (pl.when(pl.col("inc") > 0.5).then(pl.concat_str(
                _lit("Last year, my total personal income from all sources, before taxes, was "), pl.col("usd"),
                _lit(".")))
            .when(pl.col("inc") < -0.5).then(pl.concat_str(
                _lit("Last year, I had a net income loss of "), pl.col("usd"), _lit(".")))
            .when(pl.col("inc").is_not_null()).then(_lit("I had no personal income last year."))
            .when(pl.col("band") == "No income or loss").then(_lit("I had no personal income last year."))
            .when(pl.col("band").is_not_null()).then(pl.concat_str(
                _lit("Last year, my total personal income from all sources, before taxes, was in the range "),
                pl.col("band"), _lit("."))))
    return f.select(expr.alias("x")).to_series()


def _details(df: pl.DataFrame) -> pl.Series | None:
    """'serious difficulty hearing and serious difficulty seeing' for the named difficulties, else null."""
    words = phrase_data()["disability_details"]
    parts = []
    for c in DISABILITY_DETAIL_COLUMNS:
        if c in df.columns:
            parts.append(_map(_col(df, c), lambda v, w=words[c]: None if str(v).strip().lower().startswith(
                ("no", "false", "0")) else w))
    if not parts:
        return None
    joined = pl.concat_str(pl.all(), separator="; ", ignore_nulls=True).replace("", None)
    return pl.DataFrame([p.alias(f"p{i}") for i, p in enumerate(parts)]).select(
        joined.str.replace(r"^(.*); ", "${1} and ").str.replace_all("; ", ", ")).to_series()


def _disability(df: pl.DataFrame) -> pl.Series:
    base = _map(_col(df, "disability"), _say("disability"))
    det = _details(df)
    if det is None:
        return base
    f = _frame(base=base, det=det, dis=_col(df, "disability"))
    return f.select(pl.when(pl.col("det").is_not_null() & (pl.col("dis") == "With a disability"))
                    .then(pl.concat_str(_lit("I have a disability: "), pl.col("det"), _lit(".")))
                    .otherwise(pl.col("base")).alias("x")).to_series()


def _marital(df: pl.DataFrame) -> pl.Series:
    """Marital status, left out below the census's minimum age for it (everyone under 15 is 'never married')."""
    said = _map(_col(df, "marital_status"), _say("marital_status"))
    if "age" not in df.columns:
        return said
    young = df["age"].cast(pl.Int64, strict=False) < phrase_data()["marital_status"]["min_age"]
    return _frame(x=said, young=young).select(pl.when(pl.col("young").fill_null(False)).then(None)
                                              .otherwise(pl.col("x")).alias("x")).to_series()


def _veteran(df: pl.DataFrame) -> pl.Series:
    return _map(_col(df, "veteran"), _say("veteran"))


FACTS: dict[str, Callable[[pl.DataFrame], pl.Series]] = {
    "intro": _intro, "agesex": _agesex, "residence": _residence, "race": _simple("race"),
    "hispanic": _simple("hispanic"), "ancestry": _simple("ancestry"), "birth": _birth,
    "language": _language_sentence, "education": _simple("education"), "employment": _employment, "job": _job,
    "income": _income, "marital": _marital, "fertility": _simple("fertility"),
    "veteran": _veteran, "disability": _disability, "insurance": _simple("health_insurance"),
}


# ---- QA answers -------------------------------------------------------------------------------------------

def _a_work(part: str, tense: str) -> Callable[[pl.DataFrame], pl.Series]:
    """Occupation / workplace / employer answer, only for the given tense (now or past)."""
    def fn(df: pl.DataFrame) -> pl.Series:
        f = _work_frame(df)
        cow_answer = _map(_col(df, "class_of_worker"), _answer("class_of_worker"))
        value = {"occ": pl.col("occ").str.replace(r"^(a|an) ", ""), "ind": pl.col("ind"),
                 "cow": pl.lit(cow_answer)}[part]
        out = f.select(pl.when(pl.col("status") == tense).then(value).alias("x")).to_series()
        return _map(out, _cap) if part != "cow" else out
    return fn


def _a_place(df: pl.DataFrame) -> pl.Series:
    return _map(_map(_col(df, "birthplace"), _place), _cap)


def _a_nativity(df: pl.DataFrame) -> pl.Series:
    f = _frame(nat=_map(_col(df, "nativity"), _answer("nativity")), bp=_col(df, "birthplace"))
    return f.select(pl.when(pl.col("bp").is_null()).then(pl.col("nat")).alias("x")).to_series()


def _a_language(df: pl.DataFrame) -> pl.Series:
    table = phrase_data()["language"].get("answer") or {}
    return _map(_col(df, "language"), lambda v: table.get(v) or _cap(_language(v)))


def _a_income(df: pl.DataFrame) -> pl.Series:
    inc = df["income"].cast(pl.Float64, strict=False) if "income" in df.columns else \
        pl.Series([None] * df.height, dtype=pl.Float64)
    f = _frame(inc=inc.fill_nan(None), usd=_map(inc.fill_nan(None), _usd), band=_col(df, "income_band"))
    return f.select(pl.when(pl.col("inc") > 0.5).then(pl.col("usd"))
                    .when(pl.col("inc") < -0.5).then(pl.concat_str(_lit("A loss of "), pl.col("usd")))
                    .when(pl.col("inc").is_not_null()).then(_lit("$0"))
                    .otherwise(pl.col("band")).alias("x")).to_series()


def _a_disability(df: pl.DataFrame) -> pl.Series:
    base = _map(_col(df, "disability"), _answer("disability"))
    det = _details(df)
    if det is None:
        return base
    return _frame(base=base, det=det).select(
        pl.when((pl.col("base") == "Yes") & pl.col("det").is_not_null())
        .then(pl.concat_str(_lit("Yes, "), pl.col("det"))).otherwise(pl.col("base")).alias("x")).to_series()


def _a_marital(df: pl.DataFrame) -> pl.Series:
    return _frame(said=_marital(df), a=_map(_col(df, "marital_status"), _answer("marital_status"))).select(
        pl.when(pl.col("said").is_not_null()).then(pl.col("a")).alias("x")).to_series()


def _a_simple(var: str, col: str | None = None) -> Callable[[pl.DataFrame], pl.Series]:
    return lambda df: _map(_col(df, col or var), _answer(var))


def _a_capital(col: str, prefix: str = "") -> Callable[[pl.DataFrame], pl.Series]:
    """A free-text attribute as an answer: capitalised, or as a first-person sentence ('I keep a garden')."""
    return lambda df: _map(_col(df, col), lambda v: prefix + str(v) if prefix else _cap(str(v)))


ANSWERS: dict[str, Callable[[pl.DataFrame], pl.Series]] = {
    **{f"big5_{d}": _a_capital(f"big5_{d}_level") for d in BIG5_DOMAINS}, "core_values": _a_capital("core_values"),
    **{t: _a_capital(t, "I ") for t in TRAIT_COLUMNS if t != "core_values"},
    "race": _a_simple("race"), "hispanic": _a_simple("hispanic"),
    "ancestry": lambda df: _map(_col(df, "ancestry"), lambda v: None if _say("ancestry")(v) is None else v),
    "birthplace": _a_place, "citizenship": _a_simple("citizenship"), "nativity": _a_nativity,
    "language": _a_language, "english": _a_simple("english_ability"), "education": _a_simple("education"),
    "employment": _a_simple("employment"),
    "occupation_now": _a_work("occ", "now"), "occupation_past": _a_work("occ", "past"),
    "workplace_now": _a_work("ind", "now"), "workplace_past": _a_work("ind", "past"),
    "employer_now": _a_work("cow", "now"), "employer_past": _a_work("cow", "past"),
    "income": _a_income, "marital": _a_marital, "fertility": _a_simple("fertility"),
    "veteran": _a_simple("veteran"), "disability": _a_disability, "insurance": _a_simple("health_insurance"),
}

_WORK = ("employment", "occupation", "industry", "class_of_worker")
# The persona columns each fact / answer reads: it is computed once per distinct combination of them.
INPUTS: dict[str, tuple[str, ...]] = {
    "intro": ("age", "sex", "state"), "agesex": ("age", "sex"), "residence": ("state",), "race": ("race",),
    "hispanic": ("hispanic",), "ancestry": ("ancestry",), "birth": ("citizenship", "birthplace", "nativity"),
    "language": ("language", "english_ability"), "education": ("education",), "employment": _WORK, "job": _WORK,
    "income": ("income", "income_band"), "marital": ("marital_status", "age"), "fertility": ("fertility",),
    "veteran": ("veteran",), "disability": ("disability", *DISABILITY_DETAIL_COLUMNS),
    "insurance": ("health_insurance",), "a_english": ("english_ability",), "a_birthplace": ("birthplace",),
    "a_nativity": ("nativity", "birthplace"), "a_citizenship": ("citizenship",), "a_employment": ("employment",),
    **{f"a_{k}_{t}": _WORK for k in ("occupation", "workplace", "employer") for t in ("now", "past")},
    "a_insurance": ("health_insurance",), **{f"a_big5_{d}": (f"big5_{d}_level",) for d in BIG5_DOMAINS},
    **{f"a_{t}": (t,) for t in TRAIT_COLUMNS},
}
_FORMS = ("i", "you", "asif")
PHRASE_HELPERS: tuple[str, ...] = tuple(f"{form}_{fact}" for fact in FACTS for form in _FORMS) + tuple(
    f"a_{name}" for name in ANSWERS)


def _you(expr: pl.Expr) -> pl.Expr:
    for pat, rep in _TO_YOU:
        expr = expr.str.replace_all(pat, rep)
    return pl.concat_str(expr.str.slice(0, 1).str.to_uppercase(), expr.str.slice(1))


def _asif(expr: pl.Expr) -> pl.Expr:
    you = _you(expr).str.strip_chars_end(".")
    return pl.concat_str(you.str.slice(0, 1).str.to_lowercase(), you.str.slice(1))


def _forms(i: pl.Series, forms: list[str], fact: str) -> dict[str, pl.Series]:
    """The requested forms of a first-person column, converted once per distinct sentence (they repeat)."""
    out = {f"i_{fact}": i} if "i" in forms else {}
    conv = {"you": _you, "asif": _asif}
    todo = [f for f in forms if f in conv]
    if not todo:
        return out
    uniq = i.unique().drop_nulls()
    table = pl.DataFrame([uniq.alias("i")]).select([conv[f](pl.col("i")).alias(f) for f in todo])
    for f in todo:
        out[f"{f}_{fact}"] = i.replace_strict(uniq, table[f], default=None, return_dtype=_S)
    return out


def _compute(df: pl.DataFrame, wanted: set[str]) -> dict[str, pl.Series]:
    out: dict[str, pl.Series] = {}
    for fact, fn in FACTS.items():
        forms = [f for f in _FORMS if f"{f}_{fact}" in wanted]
        if forms:
            out.update(_forms(fn(df), forms, fact))
    for name, fn in ANSWERS.items():
        if f"a_{name}" in wanted:
            out[f"a_{name}"] = fn(df).alias(f"a_{name}")
    return out


def phrase_columns(df: pl.DataFrame, wanted: set[str]) -> dict[str, pl.Series]:
    """The phrase helpers named in `wanted` (i_/you_/asif_<fact>, a_<answer>), computed column-wise, once per
    distinct combination of the attributes they read when rows repeat (a sample drawn with replacement)."""
    names = {n.split("_", 1)[1] for n in wanted if n.startswith(("i_", "you_", "asif_"))} | {
        n for n in wanted if n.startswith("a_")}
    cols = sorted({c for n in names for c in INPUTS.get(n, INPUTS.get(n[2:], ())) if c in df.columns})
    if not names or not cols:
        return _compute(df, wanted)
    key = pl.DataFrame([df[c].rechunk() for c in cols])  # one chunk: a frame concatenated from pieces is slow
    key = key.select([pl.col(c).replace(_JUNK, None) if key.schema[c] == _S
                      else pl.col(c).fill_nan(None) if key.schema[c].is_float() else pl.col(c) for c in cols])
    uniq = key.unique(maintain_order=True)
    if uniq.height * 2 > key.height:
        return _compute(key, wanted)
    res = _compute(uniq, wanted)
    if not res:
        return res
    table = uniq.with_columns([v.alias(k) for k, v in res.items()])
    back = key.join(table, on=cols, how="left", nulls_equal=True, maintain_order="left")
    return {k: back[k] for k in res}
