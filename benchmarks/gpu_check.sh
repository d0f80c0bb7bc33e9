#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, in one call of at most
# 8 minutes, run the GPU tests (CuPy, torch:cuda and jax:gpu beside NumPy
# and array-api-strict), then the whole CPU-vs-GPU benchmark (numpy on this
# machine's CPU; cupy, torch:cuda and jax:gpu on its GPU, in one run), then,
# in the time left, the diagnostics of benchmarks/gpu_diagnostics.sh (where
# the kernels' time goes), and print a summary that names everything skipped
# or not run, with the reason.
#
#   bash benchmarks/gpu_check.sh            # results in ./gpu_check_results
#   OUT=/some/dir bash benchmarks/gpu_check.sh
#
# What it leaves in $OUT (8 files, for a device tool that brings back 8, 2
# folders deep):
#   summary.txt         machine, tests by backend and every test skipped or failed
#                       by name, the benchmark's crossovers, ratios, per-step
#                       tables, issue 25/26 targets, every case not measured by
#                       name with its reason, and the diagnostics that ran
#   tests.log, tests.xml  the test run (JUnit XML: each test's time, for sizing)
#   fused_profile.json  the profile's numbers (where the diagnostics got to it)
#   grid_fused_time.json  the grid-wide and cluster fused kernels against one block
#   bench.log           the benchmark's log (its last 400 lines)
#   bench/results.json  every timing; "cases" holds each case's outcome and wall time
#   bench/report.md     the report. Its plots and summary.json are left out (the
#                       file count): `python -m nnbackend.bench.report
#                       bench/results.json DIR` writes them again.
#
# Time. The call starts no work after GPU_CHECK_TOTAL_SECONDS (default 475)
# from its start: the tests are cut off after GPU_CHECK_TEST_SECONDS (default
# 200), and the benchmark gets what is left less 10 s for the summary and the
# diagnostics' 30 (GPU_CHECK_DIAGNOSTICS_SECONDS); it starts no case in
# its last 20 s (NNBACKEND_BENCH_DEADLINE), so it ends with its report
# written, and a run cut off anyway is rebuilt from its case log
# (NNBACKEND_BENCH_CASE_LOG). A case that fails does not stop the others: the
# report covers them, marked incomplete, and names the failed one. The cases
# run nnbackend's first, then PyTorch eager on the GPU and the other peers, so
# that a run cut short loses what the GPU figures need least.
#
# Expected seconds on an H200, from the last whole check there
# (benchmarks/results/h200-2026-12-04-gpu-check/run1: summary.txt, tests.xml,
# and results.json's "cases", each case's wall time):
#
#   part                     expected   from
#   wheels, machine, probes    15 s     imports of torch, jax and CuPy, once
#   tests (-n 6)              150 s     run1: 141 s; since then
#                                       test_estimators_devices (it skips without
#                                       scikit-learn, below), test_dask_cupy,
#                                       test_window and the kernel-update GPU tests
#                                       (~45 s more, a guess), the GPU cases of
#                                       test_schedule, test_bad_input, test_labels
#                                       and test_optim (~5 s), less the 280
#                                       host-build and NVRTC tests, deselected (-m
#                                       "not host_build": CI runs them on the CPU)
#                                       and array-api-strict's cases (-k, CI's too),
#                                       and the bridge fits' eager float64 jax:gpu
#                                       references (~60 s of run3's, now NumPy's)
#   benchmark                ~220 s     below (its deadline leaves it what the tests
#                                       leave less 10 s and less the diagnostics' 30:
#                                       ~270 s, cases starting until ~250 s)
#   diagnostics            what is left  gpu_diagnostics.sh, its steps in order while
#                                       their cutoffs fit (bridge 30 s, cluster and
#                                       grid 40, graphs 20, gemm floor 40, profile 60,
#                                       barriers 20, batch kernels 120, tf32 30); the
#                                       summary names each step not run, and `bash
#                                       benchmarks/gpu_diagnostics.sh` runs them all
#                                       in a call of its own (~5-6 minutes)
#   summary                     5 s
#   total                   <=475 s     the benchmark starts no case past its
#                                       deadline, and no diagnostic starts that its
#                                       cutoff would carry past the 475 s, so the
#                                       call ends under the 480 s limit however long
#                                       the tests take (the benchmark loses its last
#                                       cases instead: the summary names them)
#
# The benchmark. run1 measured all of its 86 cases (the plan below but the
# small model's batch epochs at 1e2) in 177 s of pytest, ~183 s with start-up
# and report; its cases' wall times, summed by group:
#
#   ratios, 17 (issues 12, 25, 26's GPU pairs; 5 rounds a side, 3
#       for a pair slower than 0.4 s: NNBACKEND_BENCH_RATIO_SECONDS):
#       mnist 78 s (its two jax:gpu pairs 53 s, compilation),
#       small 30 s                                                     107 s
#   small [32,64,1], 9 implementations x 5 cases: batch at 1e3,
#       1e4, 1e5; mini-batch 64 at 1e5; sgd at 1e3                      29 s
#   mid [784,256,256,10], 6 implementations x 2: sgd at 1e3,
#       mini-batch 64 at 1e4                                             13 s
#   mnist [784,1024,1024,10], 6 implementations x 2: batch and
#       mini-batch 256 at 1e4 (its 6e4 and 1e6 figures are the
#       ratios' sides, measured above; nnbackend jax:gpu's batch 15 s)   23 s
#   start-up, data (1e7 rows of the small model, 1e6 of mnist, and
#       their copies to the GPU) and report                             12 s
#   run1's total: 69 epoch cases and 17 ratios                          183 s
#
# Since run1 (guesses, each from run1's figures where it has one):
#
#   the small model's batch epochs at 1e2 (issue 26's crossover),
#       9 cases, as its batch epochs at 1e3 cost                          4 s
#   noisy cases re-timed (at most 2 s each, 15 s in all:
#       NNBACKEND_BENCH_RERUN_SECONDS, NNBACKEND_BENCH_RERUN_TOTAL)    0-15 s
#   short epochs timed in calls of several, their losses read once
#       (at most 64 epochs and about 20 ms a call:
#       nnbackend/bench/cases/test_epochs.py): a case whose first
#       epoch took over 20 ms runs one more to size its window (on
#       the CPU past 2 s only with 2 rounds or more, where that one is
#       the first round), untimed where the window holds several
#       epochs; a call of several cupy-batch epochs builds the
#       persistent kernel in its untimed first window (~1 s a layout)  5-15 s
#   slow cases timed in 3 rounds at least (MIN_ROUNDS; run1's 21
#       eager loops of 0.1-1.9 s epochs ran 1), a case's second,
#       call-sizing epoch counted as its first round where it runs
#       one epoch a call (estimate_counted)                            ~15 s
#   total: 78 epoch cases and 17 ratios                  ~220 s (205-235 s)
#
# If the tests run to their 200 s cutoff, cases start until ~200 s, and the
# last peers on the GPU (PyTorch eager's tail, plain CuPy, the JAX loops) may
# not run: the summary names each. The mnist model's jax:gpu cases are ~70 s
# of run1's (XLA compiling its full-batch and scan epochs: the CuPy kernels
# decline a [784,1024,1024,10] batch).
#
# Every case runs its float32 matmuls in full float32 (--precision highest,
# GPU_CHECK_PRECISION): the targets are against exact float32, and the
# hand-written JAX peers would otherwise run at JAX's default, which lets XLA
# use TF32 (the report's "Float32 matmuls" line says what ran).
#
# nnbackend runs on numpy, cupy, torch:cuda and jax:gpu; the peers are those
# on the GPU (--gpu-peers: PyTorch eager, plain CuPy, the JAX loops). The
# peers on the CPU alone (numpy-seed, torch-eager-cpu: 16 cases, ~32 s more)
# are the CPU runs' business (benchmarks/results/cpu-ratios-*); a
# GPU_CHECK_BENCH_ARGS without --gpu-peers times them, last. The plan fits by:
# 0.5 s of timed rounds a case (NNBACKEND_BENCH_SECONDS; at least 3 rounds, and
# noisy cases re-timed as above), mini-batch epochs at one N (1e5 for small,
# where a step's time is the epoch's over 1,563 steps), the mnist epochs at 1e4
# (a NumPy epoch at 6e4 takes 3.2 s in batch mode and 5.1 s in mini-batches; the
# GPU's 6e4 and 1e6 epochs are in the ratios), no CPU-only peers, no
# fused_step_time.py (the mid model's cases time that kernel now), and GPU pools
# emptied (a full garbage collection) only after a case that left more than 1
# GiB in them (not in the model: a few tenths of a second a case saved). Every
# case records its wall time (results.json, "cases"; extra_info's setup_seconds
# and warmup_seconds), and the summary names the slowest: size the next run from
# those.
#
# Settings: GPU_CHECK_TESTS lists the test files ("none" skips the tests);
# GPU_CHECK_WORKERS the pytest-xdist workers (default 6; 0 for one process;
# only around the tests, never the benchmark); GPU_CHECK_BENCH=0 skips the
# benchmark and GPU_CHECK_BENCH_ARGS replaces its size flags;
# GPU_CHECK_DIAGNOSTICS=0 skips the diagnostics and GPU_CHECK_DIAGNOSTICS_SECONDS
# (default 30) is what the benchmark leaves them at least; GPU_CHECK_BRIDGE=0,
# GPU_CHECK_GRID=0, GPU_CHECK_GRAPHS=0, GPU_CHECK_GEMM=0, GPU_CHECK_PROFILE=0,
# GPU_CHECK_BARRIERS=0, GPU_CHECK_BATCH=0 and GPU_CHECK_TF32=0 leave one
# diagnostic out;
# GPU_CHECK_REQUIRE_GPU=0 runs every step without a GPU (a dry run of this
# script: CuPy's tests skip, the benchmark runs on numpy).
#
# Where a kernel's time goes by hardware counters (stall reasons, pipes,
# occupancy) is benchmarks/kernel_ncu.sh's business: a call of its own after
# this one, where the device has time left.
#
# Packages the GPU machine lacks (array-api-compat, array-api-strict) may
# travel as wheels in .whl/ (benchmarks/gpu_wheels.sh fetches them); they are installed
# into /tmp/site, never into the system. The project is imported from this
# source tree, so no build backend is needed there. tests/test_dask_cupy.py
# (CuPy-chunked Dask arrays, issue 26 item 6) needs dask, which the GPU
# machine lacks: carry dask, partd and locket as wheels too; without them its
# tests skip, saying so. Its LocalCUDACluster test skips there: dask-cuda
# needs distributed and numba (llvmlite alone is ~40 MB of the carry's 64
# MiB), which benchmarks/gpu_wheels.sh does not fetch. Nor does it fetch
# scikit-learn (a compiled wheel, with SciPy beneath it), which is not among
# the GPU machine's packages (DESIGN.md): tests/test_estimators_devices.py
# skips whole there, and so do the 3 scikit-learn cases of
# test_fit_precision.py. The summary's machine lines say whether sklearn and
# dask were found.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_results}
mkdir -p "$OUT"
total=${GPU_CHECK_TOTAL_SECONDS:-475}
left() { echo $((total - SECONDS)); }
tmp=$(mktemp -d)

