"""The `preferences` config of a published panel: PERSONA pairs in the format preference trainers read
(conversational prompt / chosen / rejected with the persona as system message; see personagen.prefs.trainer_rows),
one parquet file per split (train, test_seen, test_unseen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from personagen.store import atomic_write_parquet

CONFIG = "preferences"
SPLIT_ORDER = ("train", "test_seen", "test_unseen")


def preference_frame(lib: Any) -> pl.DataFrame | None:
    """The library's pairs as trainer rows, or None when it has no preferences.parquet (or it is empty)."""
    from personagen.prefs import read_preferences, trainer_rows

    pairs = read_preferences(lib)
    return trainer_rows(pairs) if pairs.height else None


def _path(split: str) -> str:
    return f"data/{CONFIG}/{split}-00000-of-00001.parquet"


def write_preferences(frame: pl.DataFrame, out: Path) -> list[str]:
    """One parquet per split present; returns the relative paths written."""
    (out / "data" / CONFIG).mkdir(parents=True, exist_ok=True)
    files = []
    for s in SPLIT_ORDER:
        part = frame.filter(pl.col("split") == s)
        if part.height:
            atomic_write_parquet(out / _path(s), part)
            files.append(_path(s))
    return files


def card_config(frame: pl.DataFrame) -> dict[str, Any]:
    """The `configs:` entry of the dataset card (explicit data_files per split)."""
    present = set(frame["split"].unique().to_list())
    return {"config_name": CONFIG, "data_files": [{"split": s, "path": _path(s)} for s in SPLIT_ORDER
                                                  if s in present]}
