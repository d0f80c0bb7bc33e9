# Sourced by benchmarks/gpu_check.sh and gpu_auto.sh, from the repository's
# root: the environment of a run on the GPU machine (no network there).
# - Wheels in .whl/ (benchmarks/gpu_wheels.sh) go into /tmp/site, never into
#   the system, and onto PYTHONPATH; the project is imported from this tree.
# - JAX would take 75% of the GPU's memory at first use; CuPy and torch share
#   the process (DESIGN.md, pitfalls).
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
