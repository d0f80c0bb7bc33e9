#!/usr/bin/env bash
# The GPU diagnostics: where the CuPy kernels' time goes (issues 25 and 26),
# each step a script of its own, in this order, each only where its cutoff
# still fits the budget:
#
#   step                 cutoff  script
#   bridge                 30 s  bridge_time.py: a torch:cuda or jax:gpu epoch on CuPy's
#                                kernels, its DLPack crossings timed apart
#   cluster and grid       40 s  grid_fused_time.py: the mid model's step on one
#                                block, one cluster of 8 and the whole grid, bits checked
#   cupy graphs            20 s  graph_step_time.py: captured steps against the eager loop
#   gemm floor             40 s  gemm_floor.py: the mnist batch epoch's matmuls alone at
#                                1e6 rows, against PyTorch eager's epoch
#   profile                60 s  fused_profile.py: the fused step's phases, left out in turn
#   barrier probe          20 s  barrier_probe.py: block, cluster and grid barriers
#   batch kernels         120 s  batch_kernel_time.py 1e3,1e5,1e7: the full-batch kernels
#   tf32                   30 s  tf32_time.py 1e4: the mnist model, float32 against TF32
#
#   bash benchmarks/gpu_diagnostics.sh        # a call of its own: ~5-6 minutes
#   GPU_DIAG_SECONDS=120 bash benchmarks/gpu_diagnostics.sh
#
# benchmarks/gpu_check.sh runs it after its benchmark with the time the call
# has left (GPU_DIAG_APPEND=1: onto its summary.txt); a step that does not fit
# is named, and this script, in a call of its own, runs it. The budget is
# GPU_DIAG_SECONDS (default 365); GPU_CHECK_<STEP>=0 leaves a step out
# (BRIDGE, GRID, GRAPHS, GEMM, PROFILE, BARRIERS, BATCH, TF32) and
# GPU_CHECK_<STEP>_SECONDS changes its cutoff. It leaves in $OUT: summary.txt,
# grid_fused_time.json, fused_profile.json, and in a call of its own
# bridge_time.json and gemm_floor.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_diagnostics_results}
mkdir -p "$OUT"
budget=${GPU_DIAG_SECONDS:-365}
started=$SECONDS
left() { echo $((budget - (SECONDS - started))); }
if [ "${GPU_DIAG_APPEND:-0}" = 0 ]; then
  : > "$OUT/summary.txt"
  # shellcheck source=benchmarks/gpu_env.sh
  . benchmarks/gpu_env.sh  # the wheels, PYTHONPATH, JAX's memory
fi

# step NAME TOGGLE CUTOFF LINES COMMAND...: COMMAND under `timeout CUTOFF`, its last
# LINES lines onto the summary, where the toggle is on and CUTOFF s are left.
step() {
  local name=$1 toggle=$2 cutoff=$3 lines=$4
  shift 4
  [ "$toggle" != 0 ] || return 0
  if [ "$(left)" -lt "$cutoff" ]; then
    echo "$name: not run, $(left) s left of the diagnostics' ${budget} s (it needs ${cutoff}:" \
      "bash benchmarks/gpu_diagnostics.sh runs it in a call of its own)" | tee -a "$OUT/summary.txt"
    return 0
  fi
  echo "$name: started at $((SECONDS - started)) s of the diagnostics" | tee -a "$OUT/summary.txt"
  timeout -k 3 "$cutoff" "$@" 2>&1 | tail -n "$lines" | tee -a "$OUT/summary.txt"
  local code=${PIPESTATUS[0]}
  [ "$code" = 0 ] || echo "$name: FAILED or cut off (status $code)" | tee -a "$OUT/summary.txt"
}

# Inside the GPU check (GPU_DIAG_APPEND=1) its $OUT already holds the 8 files a
# device call brings back: the bridge's and the floor's figures go to the summary only.
bridge_json=() gemm_json=()
if [ "${GPU_DIAG_APPEND:-0}" = 0 ]; then
  bridge_json=(--json "$OUT/bridge_time.json") gemm_json=(--json "$OUT/gemm_floor.json")
fi

step "bridge" "${GPU_CHECK_BRIDGE:-1}" "${GPU_CHECK_BRIDGE_SECONDS:-30}" 10 \
  python3 benchmarks/bridge_time.py ${bridge_json[@]+"${bridge_json[@]}"}
step "cluster and grid fused kernels" "${GPU_CHECK_GRID:-1}" "${GPU_CHECK_GRID_SECONDS:-40}" 6 \
  python3 benchmarks/grid_fused_time.py --json "$OUT/grid_fused_time.json"
step "cupy graphs" "${GPU_CHECK_GRAPHS:-1}" "${GPU_CHECK_GRAPHS_SECONDS:-20}" 5 \
  python3 benchmarks/graph_step_time.py
step "gemm floor" "${GPU_CHECK_GEMM:-1}" "${GPU_CHECK_GEMM_SECONDS:-40}" 7 \
  python3 benchmarks/gemm_floor.py ${gemm_json[@]+"${gemm_json[@]}"}
step "profile" "${GPU_CHECK_PROFILE:-1}" "${GPU_CHECK_PROFILE_SECONDS:-60}" 40 \
  python3 benchmarks/fused_profile.py --json "$OUT/fused_profile.json"
step "barrier probe" "${GPU_CHECK_BARRIERS:-1}" "${GPU_CHECK_BARRIERS_SECONDS:-20}" 8 \
  python3 benchmarks/barrier_probe.py
step "batch kernels" "${GPU_CHECK_BATCH:-1}" "${GPU_CHECK_BATCH_SECONDS:-120}" 24 \
  python3 benchmarks/batch_kernel_time.py "${GPU_CHECK_BATCH_SIZES:-1e3,1e5,1e7}"
step "tf32" "${GPU_CHECK_TF32:-1}" "${GPU_CHECK_TF32_SECONDS:-30}" 8 \
  python3 benchmarks/tf32_time.py 1e4
echo "gpu_diagnostics: done in $((SECONDS - started)) s" | tee -a "$OUT/summary.txt"
