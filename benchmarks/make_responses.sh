#!/usr/bin/env bash
# Make the real responses.parquet that `benchmarks/solver.py --scale --responses` resamples (the "resampled" family,
# issue 23): 20 Vermont personas answer the first 32 questions of OpinionQA's ATP wave 82 with the bundled
# SmolLM2-135M, logprobs (~4 minutes on 2 cores). Reads ../shared/data in place; writes only under OUT (default
# out/bench-responses), never into the repository: the answers are to Pew questions, which may not be republished.
# Two runs differ slightly (answer probabilities by up to ~0.02: llama.cpp batches concurrent requests differently),
# so compare trees within one `solver.py --before` run, on one file, as that script does.
# Usage: bash benchmarks/make_responses.sh [OUT]   then   --responses OUT/lib/responses.parquet
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/bench-responses}
DATA=${PERSONAGEN_DATA:-../shared/data}
PG=.venv/bin/personagen
rm -rf "$OUT" && mkdir -p "$OUT"
$PG build -o "$OUT/lib" --census "$DATA/acs_pums/psam_p50.csv.gz" -n 20 --seed 1 --style narrative
$PG surveys import opinionqa "$DATA/opinionqa/human_resp/American_Trends_Panel_W82" -o "$OUT/w82.parquet"
$PG elicit "$OUT/lib" --survey "$OUT/w82.parquet" --backend local --mode logprobs --max-questions 32 --no-progress
echo "responses: $OUT/lib/responses.parquet"
