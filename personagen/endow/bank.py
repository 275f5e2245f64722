"""The P2P attribute bank: templates → modes → attributes, stored as YAML files.

Prompts to Proxies (Wang, Khoo & Wang 2025, §3.1) organises the preset attributes an endowment can draw on
in three *templates* (core, thematic, theoretical); each template has *modes* (economics, politics,
behavioral_biases, maslow, big_five, ...), each mode a list of *attributes* (dimensions such as "loss
aversion" on which the endowment model then places a persona). The shipped bank lives in
datasets/attribute_bank/*.yaml; users add or override modes with their own folder (`--bank DIR`).

File format::

    template: thematic
    description: ...            # optional
    modes:
      economics:
        description: ...        # optional
        attributes: [preferred size of government, ...]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from personagen.errors import BadInput
from personagen.infile import read_text
from personagen.resources import datasets_dir

MAX_ATTRIBUTES = 10  # P2P: at most 10 attributes per endowment


@dataclass(frozen=True)
class Mode:
    name: str
    template: str
    description: str
    attributes: tuple[str, ...]


@dataclass
class AttributeBank:
    modes: dict[str, Mode]
    sources: list[str]

    def names(self) -> list[str]:
        return list(self.modes)

    def sample(self, mode: str, rng: np.random.Generator, *, k_min: int = 3,
               k_max: int = MAX_ATTRIBUTES) -> list[str]:
        """A random subset of a mode's attributes (size uniform in [k_min, k_max], ≤ 10)."""
        attrs = self.modes[mode].attributes
        hi = min(k_max, MAX_ATTRIBUTES, len(attrs))
        lo = min(k_min, hi)
        k = int(rng.integers(lo, hi + 1))
        idx = rng.choice(len(attrs), size=k, replace=False)
        return [attrs[i] for i in sorted(idx)]


def shipped_bank_dir() -> Path:
    return datasets_dir() / "attribute_bank"


def _load_file(path: Path) -> list[Mode]:
    try:
        data = yaml.safe_load(read_text(path, "attribute bank file"))
    except yaml.YAMLError as e:
        raise BadInput(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping with 'template' and 'modes'")
    template = data.get("template")
    if not isinstance(template, str) or not template:
        raise BadInput(f"{path}: field 'template' must be a non-empty string")
    modes = data.get("modes")
    if not isinstance(modes, dict) or not modes:
        raise BadInput(f"{path}: field 'modes' must be a non-empty mapping of mode name to attributes")
    out = []
    for name, spec in modes.items():
        if isinstance(spec, list):
            spec = {"attributes": spec}
        if not isinstance(spec, dict):
            raise BadInput(f"{path}: mode {name!r} must be a mapping with 'attributes'")
        attrs = spec.get("attributes")
        if not isinstance(attrs, list) or not attrs or not all(isinstance(a, str) and a.strip() for a in attrs):
            raise BadInput(f"{path}: modes.{name}.attributes must be a non-empty list of strings")
        out.append(Mode(str(name), template, str(spec.get("description") or ""),
                        tuple(dict.fromkeys(a.strip() for a in attrs))))
    return out


def load_bank(extra: str | os.PathLike | None = None, *, include_shipped: bool = True) -> AttributeBank:
    """Load the shipped bank plus a user folder (*.yaml / *.yml); a user mode replaces a same-named one."""
    dirs: list[Path] = []
    if include_shipped:
        dirs.append(shipped_bank_dir())
    if extra is not None:
        p = Path(extra)
        if not p.exists():
            raise BadInput(f"{p}: attribute bank folder does not exist")
        dirs.append(p)
    modes: dict[str, Mode] = {}
    sources: list[str] = []
    for d in dirs:
        files = [d] if d.is_file() else sorted([*d.glob("*.yaml"), *d.glob("*.yml")])
        if d != shipped_bank_dir() and not files:
            raise BadInput(f"{d}: no *.yaml attribute bank files in it")
        for f in files:
            for m in _load_file(f):
                modes[m.name] = m
            sources.append(str(f))
    if not modes:
        raise BadInput("attribute bank is empty")
    return AttributeBank(modes, sources)
