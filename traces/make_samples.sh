#!/usr/bin/env bash
# Regenerates the small sample traces committed beside this script (bit for bit: seeded).
set -euo pipefail
cd "$(dirname "$0")"
S=${SCRATCHSIM:-scratchsim}
$S trace generate zipf --tables 8 --rows 20000 --alpha 1.05 --pooling 1-4 \
    --batch-size 256 --batches 64 --seed 1 -o zipf-8x20k >/dev/null
$S trace generate drift --tables 1 --rows 50000 --hot-fraction 0.02 --hot-share 0.9 \
    --drift-batches 50 --alpha 0.8 --batch-size 512 --batches 200 --seed 2 -o drift-1x50k >/dev/null
$S trace generate zipf --tables 1 --rows 10000 --alpha 0.9 \
    --batch-size 1 --batches 50000 --seed 3 -o stream-1x10k >/dev/null
