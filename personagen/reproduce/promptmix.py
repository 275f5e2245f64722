"""`personagen reproduce promptmix`: paper 001's Table 1 (Big Five) / Table 3 (MobLab) Wasserstein rows.

For every scenario (a Big Five domain on the 10-50 sum scale, or a MobLab game role) and every method
(EM, GB): learn a prompt mixture on D_obs (personagen.mixture, defaults as the paper: EM K = 10 for the Big
Five and 50 for MobLab games, GB K = 200, n = 10 samples per prompt, ≤ 20 EM iterations, SLSQP weights),
then evaluate as §3.1: 1,000 draws from the mixture against D_obs, with the "1,000 Human Samples", "Fixed
System Prompt" and (given a persona file) "Persona Hub" baselines. The fine-tuned Llama, OASIS and Modular
Pluralism rows need models that do not run here; their published numbers are printed beside ours.
`max_obs` caps the D_obs points the search sees (the E-step's cost grows with it); evaluation uses all of D_obs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from personagen.errors import BadInput
from personagen.infile import read_text
from personagen.reproduce.published import BIG5_TABLE1, MOBLAB_TABLE3, PROMPTMIX_SOURCE

TARGETS = ("big5", "moblab")
BIG5_DIMS = ("O", "C", "E", "A", "N")
MOBLAB_DIMS = ("dictator", "proposer", "responder")  # the games present in the local MobLab data
EM_K = {"big5": 10, "moblab": 50}  # paper 001, Appendix B.1


@dataclass(frozen=True)
class PromptMixReproOptions:
    """What `reproduce promptmix` runs; `components=None` uses the paper's K per method and target."""

    target: str
    data: Path
    out: Path
    dims: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("em", "gb")
    components: int | None = None
    samples: int = 10
    iters: int = 20
    draws: int = 1000
    improve_rounds: int = 1
    personahub: Path | None = None
    max_obs: int | None = None
    backend: str = "local"
    base_url: str | None = None
    model: str | None = None
    seed: int = 0
    concurrency: int = 4
    prompt_tokens: int = 120

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise BadInput(f"--target {self.target!r}: expected one of {', '.join(TARGETS)}")
        if not Path(self.data).exists():
            raise BadInput(f"--data {self.data}: does not exist")
        allowed = BIG5_DIMS if self.target == "big5" else MOBLAB_DIMS
        bad = [d for d in self.dims if d not in allowed]
        if bad:
            raise BadInput(f"--dims {', '.join(bad)}: expected some of {', '.join(allowed)}")
        bad = [m for m in self.methods if m not in ("em", "gb")]
        if bad or not self.methods:
            raise BadInput("--methods: expected em and/or gb")
        for name in ("samples", "iters", "draws"):
            if getattr(self, name) < 1:
                raise BadInput(f"--{name}: must be at least 1")
        if self.personahub is not None and not Path(self.personahub).is_file():
            raise BadInput(f"--personahub {self.personahub}: not a file")

    @property
    def dim_list(self) -> tuple[str, ...]:
        return self.dims or (BIG5_DIMS if self.target == "big5" else MOBLAB_DIMS)

    def k(self, method: str) -> int:
        return self.components or (EM_K[self.target] if method == "em" else 200)


@dataclass
class PromptMixReproResult:
    table: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def scenario_and_data(opts: PromptMixReproOptions, dim: str) -> tuple[Any, np.ndarray]:
    from personagen.mixture import big5_observed, big5_scenario, moblab_observed, moblab_scenario

    if opts.target == "big5":
        return big5_scenario(dim), big5_observed(opts.data, dim)
    return moblab_scenario(dim), moblab_observed(opts.data, dim)


def load_personas(path: Path | None) -> list[str]:
    """Persona strings of a PersonaHub-style JSONL file ({"persona": ...} per line)."""
    if path is None:
        return []
    out = []
    for line in read_text(path, "persona file").splitlines():
        if line.strip():
            rec = json.loads(line)
            out.append(str(rec.get("persona") or rec.get("input persona") or ""))
    return [p for p in out if p]


def _run_dim(c: Any, opts: PromptMixReproOptions, dim: str, personas: list[str]) -> dict[str, dict]:
    from personagen.mixture import EvalOptions, MixtureOptions, evaluate_mixture, search

    sc, obs = scenario_and_data(opts, dim)
    rng = np.random.default_rng(opts.seed)
    train = rng.choice(obs, size=opts.max_obs, replace=False) if opts.max_obs and obs.size > opts.max_obs else obs
    rows: dict[str, dict] = {}
    for i, method in enumerate(opts.methods):
        mo = MixtureOptions(method=method, components=opts.k(method), samples=opts.samples, max_iters=opts.iters,
                            improve_rounds=opts.improve_rounds, seed=opts.seed)
        res, prim = search(c, train, sc, mo, prompt_tokens=opts.prompt_tokens)
        base = ("human", "fixed", "personahub") if i == 0 else ()
        ev = evaluate_mixture(prim, res, obs, EvalOptions(draws=opts.draws, seed=opts.seed, baselines=base), personas)
        ours = ev.pop("Ours")
        rows.update(ev)
        rows[f"Ours ({method.upper()})"] = {**ours, "k": len(res.prompts), "converged": res.converged,
                                            "iterations": len(res.history), "counts": dict(prim.counts)}
    return rows


def promptmix_table(opts: PromptMixReproOptions, per_dim: dict[str, dict[str, dict]]) -> dict[str, Any]:
    paper = BIG5_TABLE1 if opts.target == "big5" else MOBLAB_TABLE3
    names = list(dict.fromkeys([n for d in per_dim.values() for n in d] + list(paper)))
    rows = {n: {d: {**per_dim[d].get(n, {}), "paper": paper.get(n, {}).get(d)} for d in per_dim} for n in names}
    return {"target": opts.target, "columns": list(per_dim), "rows": rows, "paper_source": PROMPTMIX_SOURCE,
            "draws": opts.draws}


def reproduce_promptmix(opts: PromptMixReproOptions) -> PromptMixReproResult:
    """Run every (scenario, method) and write OUT/promptmix_<target>/table.{json,md}."""
    from personagen.llm import LLMClient, progress_bar
    from personagen.reproduce.tables import promptmix_markdown, write_table

    t0 = time.time()
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    personas = load_personas(opts.personahub)
    client = LLMClient.create(backend=opts.backend, base_url=opts.base_url, model=opts.model,
                              cache_path=Path(opts.out) / "llm.sqlite", concurrency=opts.concurrency, progress=True)
    per_dim = {}
    with client as c, progress_bar(len(opts.dim_list), f"reproduce promptmix {opts.target}", True,
                                   unit="scenario") as bar:  # also while no model call is out
        for d in opts.dim_list:
            per_dim[d] = _run_dim(c, opts, d, personas)
            bar.update(1)
    table = promptmix_table(opts, per_dim)
    res = PromptMixReproResult(table=table)
    res.paths = write_table(Path(opts.out) / f"promptmix_{opts.target}", table, promptmix_markdown(table))
    res.seconds = round(time.time() - t0, 2)
    return res
