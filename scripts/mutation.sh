#!/usr/bin/env bash
# Mutation score of personagen modules against their own tests (mutmut; not part of CI: minutes per module).
#   bash scripts/mutation.sh personagen/metrics/core.py personagen/elicit/matching.py ...
# Prints killed / survived / equivalent per module; equivalent mutants are listed in tests/mutation_equivalent.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ $# -gt 0 ] || set -- personagen/metrics/core.py personagen/elicit/matching.py personagen/endow/tracker.py \
  personagen/calibrate/rake.py personagen/calibrate/simplex.py
exec "$PY" scripts/mutation.py "$@"
