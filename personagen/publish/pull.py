"""Pull a published panel (Hub dataset repo or exported folder) into a library; load and sample panels."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.calibration_report import CalibrationReport, write_report
from personagen.errors import BadInput, PersonagenError
from personagen.infile import MANIFEST_MAX_BYTES, load_json
from personagen.library import MANIFEST, Library
from personagen.metrics import kish_ess
from personagen.options import options_record, stage_options
from personagen.publish.export import (
    FORMAT,
    FORMAT_VERSION,
    PANEL_JSON,
    check_weights,
    choose_calibration,
    read_calibration,
    validate_repo_id,
)
from personagen.publish.untrusted import (
    ALLOW_PATTERNS,
    check_meta,
    check_personas,
    check_responses,
    check_sizes,
)
from personagen.store import atomic_write_parquet, claim_target, read_parquet, staged_dir


def _download(repo: str, revision: str | None) -> tuple[Path, dict[str, Any]]:
    """snapshot_download a dataset repo (token from $HF_TOKEN only, if set); returns folder + source info."""
    validate_repo_id(repo)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    token: str | bool = os.environ.get("HF_TOKEN", "").strip() or False
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no "Retrying in 1s" lines: a failure is reported once, below
    if not sys.stderr.isatty():  # no progress-bar lines in logs and pipes
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    try:
        _check_remote_sizes(repo, revision, token)
        path = Path(snapshot_download(repo_id=repo, repo_type="dataset", revision=revision, token=token,
                                      allow_patterns=ALLOW_PATTERNS))
    except RevisionNotFoundError:
        raise BadInput(f"{repo}: revision {revision!r} not found on the Hub") from None
    except RepositoryNotFoundError:
        raise BadInput(f"{repo}: dataset repo not found on the Hub (or not visible with this token)") from None
    except HfHubHTTPError as e:
        raise PersonagenError(f"{repo}: download failed: {str(e).splitlines()[0]}") from None
    except (BadInput, PersonagenError):
        raise
    except Exception as e:  # noqa: BLE001 - connection errors come from the HTTP library in several types
        raise PersonagenError(f"{repo}: cannot download from the Hub ({type(e).__name__}: {e}); check the "
                              "network or HF_ENDPOINT, or pull an exported folder instead") from None
    return path, {"kind": "hub", "repo": repo, "revision": revision or "main", "commit": path.name}


def _check_remote_sizes(repo: str, revision: str | None, token: str | bool) -> None:
    """Refuse oversized files from the Hub's file listing (sizes) before downloading anything."""
    from fnmatch import fnmatch

    from huggingface_hub import HfApi

    entries = HfApi(token=token).list_repo_tree(repo, repo_type="dataset", revision=revision, recursive=True)
    files = [(e.path, getattr(e, "size", None)) for e in entries
             if any(fnmatch(e.path, pat) for pat in ALLOW_PATTERNS)]
    check_sizes(files, repo)


def resolve_panel(repo_or_path: str | os.PathLike, revision: str | None = None) -> tuple[Path, dict[str, Any]]:
    """A local folder (exported panel or library) as is, else download `ORG/NAME` from the Hub."""
    p = Path(repo_or_path)
    if p.exists():
        if not p.is_dir():
            raise BadInput(f"{p}: not a folder")
        return p, {"kind": "folder", "path": p.name}
    if revision is not None and not str(revision).strip():
        raise BadInput("revision: empty revision", field="revision")
    return _download(str(repo_or_path), revision)


def _read_config(folder: Path, cfg: str) -> pl.DataFrame | None:
    files = sorted((folder / "data" / cfg).glob("*.parquet"))
    if not files:
        return None
    frames = [read_parquet(f, f"{cfg} file") for f in files]
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as e:
        raise BadInput(f"{folder}/data/{cfg}: parquet files do not share a schema ({e})") from None


def _panel_meta(folder: Path) -> dict[str, Any]:
    mf = folder / PANEL_JSON
    if not mf.is_file():
        return {}
    meta = check_meta(load_json(mf, "panel metadata", MANIFEST_MAX_BYTES), str(mf))
    if meta.get("format") not in (None, FORMAT):
        raise BadInput(f"{mf}: format {meta.get('format')!r} is not {FORMAT!r}")
    version = meta.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise BadInput(f"{mf}: field 'format_version' {version!r} is not one this personagen reads (1 to "
                       f"{FORMAT_VERSION}); upgrade personagen (docs/compatibility.md)")
    return meta


def _folder_personas(folder: Path) -> pl.DataFrame:
    personas = _read_config(folder, "personas")
    if personas is None:
        raise BadInput(f"{folder}: no data/personas/*.parquet (not a personagen panel)")
    check_personas(personas, f"{folder}/data/personas")
    check_weights(personas.select("persona_id", pl.col("weight").cast(pl.Float64)), f"{folder}/data/personas")
    return personas


def library_panel(lib: Library, calibration: str | None = None) -> pl.DataFrame:
    """Personas of a library with a `weight` column: from `calibration`, else a pulled panel's own
    weight column, else the library's only calibration."""
    personas = lib.personas()
    if calibration is None and "weight" in personas.columns:
        check_weights(personas.select("persona_id", pl.col("weight").cast(pl.Float64)), str(lib.personas_path))
        return personas
    name = choose_calibration(lib, calibration)
    w, _ = read_calibration(lib, name)
    if "weight" in personas.columns:
        personas = personas.drop("weight")
    return personas.join(w, on="persona_id", how="left").with_columns(pl.col("weight").fill_null(0.0))


