"""The CLI's commands, one module per command (thin: parse options, call the stage's face, print).

The face: `COMMANDS` (command name -> module) and `load`, which imports a command's module only when it
runs, so `personagen build` does not pay for the LLM, publishing or plotting imports.
"""

from __future__ import annotations

import importlib

import click

from personagen.errors import BadInput

# command name -> (module in personagen.commands, the click command's attribute)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("build", "build"),
    "describe": ("describe", "describe"),
    "surveys": ("surveys", "surveys"),
    "elicit": ("elicit", "elicit"),
    "serve-local": ("serve_local", "serve_local"),
    "calibrate": ("calibrate", "calibrate"),
    "bench": ("bench", "bench"),
    "enrich": ("enrich", "enrich"),
    "endow": ("endow", "endow"),
    "mixture": ("mixture", "mixture"),
    "publish": ("publish", "publish"),
    "reproduce": ("reproduce", "reproduce"),
    "pull": ("pull", "pull"),
    "sample-panel": ("sample_panel", "sample_panel"),
    "prefs": ("prefs", "prefs"),
    "prefs-eval": ("prefs_eval", "prefs_eval"),
    "finetune": ("finetune", "finetune"),
    "estimate": ("estimate", "estimate"),
}

# one-line help shown by `personagen --help` without importing any command
HELP: dict[str, str] = {
    "build": "Build a persona library from census microdata.",
    "describe": "Compare a library (or a calibrated panel) with its census source.",
    "surveys": "Import survey targets and inspect them.",
    "elicit": "Every persona answers a survey through a model.",
    "serve-local": "Serve the bundled local model over the OpenAI API.",
    "calibrate": "Fit persona weights to a survey or census margins.",
    "bench": "Reproducible benchmarks (census, simulate, solver).",
    "enrich": "Add model-written traits to personas (with a consistency judge).",
    "endow": "Generate personas by active endowment (P2P).",
    "mixture": "Search a weighted mixture of system prompts for a scalar target.",
    "publish": "Export or push a library and calibration as a Hub dataset.",
    "pull": "Download a published panel into a library.",
    "sample-panel": "Draw a weighted sample of personas from a library.",
    "prefs": "PERSONA preference pairs: base answers and persona-specific rewrites.",
    "prefs-eval": "Validate preference pairs (evaluator check, role-player agreement).",
    "finetune": "SubPOP LoRA fine-tuning on survey distributions (extra [train]).",
    "reproduce": "Run a paper's protocol and print its table beside the published numbers.",
    "estimate": "Weighted answer shares of a panel, with intervals, by group.",
}


def load(name: str) -> click.Command | None:
    """The click command called `name` (its module imported now), or None for an unknown name."""
    if name not in COMMANDS:
        return None
    mod, attr = COMMANDS[name]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), attr)


def cli_message(err: BadInput, argv: list[str]) -> str:
    """A BadInput's line as the CLI prints it: its Python argument name (`err.field`) shown as the flag of the
    (sub)command `argv` runs (one mapping, personagen/commands/flags.py)."""
    from personagen.commands.flags import cli_message as message

    words = [a for a in argv if not a.startswith("-")]
    try:
        cmd = load(words[0]) if words else None
        for w in words[1:]:  # `reproduce p2p ...`: the subcommand's flags
            if not isinstance(cmd, click.Group) or w not in cmd.commands:
                break
            cmd = cmd.commands[w]
    except Exception:  # noqa: BLE001 - naming the flag must never hide the error itself
        cmd = None
    return message(err, cmd)
