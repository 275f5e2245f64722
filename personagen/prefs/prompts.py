"""Prompt curation for PERSONA (Castricato et al. 2024, §3.2 "Prompts Curation").

The paper starts from PRISM's opening prompts and (1) removes every instruction without a question mark and
every instruction under five words, (2) asks a model, as a zero-shot classifier, whether the question is
controversial and drops those that would not induce diverse opinions (3,868 of 8,011 kept), (3) splits the kept
prompts into 3,000 train and 868 held-out prompts "which uniformly cover the distribution of topics". Each step
is a function here; the counts after every filter are reported. An unparsable classifier verdict is retried
once with a new seed and then dropped (fail closed) and counted.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.errors import BadInput, PersonagenError
from personagen.infile import regular_file
from personagen.prefs import calls

PAPER_HELDOUT_FRACTION = 868 / 3868  # §3.2: 3,000 train + 868 held-out of the 3,868 kept prompts
_HUB_NAME = re.compile(r"^(hf:)?([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)$")
_DATA_EXT = (".parquet", ".jsonl", ".json", ".csv")


@dataclass(frozen=True)
class CurateOptions:
    """How to read and filter the prompt source (a local file, or a Hub dataset `ORG/NAME` / `hf:ORG/NAME`)."""

    source: str
    prompt_column: str = "prompt"
    topic_column: str = "topic"
    min_words: int = 5  # §3.2: "any instruction under five words in length" is removed
    classify: bool = True  # §3.2: zero-shot controversy classifier
    heldout_fraction: float = PAPER_HELDOUT_FRACTION
    seed: int = 0
    max_retries: int = 1
    limit: int | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        if not str(self.source).strip():
            raise BadInput("--prompts: empty source")
        if self.min_words < 1:
            raise BadInput(f"--min-words {self.min_words}: must be >= 1")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise BadInput(f"--heldout-fraction {self.heldout_fraction}: must be in [0, 1)")
        if self.max_retries < 0:
            raise BadInput(f"--max-retries {self.max_retries}: must be >= 0")
        if self.limit is not None and self.limit < 1:
            raise BadInput(f"--prompt-limit {self.limit}: must be >= 1")


@dataclass
class CurationResult:
    """The curated prompts (prompt_id, prompt, topic, split ∈ {train, heldout}) and the count at each filter."""

    prompts: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    topics: dict[str, dict[str, int]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "topics": self.topics, "source": self.source}


def prompt_id(text: str) -> str:
    """A stable id from the prompt text (same prompt → same id in every run and library)."""
    return "q" + hashlib.sha256(text.strip().encode()).hexdigest()[:12]


# ---- reading -----------------------------------------------------------------------------------------

def _read_file(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    regular_file(path, "prompts file")  # not a device or pipe (a symlink to /dev/zero is read without end)
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path)
        if suffix in (".jsonl", ".json"):
            return pl.read_ndjson(path, infer_schema_length=None)
        if suffix in (".csv", ".tsv"):
            return pl.read_csv(path, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=0)
    except Exception as e:  # noqa: BLE001 - any decode failure is bad input
        raise BadInput(f"{path}: not a readable {suffix[1:]} file ({type(e).__name__})") from None
    raise BadInput(f"{path}: expected .jsonl, .csv or .parquet")


def _download(repo: str, revision: str | None) -> Path:
    """snapshot_download a Hub dataset's data files into the Hugging Face cache (token from $HF_TOKEN)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    token: str | bool = os.environ.get("HF_TOKEN", "").strip() or False
    try:
        return Path(snapshot_download(repo_id=repo, repo_type="dataset", revision=revision, token=token,
                                      allow_patterns=[f"*{e}" for e in _DATA_EXT]))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise BadInput(f"--prompts {repo}: dataset not found on the Hub (revision {revision or 'main'})") from None
    except (HfHubHTTPError, OSError) as e:
        raise PersonagenError(f"--prompts {repo}: download failed ({str(e).splitlines()[0]})") from None


