#!/usr/bin/env bash
# The wheels the GPU check needs on a GPU machine without network, fetched
# here into .whl/ (ignored by git), to travel with the working tree
# (the device tool's `carry: [".whl"]`); benchmarks/gpu_check.sh installs
# them into /tmp/site there.
#
#   bash benchmarks/gpu_wheels.sh
#
# - array-api-compat, array-api-strict: every test and the kernels need them.
# - dask, partd, locket: tests/test_dask_cupy.py (CuPy-chunked Dask arrays).
#   The machine has dask's other needs (cloudpickle, fsspec, pyyaml, toolz).
# All are pure-Python wheels; one version of each (two stop the install).
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 --platform any -d .whl \
  array-api-compat array-api-strict dask partd locket
ls .whl