# shellcheck source=benchmarks/gpu_env.sh
. benchmarks/gpu_env.sh  # the wheels, PYTHONPATH, JAX's memory
summary() { timeout -k 5 120 python3 benchmarks/gpu_check_summary.py "$@" 2>&1 | tee -a "$OUT/summary.txt"; }

: > "$OUT/summary.txt"
# A folder used before (a warm machine's) must not pass its files off as this call's.
rm -rf "$OUT/tests.xml" "$OUT/tests.log" "$OUT/fused_profile.json" "$OUT/grid_fused_time.json" \
  "$OUT/bench.log" "$OUT/bench"
summary machine "$tmp/backends"
backends=$(cat "$tmp/backends" 2>/dev/null || echo numpy)
# GPU_CHECK_REQUIRE_GPU=0 runs the same steps without a GPU (a dry run of
# this script itself; the CuPy tests then skip).
if [ "${GPU_CHECK_REQUIRE_GPU:-1}" != 0 ] && [[ ",$backends," != *",cupy,"* ]]; then
  echo "gpu_check: CuPy cannot use a GPU here (see above)" | tee -a "$OUT/summary.txt"
  exit 2
fi
status=0

# -- the tests ------------------------------------------------------------------
export NNBACKEND_TEST_BACKENDS=${NNBACKEND_TEST_BACKENDS:-numpy,cupy,torch:cuda,jax:gpu,strict}
# The GPU's own test files first (pytest-xdist deals tests out in collection
# order): a run cut off at its limit loses the generic files' cases last.
tests=${GPU_CHECK_TESTS:-tests/test_cupy_fused.py tests/test_cupy_batch.py tests/test_cupy_bridge.py tests/test_cupy_graphs.py tests/test_cupy_cluster.py tests/test_cupy_grid.py tests/test_kernel_update.py tests/test_window.py tests/test_torch_graphs.py tests/test_estimators_devices.py tests/test_dask_cupy.py tests/test_fit_precision.py tests/test_jax_batch.py tests/test_kernels.py tests/test_fused_forms.py tests/test_precision.py tests/test_gradients.py tests/test_backend.py tests/test_fit.py tests/test_training.py tests/test_chunked.py tests/test_executors.py tests/test_reproducibility.py tests/test_fused_optim.py tests/test_launches.py tests/test_schedule.py tests/test_bad_input.py tests/test_labels.py tests/test_optim.py tests/test_auto.py::test_an_array_of_any_backend_decides_and_keeps_its_device}
# The host's cases are CI's: array-api-strict's (a CPU library), and, of the
# generic files at the list's end, all but their GPU-parametrised cases
# (GPU_CHECK_TEST_SELECT= runs every case collected).
select=${GPU_CHECK_TEST_SELECT-not strict and (not (test_bad_input or test_labels or test_optim or test_schedule) or cupy or cuda or gpu)}
select_args=()
[ -n "$select" ] && select_args=(-k "$select")
workers=()
if [ "${GPU_CHECK_WORKERS:-6}" != 0 ] && python3 -c "import xdist" 2>/dev/null; then
  workers=(-n "${GPU_CHECK_WORKERS:-6}")  # the test run only: never around a benchmark
