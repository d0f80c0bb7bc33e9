#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, run the whole test suite
# with CuPy (and PyTorch / JAX on CUDA where they see the GPU) beside NumPy,
# then the CPU-vs-GPU benchmark (numpy on this machine's CPU, cupy and torch
# on its GPU, in the same run), and print a short summary.
#
# What it leaves in $OUT (8 files at most, for the device tool):
#   summary.txt  machine, test counts per backend, benchmark crossovers
#   pytest.log   the test run
#   bench/       results.json, report.md, summary.json and the PNG plots
#
# GPU_CHECK_BENCH=0 skips the benchmark; GPU_CHECK_BENCH_ARGS replaces its size
# flags (default: N = 1e3..1e5, sgd to 1e4, no time-to-target runs).
# GPU_CHECK_TESTS lists the test files (default: those that run every
# backend, the fused CuPy executor's included; "tests" runs all of them).
# The defaults fit a device lease: a GPU machine is lent for 15 minutes,
# 10 a command, and each part is cut off by `timeout` (GPU_CHECK_TEST_SECONDS,
# GPU_CHECK_BENCH_SECONDS) so that the other still runs and reports.
#
#   bash benchmarks/gpu_check.sh            # results in ./gpu_check_results
#   OUT=/some/dir bash benchmarks/gpu_check.sh
#
# Packages the GPU machine lacks (array-api-compat, array-api-strict) may
# travel as wheels in .whl/ (see README, "The GPU check"); they are installed
# into /tmp/site, never into the system. The project is imported from this
# source tree, so no build backend is needed there.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_results}
mkdir -p "$OUT"

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    | sed 's/^/gpu: /' || echo "gpu: nvidia-smi not found"
  python3 - <<'PY'
import platform
import nnbackend as nb
print("python:", platform.python_version())
print("backends:", ", ".join(nb.available_backends()))
for name in ("numpy", "cupy", "torch", "jax"):
    try:
        mod = __import__(name)
        print(f"{name}: {mod.__version__}")
    except Exception as exc:
        print(f"{name}: missing ({type(exc).__name__})")
PY
} | tee "$OUT/summary.txt"

# GPU_CHECK_REQUIRE_GPU=0 runs the same steps without a GPU (a dry run of
# this script itself; the CuPy tests then skip).
if [ "${GPU_CHECK_REQUIRE_GPU:-1}" != 0 ] && ! python3 - <<'PY'
import sys
import nnbackend as nb
try:
    nb.get_backend("cupy")
except Exception as exc:
    sys.exit(f"gpu_check: CuPy cannot use a GPU here: {exc}")
PY
then
  exit 2
fi

export NNBACKEND_TEST_BACKENDS=${NNBACKEND_TEST_BACKENDS:-numpy,cupy,torch:cuda,jax:gpu,strict}
junit=$(mktemp --suffix=.xml)
tests=${GPU_CHECK_TESTS:-tests/test_cupy_fused.py tests/test_kernels.py tests/test_fused_forms.py tests/test_precision.py tests/test_gradients.py tests/test_backend.py tests/test_fit.py tests/test_training.py tests/test_chunked.py tests/test_executors.py tests/test_reproducibility.py}
# shellcheck disable=SC2086
timeout "${GPU_CHECK_TEST_SECONDS:-300}" python3 -m pytest $tests -q -rs -p no:cacheprovider \
  --junitxml "$junit" 2>&1 | tee "$OUT/pytest.log"
status=${PIPESTATUS[0]}

python3 - "$junit" <<'PY' | tee -a "$OUT/summary.txt"
import collections, sys, xml.etree.ElementTree as ET
counts = collections.defaultdict(collections.Counter)
try:
    cases = list(ET.parse(sys.argv[1]).iter("testcase"))
except (ET.ParseError, OSError):
    sys.exit("gpu_check summary: no test report (the test run was cut off: see pytest.log)")
for case in cases:
    name = case.get("name", "")
    group = "other"
    for key in ("cupy", "torch-cuda", "jax-gpu", "numpy", "strict"):
        if f"[{key}" in name or f"-{key}" in name:
            group = key
            break
    outcome = "passed"
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            outcome = "failed" if tag in ("failure", "error") else "skipped"
    counts[group][outcome] += 1
print("gpu_check summary (tests by backend):")
for group in sorted(counts):
    c = counts[group]
    print(f"  {group:11s} {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
total = sum(counts.values(), collections.Counter())
print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
PY
if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  backends=numpy
  python3 -c "import nnbackend as nb; nb.get_backend('cupy')" 2>/dev/null && backends="$backends,cupy"
  python3 -c "import nnbackend as nb; nb.get_backend('torch', 'cuda')" 2>/dev/null && backends="$backends,torch:cuda"
  # shellcheck disable=SC2086
  timeout "${GPU_CHECK_BENCH_SECONDS:-240}" \
  python3 -m nnbackend.cli bench --backends "$backends" --out "$OUT/bench" \
    ${GPU_CHECK_BENCH_ARGS:---sizes 1e3,1e4,1e5 --sgd-max 1e4 --target-n 0} \
    > "$OUT/bench.log" 2>&1
  bench_status=$?
  python3 - "$OUT/bench/summary.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
try:
    summary = json.load(open(sys.argv[1]))
except OSError:
    print("benchmark: no summary written (see bench.log)")
    sys.exit()
print("benchmark GPU/CPU crossovers:")
for c in summary.get("crossovers", []):
    print("  " + c.get("text", str(c)))
if not summary.get("crossovers"):
    print("  none: no GPU result in the benchmark")
PY
  # Issue 5's question: the fused CuPy epoch per step against eager CuPy and
  # NumPy on this machine's CPU, for sgd and mini-batch 64.
  python3 - "$OUT/bench/results.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
try:
    records = json.load(open(sys.argv[1]))["benchmarks"]
except (OSError, KeyError, ValueError):
    sys.exit()
per_step = {}
for r in records:
    e = r.get("extra_info", {})
    if e.get("kind") == "epoch" and "seconds_per_step" in e:
        per_step[e["label"], e["mode"], e["n_samples"]] = e["seconds_per_step"]
print("per-step time, fused cupy (auto) vs eager cupy (reference) vs numpy:")
for (label, mode, n), t in sorted(per_step.items()):
    if label != "nnbackend-cupy":
        continue
    eager = per_step.get(("nnbackend-cupy-reference", mode, n))
    cpu = per_step.get(("nnbackend-numpy", mode, n))
    text = f"  {mode:9s} N={n:<8d} cupy {t * 1e6:9.2f} us"
    if eager:
        text += f"  eager {eager * 1e6:9.2f} us ({eager / t:.1f}x)"
    if cpu:
        text += f"  numpy {cpu * 1e6:9.2f} us ({cpu / t:.1f}x)"
    print(text)
PY
  # bench.log is long and the device tool brings back 8 files: keep its tail only.
  tail -n 40 "$OUT/bench.log" >> "$OUT/pytest.log"; rm -f "$OUT/bench.log"
  [ "$bench_status" = 0 ] || status=$bench_status
fi
exit "$status"
