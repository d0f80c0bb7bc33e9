#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, run the whole test suite
# with CuPy (and PyTorch / JAX on CUDA where they see the GPU) beside NumPy,
# and print a short summary.
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
} | tee "$OUT/machine.txt"

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
python3 -m pytest tests -q -rs -p no:cacheprovider --junitxml "$OUT/junit.xml" 2>&1 | tee "$OUT/pytest.log"
status=${PIPESTATUS[0]}

python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import collections, sys, xml.etree.ElementTree as ET
out = sys.argv[1]
counts = collections.defaultdict(collections.Counter)
for case in ET.parse(f"{out}/junit.xml").iter("testcase"):
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
exit "$status"
