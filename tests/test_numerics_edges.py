"""Numerical edges found by the numerics review of 2026-12-07
(``benchmarks/results/numerics-review-2026-12-07/README.md``).

* A float32 JAX fit gives the same bits whether or not JAX's x64 mode is on
  (an earlier float64 fit in the process turns it on): Adam's bias
  corrections, computed in a compiled epoch from the device's step count,
  are read from a table of the host loop's values, and ``'invscaling'``'s
  factor is computed in the parameters' dtype.
* Those Adam scalars are the host loop's bits in float32 with x64 off (they
  were up to 3 units in the last place off, biased one way).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nnbackend as nb
from conftest import child_pythonpath

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One float32 JAX fit, its parameters' digest and history printed; x64 as the
# environment sets it (JAX_ENABLE_X64), as an earlier float64 fit would.
_FIT_CODE = """
import hashlib, json, sys
import numpy as np
import nnbackend as nb
import jax
opt, mode, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 3)).astype(np.float32)
y = (X[:, :1] > 0).astype(np.float32)
m = nb.MLP([3, 6, 1], dtype="float32", seed=0, backend="jax")
h = m.fit(X, y, mode=mode, batch_size=8, epochs=3, lr=0.05, optimizer=opt, seed=1, **extra)
digest = hashlib.sha256()
for pair in m.params:
    for a in pair:
        digest.update(np.ascontiguousarray(np.asarray(a)).tobytes())
print(json.dumps([bool(jax.config.jax_enable_x64), h.executor, digest.hexdigest(), h.loss]))
"""


def _jax_fit(opt, mode, extra, x64):
    env = dict(os.environ, PYTHONPATH=child_pythonpath(ROOT), JAX_PLATFORMS="cpu")
    env.pop("NNBACKEND_BACKEND", None)
    env.pop("JAX_ENABLE_X64", None)
    if x64:
        env["JAX_ENABLE_X64"] = "1"
    out = subprocess.run([sys.executable, "-c", _FIT_CODE, opt, mode, json.dumps(extra)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("opt, mode, extra", [
    ("adam", "minibatch", {}),                                        # jax-scan
    ("adam", "batch", {}),                                            # jax-batch
    ("sgd", "minibatch", {"lr_schedule": "invscaling", "power_t": 0.3}),
])
def test_a_float32_jax_fit_gives_the_same_bits_with_x64_on_or_off(opt, mode, extra):
    pytest.importorskip("jax", reason="the jax backend is not installed")
    off = _jax_fit(opt, mode, extra, x64=False)
    on = _jax_fit(opt, mode, extra, x64=True)
    assert (off[0], on[0]) == (False, True)
    assert off[1] == on[1] and off[1].startswith("jax-"), (off[1], on[1])
    assert off[2] == on[2], f"{off[1]}: the parameters differ once x64 is on"
    assert off[3] == on[3]



# Adam's scalars from a traced step count against the host loop's, in float32
# with x64 off (as a float32-only process has it): units in the last place.
_SCALARS_CODE = """
import jax, jax.numpy as jnp, numpy as np
from nnbackend.optim import _adam_scalars
like = jnp.zeros(2, dtype=jnp.float32)
worst, early = 0.0, 0.0
for b1, b2 in ((0.9, 0.999), (0.5, 0.9), (0.9, 0.9999)):
    f = jax.jit(lambda c: _adam_scalars(c, 0.05, b1, b2, 1e-8, like))
    for t in [*range(1, 300), 41568, 41569, 41570, 65536, 65537, 10**6, 2**24 + 1]:
        got = f(jnp.asarray(t, dtype=jnp.int32))
        want = _adam_scalars(t, 0.05, b1, b2, 1e-8, like)  # the host loop's Python floats
        for g, w in zip(got, want):
            w32 = np.float32(w)
            ulps = abs(float(g) - float(w32)) / float(np.spacing(w32))
            worst = max(worst, ulps)
            early = max(early, ulps) if t < 300 else early
print(bool(jax.config.jax_enable_x64), early, worst)
"""


def test_a_compiled_epochs_adam_scalars_are_the_host_loops_in_float32():
    # On the device they were computed in float32 (x64 off): up to 3 ulps from
    # the reference loop's, -0.56 on average, a bias that took a float32
    # jax-scan fit past the executors' own bound (tests/test_executors.py) in
    # a process without x64. Now the host's values (1 ulp past a table that
    # stops short of the corrections' end: b2 = 0.9999 beyond 65536 steps).
    pytest.importorskip("jax", reason="the jax backend is not installed")
    env = dict(os.environ, PYTHONPATH=child_pythonpath(ROOT), JAX_PLATFORMS="cpu")
    env.pop("JAX_ENABLE_X64", None)
    out = subprocess.run([sys.executable, "-c", _SCALARS_CODE], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    x64, early, worst = out.stdout.split()
    assert x64 == "False"
    assert float(early) == 0.0  # the first 300 steps: the host's bits
    assert float(worst) <= 1.0


def test_a_loss_that_overflows_at_the_starting_weights_is_not_blamed_on_the_rate_alone():
    # Before: "lr=0.1 may be too large" for targets whose squares overflow in
    # float32, though no step had been taken.
    X = np.random.default_rng(0).normal(size=(32, 2))
    model = nb.MLP([2, 3, 1], output_activation="identity", dtype="float32", seed=0)
    with pytest.warns(nb.DivergenceWarning, match="diverged at epoch 1") as caught:
        model.fit(X, np.full((32, 1), 1e19), mode="batch", epochs=3)
    assert "overflows at the starting weights" in str(caught[0].message)
    assert "lr=0.1 may be too large" in str(caught[0].message)