fi
if [ "$tests" != none ]; then
  echo "tests: started at ${SECONDS} s" | tee -a "$OUT/summary.txt"
  limit=${GPU_CHECK_TEST_SECONDS:-200}
  # shellcheck disable=SC2086
  # The host builds of the kernels (C++ on the CPU) and NVRTC's checks on a
  # machine without a GPU are CI's: deselected here, this machine is for the GPU.
  # SIGINT, not TERM: pytest cut off still writes its JUnit XML and its summary.
  timeout -s INT -k 20 "$limit" python3 -m pytest $tests "${workers[@]}" "${select_args[@]}" -q -rs \
    -p no:cacheprovider -m "not host_build" --junitxml "$OUT/tests.xml" > "$OUT/tests.log" 2>&1
  test_status=$?
  [ "$test_status" = 124 ] || [ "$test_status" = 137 ] && \
    echo "tests: CUT OFF after $limit s (GPU_CHECK_TEST_SECONDS)" \
    | tee -a "$OUT/summary.txt"
  tail -n 3 "$OUT/tests.log"
  summary tests "$OUT/tests.xml"
  [ "$test_status" = 0 ] || status=$test_status
fi

# -- the benchmark --------------------------------------------------------------
# The diagnostics after it get at least GPU_CHECK_DIAGNOSTICS_SECONDS (default 30)
# of the call: the benchmark, the issues' measure, comes first (the whole of
# it is an issue's target; the diagnostics have a call of their own).
bench_seconds=$(( $(left) - 10 - ${GPU_CHECK_DIAGNOSTICS_SECONDS:-30} ))
if [ "${GPU_CHECK_BENCH:-1}" != 0 ] && [ "$bench_seconds" -lt 60 ]; then
  echo "benchmark: NOT RUN: ${bench_seconds} s left of GPU_CHECK_TOTAL_SECONDS" \
    | tee -a "$OUT/summary.txt"
  status=1
