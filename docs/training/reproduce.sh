#!/bin/sh
# Trains every scheme of docs/training.md's reproduction tables with seeds 1, 2, 3 (or $SEEDS)
# on the built-in digits and prints the final test accuracy of each run and their mean ± spread
# (half the range), in percent, as table rows. The MLP schemes are the files of this directory;
# `small_updates/` repeats fp32 and E6M5 with plain SGD at lr 0.01, where updates are small
# against the weights' ulp; `cnn/` (and `cnn/small_updates/`) trains the same schemes on a
# LeNet-style CNN.
# Usage: [SCHEMES="fp32 cnn/fp32 ..."] [SEEDS="1 2 3"] docs/training/reproduce.sh [path/to/qc]
# (default: target/release/qc).
set -e
QC=${1:-target/release/qc}
DIR=$(dirname "$0")
OUT=${OUT:-$(mktemp -d)}
for scheme in ${SCHEMES:-fp32 e6m5_nearest e6m5_sr4 e6m5_sr9 e6m5_sr11 e6m5_sr13 hybrid_fp8 mxfp8 mxfp6 ternary int8 \
    small_updates/fp32 small_updates/e6m5_nearest small_updates/e6m5_sr4 small_updates/e6m5_sr9 small_updates/e6m5_sr13 \
    cnn/fp32 cnn/e6m5_nearest cnn/e6m5_sr4 cnn/e6m5_sr9 cnn/e6m5_sr11 cnn/e6m5_sr13 cnn/hybrid_fp8 cnn/mxfp8 cnn/mxfp6 \
    cnn/ternary cnn/int8 cnn/small_updates/fp32 cnn/small_updates/e6m5_nearest cnn/small_updates/e6m5_sr4 \
    cnn/small_updates/e6m5_sr9 cnn/small_updates/e6m5_sr13}; do
  accs=""
  for seed in ${SEEDS:-1 2 3}; do
    "$QC" train "$DIR/$scheme.qnn" --seed "$seed" --quiet --log "$OUT/run.csv" > /dev/null
    accs="$accs $(tail -n 1 "$OUT/run.csv" | cut -d, -f6)"
  done
  echo "$scheme $accs" | awk '{ s = 0; lo = 1; hi = 0; runs = ""
    for (i = 2; i <= NF; i++) { s += $i; if ($i < lo) lo = $i; if ($i > hi) hi = $i; runs = runs (i > 2 ? ", " : "") sprintf("%.1f", 100 * $i) }
    printf "| %s | %s | %.1f ± %.1f |\n", $1, runs, 100 * s / (NF - 1), 50 * (hi - lo) }'
done
