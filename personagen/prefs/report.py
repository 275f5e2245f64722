"""Tables (markdown) and the figure of a prefs evaluation (EvalResult.to_dict())."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _f(x: Any) -> str:
    return "—" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _kappa(x: Any, n: int) -> str:
    """A κ cell: "undefined" (not a number) when there were labels but κ has no value (p_e = 1)."""
    return "undefined" if x is None and n else _f(x)


def render_markdown(rep: dict[str, Any]) -> str:
    """Three tables: the evaluator check (paper 96%), two-role-player agreement, LOO κ per attribute (Fig. 5)."""
    ev, ag = rep["evaluator"], rep["agreement"]
    lines = ["# PERSONA preference pairs: validation", "",
             "## Role-playing evaluator prefers `chosen` (paper §3.2: 96%)", "",
             "| pairs | parsed | unparsed | prefers chosen | rate | paper |", "|---|---|---|---|---|---|",
             f"| {ev['pairs']} | {ev['parsed']} | {ev['unparsed']} | {ev['prefers_chosen']} | {_f(ev['rate'])} "
             f"| {ev['paper_rate']} |", "",
             "## Agreement between two role-players (Cohen's κ, §4.2)", ""]
    for name, c in ag["configs"].items():
        stand = " — same model, other system template and temperature, standing in for a second model" \
            if c.get("stand_in") else ""
        lines.append(f"- {name}: `{c['model']}`, {c['system']}, temperature {c['temperature']}{stand}")
    pp = ag["per_persona"]
    lines += ["", "| pairs | κ | raw agreement | personas | κ defined | per-persona κ median [q1, q3] |",
              "|---|---|---|---|---|---|",
              f"| {ag['n']} | {_kappa(ag['kappa'], ag['n'])} | {_f(ag['raw_agreement'])} | {pp['n']} | {pp['defined']} "
              f"| {_f(pp['median'])} [{_f(pp['q1'])}, {_f(pp['q3'])}] |"]
    if rep.get("loo"):
        lines += ["", "## Leave-one-out attribute influence (Cohen's κ per persona pair, §4.1 / Fig. 5)", "",
                  "| attribute | pairs | κ defined | mean | median | q1 | q3 |", "|---|---|---|---|---|---|---|"]
        for a, s in rep["loo"].items():
            cells = [_kappa(s[k], s["n"]) for k in ("mean", "median", "q1", "q3")]
            lines.append(f"| {a} | {s['n']} | {s['defined']} | " + " | ".join(cells) + " |")
        lines += ["", "Lower κ = the attribute changes the persona's choices more. κ is undefined when both "
                      "annotators give one and the same answer to every question."]
    return "\n".join(lines) + "\n"


def render_plot(rep: dict[str, Any], path: Path) -> None:
    """eval.png: LOO κ per attribute (box plot, Fig. 5) and the per-persona κ of the two role-players (histogram)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))  # its own Agg canvas: the caller's pyplot backend is left alone
    FigureCanvasAgg(fig)
    (ax1, ax2) = fig.subplots(1, 2)
    loo = {f"{a} ({s['defined']}/{s['n']})": [k for k in s["kappas"] if k is not None]
           for a, s in (rep.get("loo") or {}).items()}
    if loo:
        ax1.boxplot(list(loo.values()) or [[]], tick_labels=list(loo), orientation="horizontal")
    ax1.set(title="Leave-one-out: κ(without, with attribute)\nattribute (κ defined / pairs)", xlabel="Cohen's κ", xlim=(-1.05, 1.05))
    ks = [k for k in rep["agreement"]["per_persona_kappa"].values() if k is not None]
    ax2.hist(ks, bins=20, range=(-1, 1), color="tab:blue")
    ev = rep["evaluator"]["rate"]
    ax2.set(title=f"Two role-players: κ per persona\n(evaluator prefers chosen: {_f(ev)}; paper 0.96)",
            xlabel="Cohen's κ", ylabel="personas")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