elif [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  echo "benchmark: started at ${SECONDS} s with ${bench_seconds} s left, on $backends" \
    | tee -a "$OUT/summary.txt"
  rm -rf "$OUT/bench" "$tmp/cases.jsonl"
  # No case starts in the last 20 s (the case under way, the report).
  # shellcheck disable=SC2086
  NNBACKEND_BENCH_DEADLINE=$(( $(date +%s) + bench_seconds - 20 )) \
  NNBACKEND_BENCH_CASE_LOG="$tmp/cases.jsonl" \
  NNBACKEND_BENCH_SECONDS=${NNBACKEND_BENCH_SECONDS:-0.5} \
  NNBACKEND_BENCH_RATIO_ROUNDS=${NNBACKEND_BENCH_RATIO_ROUNDS:-5} \
  NNBACKEND_BENCH_RATIO_SECONDS=${NNBACKEND_BENCH_RATIO_SECONDS:-2} \
  NNBACKEND_BENCH_RERUN_SECONDS=${NNBACKEND_BENCH_RERUN_SECONDS:-2} \
  NNBACKEND_BENCH_RERUN_TOTAL=${NNBACKEND_BENCH_RERUN_TOTAL:-15} \
  timeout -k 20 "$bench_seconds" \
  python3 -m nnbackend.cli bench --backends "$backends" --out "$OUT/bench" --ratios gpu \
    --target-n 0 --precision "${GPU_CHECK_PRECISION:-highest}" \
    ${GPU_CHECK_BENCH_ARGS:---models small,mid,mnist --sizes 1e3,1e4,1e5 --sgd-max 1e3 --mid-sizes 1e3,1e4 --mnist-sizes 1e4 --mnist-cpu-max 1e4 --mode-sizes small:batch=1e2,1e3,1e4,1e5;small:minibatch=1e5;mid:minibatch=1e4;mid:sgd=1e3;small:sgd=1e3 --gpu-peers} \
    > "$tmp/bench.log" 2>&1
  bench_status=$?
  [ "$bench_status" = 124 ] || [ "$bench_status" = 137 ] && \
    echo "benchmark: CUT OFF after $bench_seconds s" \
    | tee -a "$OUT/summary.txt"
  tail -n 400 "$tmp/bench.log" > "$OUT/bench.log"
  summary rebuild "$tmp/cases.jsonl" "$OUT/bench"
  summary bench "$OUT/bench"
  # The device tool brings back 8 files: the plots and summary.json stay here.
  rm -f "$OUT"/bench/*.png "$OUT/bench/summary.json"
  [ "$bench_status" = 0 ] || status=$bench_status
fi
# -- the diagnostics: where the kernels' time goes, in the time left ------------
if [ "${GPU_CHECK_DIAGNOSTICS:-1}" != 0 ]; then
  GPU_DIAG_SECONDS=$(( $(left) - 5 )) GPU_DIAG_APPEND=1 OUT="$OUT" \
    bash benchmarks/gpu_diagnostics.sh
fi
echo "gpu_check: done in ${SECONDS} s (status $status)" | tee -a "$OUT/summary.txt"
rm -rf "$tmp"
exit "$status"
