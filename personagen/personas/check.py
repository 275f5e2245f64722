"""Persona-text checker: find rendered texts that do not read like a person (no model involved).

Why: the rendered text is what a model conditions on. The defect classes are the ones seen in census-form
texts: contradictions (not employed, yet "I work as ..."), template artifacts ("{{", "None", double spaces,
" ,", empty answers), raw census labels (plural occupation titles, "N.E.C.", parenthesised codes, "Not in labor
force" verbatim), form-like "Field: Value" phrasing ("Employment: ...", "my Hispanic origin is ..."), grammar
slips ("a a", "an cashier", "you am") and QA answers that do not fit their question (a yes/no question not
answered with Yes or No; a Yes/No answer to a question that asks for something else). Every rule is a
vectorised polars expression over one style's text column plus the persona's attribute columns.

    check_personas(df, CheckOptions(styles=("qa", "bio"))) -> CheckResult (defect counts per style and rule)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from personagen.errors import BadInput
from personagen.personas.schema import STYLES, text_column

__all__ = ["RULES", "CheckOptions", "CheckResult", "check_personas"]

_NOT_WORKING = ["Unemployed", "Not in labor force"]
_WORKING = ["Employed", "Employed, not at work", "Armed forces", "Armed forces, not at work"]
# Census labels that must never appear verbatim in a persona text.
_RAW_LABELS = ("Not in labor force", "N.E.C", "Born in the US", "Native-born", "Foreign-born", "Never served",
               "No disability", "No birth in the past", "Not Hispanic", "Private for-profit employee",
               "Self-employed, not incorporated", "Unemployed, last worked", "Regular high school diploma",
               "Employer-based insurance", "English only", "Not a US citizen", "Naturalized citizen")
_YES_NO_START = r"^(Are|Do|Does|Have|Has|Were|Was|Is|Did|Can) "


def _has(pattern: str) -> Callable[[pl.Expr], pl.Expr]:
    return lambda t: t.str.contains(pattern)


def _artifact(t: pl.Expr) -> pl.Expr:
    """Template artifacts: Jinja markers, None/nan, doubled or misplaced spaces and punctuation, empty fields."""
    return (t.is_null() | (t.str.strip_chars() == "")
            | t.str.contains(r"\{\{|\}\}|\{%|%\}|\bNone\b|\bnan\b|\bnull\b|  | ,| \.|,,|\.\.|;;|; \.|:\s*(\n|$)|"
                             r"Answer: *\n|\bis \.|\bas \.|\bin \."))


def _raw_label(t: pl.Expr) -> pl.Expr:
    """Verbatim census labels, parenthesised codes/qualifiers, and an article-less job ('I work as Cashiers')."""
    labels = "|".join(s.replace(".", r"\.") for s in _RAW_LABELS)
    return t.str.contains(rf"{labels}|\([^)]*\)|\b(work|worked|working) as [A-Z]|\b(work|worked) as [a-z]+s\b")


def _plural_title(t: pl.Expr) -> pl.Expr:
    """The person's plural occupation/industry title pasted verbatim ('Marketing managers', 'Hardware stores')."""
    out = pl.lit(False)
    for col in ("occupation", "industry"):
        label = pl.col(col).fill_null("\x00")
        plural = label.str.ends_with("s") & (label.str.len_chars() > 4)
        out = out | (plural & t.str.contains(label, literal=True))
    return out


def _form_like(t: pl.Expr) -> pl.Expr:
    """'Field: Value' or 'your X status is Value' phrasing instead of a sentence a person would say."""
    body = t.str.replace_all(r"(Question|Answer|Description): ", "")
    return (body.str.contains(r"(^|[.;]\s+)[A-Z][A-Za-z ]{2,40}: [A-Z]")
            | body.str.contains(r"\b(status|origin|service|ability|nativity|citizenship|disability|insurance|"
                                r"occupation|employment|industry) (is|are|were|was) [A-Z]"))


def _grammar(t: pl.Expr) -> pl.Expr:
    """Article and agreement slips: 'a a', 'an cashier', 'a engineer', 'a 8-year-old', 'you am', 'I are'."""
    return t.str.contains(r"\b(a|an|the) (a|an|the)\b|\ban [bcdfgjklmnpqrstvwxz][a-z]|\ba [aeio][a-z]|"
                          r"\ba (8|11-|18-)|\byou am\b|\bI are\b|\byou is\b|\bwere were\b|\byour [a-z]+ were\b")