def read_prompts(opts: CurateOptions) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The source as a frame with `prompt` (and `topic`) columns; a Hub name is downloaded into the cache."""
    path = Path(opts.source)
    if path.exists():
        frames, info = [_read_file(path)], {"kind": "file", "name": path.name}
    elif (m := _HUB_NAME.match(str(opts.source))) and not str(opts.source).startswith(("/", ".")):
        folder = _download(m.group(2), opts.revision)
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _DATA_EXT and p.is_file())
        frames = [f for f in (_read_file(p) for p in files) if opts.prompt_column in f.columns]
        info = {"kind": "hub", "repo": m.group(2), "revision": opts.revision or "main", "files": len(files)}
    else:
        raise BadInput(f"--prompts {opts.source}: no such file (and not a Hub dataset name ORG/NAME)")
    if not frames or opts.prompt_column not in frames[0].columns:
        raise BadInput(f"--prompts {opts.source}: no column {opts.prompt_column!r}")
    cols = [pl.col(opts.prompt_column).cast(pl.String).alias("prompt")]
    df = pl.concat([f.select(cols + ([pl.col(opts.topic_column).cast(pl.String).alias("topic")]
                                     if opts.topic_column in f.columns else [pl.lit(None, pl.String).alias("topic")]))
                    for f in frames], how="vertical")
    return df, info


# ---- filters (§3.2) -------------------------------------------------------------------------------------

def rule_filter(df: pl.DataFrame, min_words: int = 5) -> tuple[pl.DataFrame, dict[str, int]]:
    """§3.2: drop empty/duplicate prompts, then those without '?', then those under `min_words` words."""
    counts = {"input": df.height}
    df = df.with_columns(pl.col("prompt").str.strip_chars()).filter(pl.col("prompt").str.len_chars() > 0)
    df = df.unique(subset="prompt", keep="first", maintain_order=True)
    counts["nonempty_unique"] = df.height
    df = df.filter(pl.col("prompt").str.contains("?", literal=True))
    counts["question_mark"] = df.height
    df = df.filter(pl.col("prompt").str.split(" ").list.eval(pl.element().filter(pl.element() != "")).list.len()
                   >= min_words)
    counts["min_words"] = df.height
    return df, counts


def parse_controversial(text: str | None) -> bool | None:
    """Classifier reply → True (controversial), False, or None when it says neither."""
    if not text:
        return None
    t = text.strip().lower()
    if re.match(r"^\W*(no\b|not controversial|non-controversial|uncontroversial)", t):
        return False
    if re.match(r"^\W*(yes\b|controversial)", t):
        return True
    return None


def classify(prompts: list[str], client: Any, opts: CurateOptions, templates: Any = None
             ) -> tuple[list[bool], int]:
    """§3.2 zero-shot controversy classifier; unparsed verdicts are retried, then rejected. -> (keep, unparsed)."""
    verdict: list[bool | None] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    for attempt in range(opts.max_retries + 1):
        reqs = [calls.chat(calls.prompt("classify.j2", templates, prompt=prompts[i]),
                           temperature=0.0 if attempt == 0 else 0.7, max_tokens=8,
                           seed=calls.seed_of("classify", prompts[i], attempt)) for i in todo]
        for i, text in zip(todo, calls.texts(client, reqs, desc="prefs-classify")):
            verdict[i] = parse_controversial(text)
        todo = [i for i in todo if verdict[i] is None]
        if not todo:
            break
    return [v is True for v in verdict], len(todo)


def split_by_topic(df: pl.DataFrame, heldout_fraction: float, seed: int) -> pl.DataFrame:
    """§3.2 train / held-out split covering topics evenly: each topic contributes its share of held-out prompts
    (largest remainder, so the total is round(fraction · n)); prompts without a topic form one stratum."""
    df = df.with_columns(pl.col("topic").fill_null("unknown"))
    topics = df["topic"].to_list()
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(topics):
        groups.setdefault(t, []).append(i)
    total = round(heldout_fraction * df.height)
    quota = {t: heldout_fraction * len(ix) for t, ix in groups.items()}
    take = {t: int(np.floor(q)) for t, q in quota.items()}
    for t in sorted(quota, key=lambda t: (-(quota[t] - take[t]), t))[: total - sum(take.values())]:
        take[t] += 1
    rng = np.random.default_rng(seed)
    split = ["train"] * df.height
    for t in sorted(groups):
        for j in rng.permutation(groups[t])[: take[t]]:
            split[int(j)] = "heldout"
    return df.with_columns(pl.Series("split", split, dtype=pl.String))


def curate(opts: CurateOptions, client: Any = None, templates: Any = None) -> CurationResult:
    """Read, rule-filter, classify (when opts.classify), split; counts at every step (§3.2)."""
    raw, info = read_prompts(opts)
    df, counts = rule_filter(raw, opts.min_words)
    if opts.limit is not None:
        df = df.head(opts.limit)
        counts["limit"] = df.height
    if opts.classify:
        if client is None:
            raise BadInput("prompt curation needs a model for the controversy classifier (or --no-classify)")
        keep, unparsed = classify(df["prompt"].to_list(), client, opts, templates)
        df = df.filter(pl.Series(keep))
        counts["classifier_unparsed_rejected"] = unparsed
        counts["controversial"] = df.height
    df = df.with_columns(pl.col("prompt").map_elements(prompt_id, return_dtype=pl.String).alias("prompt_id"))
    df = split_by_topic(df, opts.heldout_fraction, opts.seed).select("prompt_id", "prompt", "topic", "split")
    counts["train"] = int((df["split"] == "train").sum())
    counts["heldout"] = int((df["split"] == "heldout").sum())
    topics = {t: {s: int(n) for s, n in g.group_by("split").len().iter_rows()}
              for (t,), g in df.group_by("topic", maintain_order=True)}
    return CurationResult(df, counts, topics, info)
