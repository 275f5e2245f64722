"""Preference pairs in the format preference trainers read (TRL's conversational preference type):
`prompt` = [system: persona profile, user: question], `chosen` / `rejected` = [assistant: answer], with the
persona also kept as a plain `system` column and the ids and split alongside."""

from __future__ import annotations

import polars as pl

_MSG = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def trainer_rows(pairs: pl.DataFrame) -> pl.DataFrame:
    """LIB/preferences.parquet rows → persona_id, prompt_id, split, topic, system, prompt, chosen, rejected,
    model_chosen, model_rejected (prompt/chosen/rejected as role/content message lists)."""
    rows = []
    for r in pairs.iter_rows(named=True):
        rows.append({
            "persona_id": r["persona_id"], "prompt_id": r["prompt_id"], "split": r["split"], "topic": r.get("topic"),
            "system": r["persona"],
            "prompt": [{"role": "system", "content": r["persona"]}, {"role": "user", "content": r["prompt"]}],
            "chosen": [{"role": "assistant", "content": r["chosen"]}],
            "rejected": [{"role": "assistant", "content": r["rejected"]}],
            "model_chosen": r.get("model_chosen"), "model_rejected": r.get("model_rejected"),
        })
    schema = {"persona_id": pl.String, "prompt_id": pl.String, "split": pl.String, "topic": pl.String,
              "system": pl.String, "prompt": _MSG, "chosen": _MSG, "rejected": _MSG, "model_chosen": pl.String,
              "model_rejected": pl.String}
    return pl.DataFrame(rows, schema=schema)
