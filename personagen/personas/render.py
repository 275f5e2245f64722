"""Render persona rows to prompt text with Jinja templates (templates/personas/<style>.j2).

Why: the text is what models see, so it must read naturally, skip unknown attributes (never "None"/"nan")
and be fast enough for 100k-persona builds. Templates get each row's *non-null* columns (unknown =
undefined, so templates test `is defined`) plus helpers computed column-wise here:
noun ("woman"/"man" from sex), income_usd ("$45,000"), big5_summary ("high in openness, ..."),
disability_details (the named difficulties), description (a generated persona's own text_narrative), and the
phrase layer's sentences (personagen/personas/phrases.py: i_/you_/asif_<fact>, a_<answer>).
Only the variables a template references are passed, which keeps the per-row cost near Jinja's own.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Sequence

import jinja2
import jinja2.meta
import numpy as np
import polars as pl
from jinja2 import nodes

from personagen.errors import BadInput
from personagen.personas.phrases import PHRASE_HELPERS, phrase_columns
from personagen.personas.schema import BIG5_DOMAINS, DISABILITY_DETAIL_COLUMNS, STYLES, text_column
from personagen.templating import get_template

__all__ = ["STYLES", "render_personas", "render_cost", "template_name"]

HELPERS: tuple[str, ...] = ("noun", "income_usd", "big5_summary", "disability_details", "description",
                            *PHRASE_HELPERS)
_JUNK = ["", " ", "None", "none", "nan", "NaN", "null", "NULL", "NA", "N/A"]


def template_name(style: str) -> str:
    """Template file of a style; BadInput listing the styles when it is unknown."""
    if style not in STYLES:
        raise BadInput(f"unknown persona style {style!r}; choose from: {', '.join(STYLES)}")
    return f"personas/{style}.j2"


def _check_styles(styles: str | Iterable[str]) -> list[str]:
    styles = [styles] if isinstance(styles, str) else list(styles)
    if not styles:
        raise BadInput(f"no persona style given; choose from: {', '.join(STYLES)}")
    for s in styles:
        template_name(s)
    return list(dict.fromkeys(styles))


def _variables(tmpl: jinja2.Template) -> set[str] | None:
    """Names a template reads, or None when it includes/imports others (then every column is passed)."""
    env = tmpl.environment
    src = env.loader.get_source(env, tmpl.name)[0]
    ast = env.parse(src)
    if any(True for _ in jinja2.meta.find_referenced_templates(ast)):
        return None
    return jinja2.meta.find_undeclared_variables(ast)


def _map_unique(s: pl.Series, fn: Callable[[object], str | None]) -> pl.Series:
    """Apply a Python function to each distinct value only (labels repeat a lot), nulls stay null."""
    uniq = [v for v in s.unique().to_list() if v is not None]
    return s.replace_strict(uniq, [fn(v) for v in uniq], default=None, return_dtype=pl.String)


def _noun(v: object) -> str | None:
    return {"female": "woman", "f": "woman", "woman": "woman", "male": "man", "m": "man",
            "man": "man"}.get(str(v).strip().lower())


def _usd(v: object) -> str | None:
    try:
        x = round(float(v))
    except (TypeError, ValueError):
        return None
    return f"-${-x:,}" if x < 0 else f"${x:,}"


def _dis_detail(col: str) -> Callable[[object], str | None]:
    name = {"dis_selfcare": "self-care", "dis_independent": "independent living"}.get(col, col[4:])

    def fn(v: object) -> str | None:
        t = str(v).strip()
        low = t.lower()
        if low in ("yes", "true", "1"):
            return f"{name} difficulty"
        if not t or low.startswith("no") or low in ("false", "0") or t in _JUNK:
            return None
        return t

    return fn


def _helpers(df: pl.DataFrame, wanted: set[str]) -> dict[str, pl.Series]:
    """Helper columns a template uses and the data allow, computed per distinct value or column-wise."""
    cols = set(df.columns)
    out: dict[str, pl.Series] = {}
    if "noun" in wanted and "sex" in cols:
        out["noun"] = _map_unique(df["sex"], _noun)
    if "income_usd" in wanted and "income" in cols:
        out["income_usd"] = _map_unique(df["income"], _usd)
    if "big5_summary" in wanted:
        parts = [_map_unique(df[f"big5_{d}_level"], lambda v, d=d: f"{v} in {d}" if str(v) not in _JUNK else None)
                 for d in BIG5_DOMAINS if f"big5_{d}_level" in cols]
        if parts:
            out["big5_summary"] = pl.DataFrame(parts).select(
                pl.concat_str(pl.all(), separator=", ", ignore_nulls=True).replace("", None)).to_series()
    if "disability_details" in wanted and "disability" in cols:
        parts = [_map_unique(df[c], _dis_detail(c)) for c in DISABILITY_DETAIL_COLUMNS if c in cols]
        if parts:
            has = _map_unique(df["disability"], lambda v: "y" if str(v).strip().lower().startswith("with") else None)
            details = pl.DataFrame(parts).select(
                pl.concat_str(pl.all(), separator=", ", ignore_nulls=True).replace("", None)).to_series()
            out["disability_details"] = pl.DataFrame({"h": has, "d": details}).select(
                pl.when(pl.col("h").is_not_null()).then(pl.col("d"))).to_series()
    if "description" in wanted and "text_narrative" in cols:
        generated = pl.lit(True) if "source" not in cols else pl.col("source").fill_null("") != "census"
        out["description"] = df.select(pl.when(generated).then(pl.col("text_narrative"))).to_series()
    out.update(phrase_columns(df, wanted))
    return {k: v.alias(k) for k, v in out.items()}


def _context_frame(df: pl.DataFrame, wanted: set[str] | None) -> pl.DataFrame:
    """The columns a template needs, helpers added, junk strings ("", "None", "nan", ...) and NaN nulled."""
    cols = set(df.columns)
    wanted_all = cols | set(HELPERS) if wanted is None else wanted
    helpers = _helpers(df, wanted_all)
    series = [df[c] for c in df.columns if c in wanted_all and c not in helpers] + list(helpers.values())
    if not series:
        return pl.DataFrame()
    exprs = []
    for s in series:
        e = pl.col(s.name)
        if s.dtype == pl.String:
            e = pl.when(e.is_in(_JUNK)).then(None).otherwise(e)
        elif s.dtype.is_float():
            e = e.fill_nan(None)
        exprs.append(e.alias(s.name))
    return pl.DataFrame(series).select(exprs)


_SENT = "\x00{}\x00"
_SENT_RE = re.compile("\x00(\\d+)\x00")


def _fast_path_ok(tmpl: jinja2.Template, names: set[str]) -> bool:
    """True when every use of a row variable is `x is defined`/`is undefined`, or printing it as is.

    Then a row's text depends only on which variables are defined and on their str() values, so the
    template can be rendered once per definedness pattern with placeholders and filled column-wise."""
    env = tmpl.environment
    ast = env.parse(env.loader.get_source(env, tmpl.name)[0])
    if any(True for _ in jinja2.meta.find_referenced_templates(ast)):
        return False
    ok = True

    def visit(node: nodes.Node, parent: nodes.Node | None, grand: nodes.Node | None) -> None:
        nonlocal ok
        if isinstance(node, (nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.Scope, nodes.With)):
            ok = False
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in names:
            if isinstance(parent, nodes.Test) and parent.name in ("defined", "undefined") and parent.node is node:
                pass
            elif isinstance(parent, nodes.Output):
                pass
            elif isinstance(parent, nodes.CondExpr) and parent.test is not node and isinstance(grand, nodes.Output):
                pass
            else:
                ok = False
        for child in node.iter_child_nodes():
            visit(child, node, parent)

    visit(ast, None, None)
    return ok


def _render_fast(frame: pl.DataFrame, tmpl: jinja2.Template) -> list[str]:
    """Render once per pattern of defined variables with placeholders, then fill the values column-wise."""
    names = frame.columns
    n = frame.height
    # str() of values exactly as Jinja prints them: polars casts for str/int, Python str() otherwise
    texts = {}
    for c in names:
        dt = frame.schema[c]
        if dt == pl.String:
            texts[c] = frame[c]
        elif dt.is_integer():
            texts[c] = frame[c].cast(pl.String)
        else:
            texts[c] = pl.Series(c, [None if v is None else str(v) for v in frame[c].to_list()], dtype=pl.String)
    pattern = np.zeros(n, dtype=object) if len(names) > 62 else np.zeros(n, dtype=np.int64)
    for i, c in enumerate(names):
        present = frame[c].is_not_null().to_numpy()
        pattern = pattern + present.astype(np.int64) * (1 << i) if len(names) <= 62 else \
            pattern + np.where(present, 1 << i, 0).astype(object)
    uniq, inverse = np.unique(pattern, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    cols = pl.DataFrame(texts).select(pl.all().gather(order)) if names else None
    new_context, root, concat = tmpl.new_context, tmpl.root_render_func, tmpl.environment.concat
    pieces_out = []
    for u, code in enumerate(uniq):
        code = int(code)
        ctx = {c: _SENT.format(i) for i, c in enumerate(names) if code >> i & 1}
        skeleton = concat(root(new_context(ctx)))
        parts = _SENT_RE.split(skeleton)
        exprs = [pl.lit(p) if k % 2 == 0 else pl.col(names[int(p)]) for k, p in enumerate(parts) if p or k % 2]
        block = cols.slice(int(bounds[u]), int(bounds[u + 1] - bounds[u])) if cols is not None else None
        if block is None:
            pieces_out.append(pl.Series("t", [skeleton] * n, dtype=pl.String))
            continue
        expr = pl.concat_str(exprs) if exprs else pl.lit("")
        pieces_out.append(block.select(expr.cast(pl.String).alias("t")).to_series())
    sorted_text = pl.concat(pieces_out) if pieces_out else pl.Series("t", [], dtype=pl.String)
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    return sorted_text.gather(inv).str.strip_chars().to_list()


def _render_rows(frame: pl.DataFrame, tmpl: jinja2.Template) -> list[str]:
    """Reference path: render every row with the compiled template (context = the row's non-null values)."""
    names = frame.columns
    new_context, root, concat = tmpl.new_context, tmpl.root_render_func, tmpl.environment.concat
    out: list[str] = []
    append = out.append
    for vals in zip(*(frame[c].to_list() for c in names)):
        ctx = {k: v for k, v in zip(names, vals) if v is not None}
        append(concat(root(new_context(ctx))).strip())
    return out


def _render_style(df: pl.DataFrame, tmpl: jinja2.Template, fast: bool = True) -> list[str]:
    """Texts for every row of df; the placeholder fast path when the template allows it."""
    frame = _context_frame(df, _variables(tmpl))
    if frame.width == 0:
        text = tmpl.environment.concat(tmpl.root_render_func(tmpl.new_context({}))).strip()
        return [text] * df.height
    try:
        if fast and _fast_path_ok(tmpl, set(frame.columns)):
            return _render_fast(frame, tmpl)
        return _render_rows(frame, tmpl)
    except jinja2.TemplateError as e:
        raise BadInput(f"{tmpl.filename}: {e}") from None


def render_personas(df: pl.DataFrame, styles: str | Sequence[str] = ("narrative",),
                    templates: str | os.PathLike | None = None) -> pl.DataFrame:
    """Add text_<style> columns rendered from templates/personas/<style>.j2 (a `templates` dir overrides).

    Generated personas (source other than "census") keep an existing non-null text_<style>: their text
    is the persona itself; their other styles can use it as `description`. A text with nothing to say is
    null. Templates whose row variables are only tested with `is defined` or printed as is are rendered
    once per pattern of known attributes and filled column-wise (same text, ~10x faster); others row by row."""
    styles = _check_styles(styles)
    new_cols = []
    for style in styles:
        tmpl = get_template(template_name(style), templates)
        col = text_column(style)
        texts = pl.Series(col, _render_style(df, tmpl), dtype=pl.String).replace("", None)
        if col in df.columns:
            generated = (pl.lit(True) if "source" not in df.columns
                         else pl.col("source").fill_null("") != "census")
            keep = generated & pl.col(col).is_not_null() & (pl.col(col).str.strip_chars() != "")
            texts = df.select(pl.when(keep).then(pl.col(col)).otherwise(pl.lit(texts)).alias(col)).to_series()
        new_cols.append(texts)
    return df.with_columns(new_cols)


def render_cost(df: pl.DataFrame, style: str = "narrative", templates: str | os.PathLike | None = None
                ) -> dict[str, float]:
    """Time one style's rendering of df (for the build benchmark): rows, seconds, microseconds per row."""
    get_template(template_name(style), templates)  # load and compile outside the timing
    t0 = time.perf_counter()
    render_personas(df, (style,), templates)
    sec = time.perf_counter() - t0
    return {"style": style, "rows": df.height, "seconds": sec,
            "us_per_row": 1e6 * sec / max(df.height, 1), "rows_per_s": df.height / sec if sec else float("inf")}