def load_panel(repo_or_path: str | os.PathLike, revision: str | None = None,
               calibration: str | None = None) -> pl.DataFrame:
    """Personas with their `weight` column from a Hub repo `ORG/NAME`, an exported folder or a library."""
    folder, _ = resolve_panel(repo_or_path, revision)
    if (folder / MANIFEST).is_file() and not (folder / "data" / "personas").is_dir():
        return library_panel(Library.open(folder), calibration)
    return _folder_personas(folder)


@dataclass(frozen=True)
class PullOptions:
    """Options of `pull_panel` (docs/design.md §3 `pull`): revision, the branch, tag or commit (None: main)."""

    revision: str | None = None

    def __post_init__(self) -> None:
        if self.revision is not None and (not isinstance(self.revision, str) or not self.revision.strip()):
            raise BadInput(f"revision {self.revision!r}: expected a branch, tag or commit", field="revision")


def pull_panel(repo_or_path: str | os.PathLike, out: str | os.PathLike | None = None,
               options: PullOptions | None = None, **deprecated: Any) -> Library:
    """Download (or read) a published panel and write it as a library at `out` (default: ./NAME).

    options: a `PullOptions` (None: the defaults; `revision=` instead is deprecated, one release)."""
    o = stage_options(PullOptions, options, deprecated, "pull_panel")
    src = str(repo_or_path)
    if out is None:
        out = Path(src.rstrip("/")).name
    # claimed before the download, so a second pull to `out` is refused at once (staged_dir names a missing parent)
    with claim_target(out) if Path(out).parent.is_dir() else contextlib.nullcontext():
        return _pull_into(repo_or_path, Path(out), o)


def _pull_into(repo_or_path: str | os.PathLike, out: Path, o: PullOptions) -> Library:
    if out.exists() and out.is_dir() and any(out.iterdir()):
        raise BadInput(f"{out}: already exists and is not empty (choose another path or remove it)")
    folder, source = resolve_panel(repo_or_path, o.revision)
    personas = _folder_personas(folder)
    responses = _read_config(folder, "responses")
    if responses is not None:
        check_responses(responses, f"{folder}/data/responses")
    meta = _panel_meta(folder)
    prov = meta.get("provenance") or {}
    name = str(meta.get("calibration") or (meta.get("report") or {}).get("name") or "published")
    report = _pulled_report(meta, personas, name, folder)
    with staged_dir(out) as tmp:
        lib = Library.init(tmp, seed=prov.get("seed"), census=prov.get("census"),
                           config={"source": source, "published": {"repo": meta.get("repo"),
                                                                   "provenance": prov,
                                                                   "left_out": meta.get("left_out", [])}})
        lib.write_personas(personas)
        if responses is not None and responses.height:
            lib.append_responses(responses)
        cdir = lib.calibration_dir(name)
        cdir.mkdir(parents=True)
        keep = [c for c in personas.columns if c == "asked" or (c.startswith("rep_") and c[4:].isdigit())]
        atomic_write_parquet(cdir / "weights.parquet",
                             personas.select("persona_id", pl.col("weight").cast(pl.Float64), *keep))
        write_report(cdir, replace(report, name=name, pulled_from=source))
        lib.record("pull", **source, options=options_record(o))
    return Library.open(out)


def _pulled_report(meta: dict[str, Any], personas: pl.DataFrame, name: str, folder: Path) -> CalibrationReport:
    """personagen.json's report, validated and upgraded (a panel published without one: its weights' figures)."""
    fitted = personas.filter(pl.col("asked").cast(pl.Boolean).fill_null(False)) if "asked" in personas.columns \
        else personas
    return CalibrationReport.from_dict(meta.get("report") or {}, f"{folder / PANEL_JSON} field 'report'", name=name,
                                       weights=fitted["weight"].cast(pl.Float64).to_numpy())


FEW_DISTINCT = 10  # sample-panel warns when the draws hold fewer than n/10 distinct personas


def sample_panel(lib: Library | str | os.PathLike, n: int, *, seed: int = 0,
                 calibration: str | None = None) -> pl.DataFrame:
    """Draw `n` personas with replacement, with probability equal to their weight (column `draw` = 0..n-1)."""
    if n < 1:
        raise BadInput(f"-n {n}: sample size must be at least 1")
    if not isinstance(lib, Library):
        lib = Library.open(lib)
    panel = library_panel(lib, calibration)
    w = panel["weight"].cast(pl.Float64).to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.choice(panel.height, size=n, replace=True, p=w / w.sum())
    uniq = len(set(idx.tolist()))
    if uniq < n / FEW_DISTINCT:
        warnings.warn(f"the {n} draws hold only {uniq} distinct personas (< n/{FEW_DISTINCT}): the weight sits on "
                      f"few personas (Kish ESS {kish_ess(w):.1f}), so the sample repeats them; use the weights "
                      "directly (personagen estimate) or a calibration with a larger effective sample size",
                      stacklevel=2)
    return panel[idx.tolist()].with_columns(pl.Series("draw", np.arange(n), dtype=pl.Int64)) \
        .select(["draw", *panel.columns])
