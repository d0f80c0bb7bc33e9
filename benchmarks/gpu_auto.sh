#!/usr/bin/env bash
# backend="auto" on a GPU machine, in one call of at most GPU_AUTO_TOTAL_SECONDS
# (default 300): measure its profile (`nnbackend bench --calibrate`, GPU
# candidates included) and time auto's pick against every candidate on the
# `gpu` grid of auto_choice.py (numpy, jax and torch on the CPU; cupy,
# torch:gpu and jax:gpu).
#
#   bash benchmarks/gpu_auto.sh            # results in ./gpu_auto_results
#   OUT=/some/dir bash benchmarks/gpu_auto.sh
#   GPU_AUTO_TOTAL_SECONDS=240 bash benchmarks/gpu_auto.sh   # after gpu_check.sh
#
# A call after benchmarks/gpu_check.sh has what its 475 s and the machine's
# start leave of the 15 minutes' device time (5-6 minutes): give it a total
# that ends well inside them, since a call still running when the time is
# spent brings nothing back. The calibration gets 2/5 of the total, the grid
# what is left less 15 s; each writes what it has measured as it goes.
#
# Leaves in $OUT: load.txt (the GPU, the machine's load, each step's exit),
# calibrate.txt (the calibration's progress and the profile `nnbackend info`
# shows), profile.json, grid.log, grid.md and grid.json, cache/ (the profile
# as auto reads it). Exits non-zero where a step failed or was cut off.
# Wheels in .whl/ (benchmarks/gpu_wheels.sh) are installed into /tmp/site
# (benchmarks/gpu_env.sh, as for benchmarks/gpu_check.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_auto_results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# An earlier call's files must not pass for this one's.
rm -rf "$OUT/cache" "$OUT"/{load.txt,calibrate.txt,profile.json,grid.log,grid.md,grid.json}
# shellcheck source=benchmarks/gpu_env.sh
. benchmarks/gpu_env.sh  # the wheels, PYTHONPATH, JAX's memory
export NNBACKEND_CACHE_DIR="$OUT/cache"
total=${GPU_AUTO_TOTAL_SECONDS:-300}
calibrate=${GPU_AUTO_CALIBRATE_SECONDS:-$(( total * 2 / 5 ))}
# Floors: `timeout 0` is no limit at all, and --time-budget refuses 0 or less.
budget=${GPU_AUTO_CALIBRATE_BUDGET:-$(( calibrate - 40 ))}
(( budget < 20 )) && budget=20
{ nvidia-smi -L 2>&1 || echo "nvidia-smi: not here"; uptime; } > "$OUT/load.txt"
timeout -k 10 "$calibrate" python3 -m nnbackend.cli bench --calibrate \
  --time-budget "$budget" \
  > "$OUT/calibrate.txt" 2>&1
calibrate_status=$?
echo "calibrate: exit $calibrate_status" >> "$OUT/load.txt"
cp "$NNBACKEND_CACHE_DIR/auto-profile.json" "$OUT/profile.json" 2>/dev/null
uptime >> "$OUT/load.txt"
grid=${GPU_AUTO_GRID_SECONDS:-$(( total - SECONDS - 15 ))}
(( grid < 30 )) && grid=30
timeout -k 10 "$grid" \
  python3 benchmarks/auto_choice.py --size gpu --out "$OUT" > "$OUT/grid.log" 2>&1
grid_status=$?
echo "grid: exit $grid_status" >> "$OUT/load.txt"
uptime >> "$OUT/load.txt"
tail -n 30 "$OUT/grid.log"
[ "$calibrate_status" = 0 ] && [ "$grid_status" = 0 ]