def _contradiction(t: pl.Expr) -> pl.Expr:
    """Statements that contradict the person's own attributes (work tense, citizenship)."""
    emp = pl.col("employment")
    now = t.str.contains(r"\b(I|you|You) work (as|at|in|for)\b|What is your occupation\?|Where do you work\?")
    past = t.str.contains(r"\blast worked\b|most recent occupation|Where did you last work")
    cit = pl.col("citizenship")
    citizen_claim = t.str.contains(r"citizen by birth|naturalized|Answer: Yes, by birth")
    not_citizen = t.str.contains(r"not a U\.S\. citizen")
    return ((emp.is_in(_NOT_WORKING).fill_null(False) & now)
            | (emp.is_in(_WORKING).fill_null(False) & past)
            | (emp.is_null() & pl.col("occupation").is_null() & (now | past))
            | ((cit == "Not a US citizen").fill_null(False) & citizen_claim)
            | (cit.is_in(["Born in the US", "Naturalized citizen"]).fill_null(False) & not_citizen))


def _qa_misfit(t: pl.Expr) -> pl.Expr:
    """QA pairs whose answer does not fit: yes/no questions need Yes/No first; others must not be Yes/No."""
    pairs = t.str.extract_all(r"Question: [^\n]*\nAnswer: [^\n]*")
    q = pl.element().str.extract(r"Question: ([^\n]*)\n", 1)
    a = pl.element().str.extract(r"\nAnswer: ([^\n]*)", 1)
    yes_no_q = q.str.contains(_YES_NO_START)
    yes_no_a = a.str.contains(r"^(Yes|No)\b")
    bad = pairs.list.eval((yes_no_q != yes_no_a) | (a.str.strip_chars() == "")).list.any()
    return bad | (t.str.count_matches(r"(?m)^Question: ") != pairs.list.len())


RULES: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "artifact": _artifact,
    "raw_label": _raw_label,
    "plural_title": _plural_title,
    "form_like": _form_like,
    "grammar": _grammar,
    "contradiction": _contradiction,
    "qa_misfit": _qa_misfit,
}
# Rules that only make sense for one style.
_STYLE_RULES: dict[str, tuple[str, ...]] = {"qa": tuple(RULES)}
_NON_QA = tuple(r for r in RULES if r != "qa_misfit")


@dataclass(frozen=True)
class CheckOptions:
    """Which rendered styles to check and how many example texts to keep per style and rule."""

    styles: tuple[str, ...] = STYLES
    examples: int = 3

    def __post_init__(self) -> None:
        bad = [s for s in self.styles if s not in STYLES]
        if bad or not self.styles:
            raise BadInput(f"styles: unknown or empty {bad or list(self.styles)}; choose from {', '.join(STYLES)}")
        if not isinstance(self.examples, int) or self.examples < 0:
            raise BadInput(f"examples: {self.examples!r} must be a non-negative integer")


@dataclass(frozen=True)
class CheckResult:
    """Defect counts: per style and rule, personas with any defect per style, and in any style."""

    n: int
    counts: dict[str, dict[str, int]]
    defective: dict[str, int]
    any_style: int
    examples: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def rate(self, style: str | None = None) -> float:
        """Share of personas with at least one defect (in `style`, or in any style)."""
        k = self.any_style if style is None else self.defective[style]
        return k / self.n if self.n else 0.0


_ATTRS = ("employment", "occupation", "industry", "citizenship")


def check_personas(df: pl.DataFrame, options: CheckOptions | None = None) -> CheckResult:
    """Run every rule over each rendered style of `df` (text_<style> columns plus the attribute columns)."""
    opts = options or CheckOptions()
    missing = [text_column(s) for s in opts.styles if text_column(s) not in df.columns]
    if missing:
        raise BadInput(f"personas: no rendered column {', '.join(missing)} (render these styles first)")
    base = df.select([pl.col(c).cast(pl.String) if c in df.columns else pl.lit(None, dtype=pl.String).alias(c)
                      for c in _ATTRS] + [pl.col(text_column(s)) for s in opts.styles])
    counts: dict[str, dict[str, int]] = {}
    defective: dict[str, int] = {}
    examples: dict[str, dict[str, list[str]]] = {}
    any_flag = pl.Series([False] * df.height)
    for style in opts.styles:
        t = pl.col(text_column(style))
        rules = _STYLE_RULES.get(style, _NON_QA)
        flags = base.select([RULES[r](t).fill_null(True).alias(r) for r in rules])
        counts[style] = {r: int(flags[r].sum()) for r in rules}
        row_any = flags.select(pl.any_horizontal(pl.all())).to_series()
        defective[style] = int(row_any.sum())
        any_flag = any_flag | row_any
        examples[style] = {r: base.filter(flags[r])[text_column(style)].head(opts.examples).to_list()
                           for r in rules if counts[style][r]}
    return CheckResult(n=df.height, counts=counts, defective=defective, any_style=int(any_flag.sum()),
                       examples=examples)
