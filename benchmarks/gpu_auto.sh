#!/usr/bin/env bash
# backend="auto" on a GPU machine, in one call of about 5 minutes: measure its
# profile (`nnbackend bench --calibrate`, GPU candidates included) and time
# auto's pick against every candidate on the `gpu` grid of auto_choice.py
# (numpy, jax and torch on the CPU; cupy, torch:cuda and jax:gpu).
#
#   bash benchmarks/gpu_auto.sh            # results in ./gpu_auto_results
#   OUT=/some/dir bash benchmarks/gpu_auto.sh
#
# Leaves in $OUT: calibrate.txt (the calibration's progress and the profile
# `nnbackend info` shows), profile.json, grid.md and grid.json, load.txt.
# Wheels in .whl/ (benchmarks/gpu_wheels.sh) are installed into /tmp/site
# (benchmarks/gpu_env.sh, as for benchmarks/gpu_check.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_auto_results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# shellcheck source=benchmarks/gpu_env.sh
. benchmarks/gpu_env.sh  # the wheels, PYTHONPATH, JAX's memory
export NNBACKEND_CACHE_DIR="$OUT/cache"
uptime > "$OUT/load.txt"
timeout "${GPU_AUTO_CALIBRATE_SECONDS:-170}" python3 -m nnbackend.cli bench --calibrate \
  --time-budget "${GPU_AUTO_CALIBRATE_BUDGET:-120}" > "$OUT/calibrate.txt" 2>&1
echo "calibrate: exit $?" >> "$OUT/load.txt"
cp "$NNBACKEND_CACHE_DIR/auto-profile.json" "$OUT/profile.json" 2>/dev/null
uptime >> "$OUT/load.txt"
timeout "${GPU_AUTO_GRID_SECONDS:-240}" python3 benchmarks/auto_choice.py --size gpu \
  --out "$OUT" > "$OUT/grid.log" 2>&1
echo "grid: exit $?" >> "$OUT/load.txt"
uptime >> "$OUT/load.txt"
tail -n 30 "$OUT/grid.log"
