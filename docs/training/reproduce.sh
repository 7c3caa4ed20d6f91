#!/bin/sh
# Trains every scheme of docs/training.md's reproduction table with seeds 1, 2, 3 on the
# built-in digits and prints the final test accuracy of each run and their mean ± spread
# (half the range). Usage: docs/training/reproduce.sh [path/to/qc] (default: target/release/qc).
set -e
QC=${1:-target/release/qc}
DIR=$(dirname "$0")
OUT=${OUT:-$(mktemp -d)}
for scheme in fp32 e6m5_nearest e6m5_sr4 e6m5_sr9 e6m5_sr11 e6m5_sr13 hybrid_fp8 mxfp8 mxfp6 ternary int8; do
  accs=""
  for seed in 1 2 3; do
    "$QC" train "$DIR/$scheme.qnn" --seed "$seed" --quiet --log "$OUT/$scheme-$seed.csv" > /dev/null
    accs="$accs $(tail -n 1 "$OUT/$scheme-$seed.csv" | cut -d, -f6)"
  done
  echo "$scheme $accs" | awk '{ s = 0; lo = 1; hi = 0; for (i = 2; i <= NF; i++) { s += $i; if ($i < lo) lo = $i; if ($i > hi) hi = $i }
    printf "| %s | %s | %.1f ± %.1f |\n", $1, substr($0, length($1) + 2), 100 * s / (NF - 1), 50 * (hi - lo) }'
done
