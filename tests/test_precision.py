"""Float32 matmuls at full float32 precision on every backend, unless the user asks otherwise.

JAX computes float32 matmuls in TF32 on recent GPUs by default; the kernels
ask for ``Precision.HIGHEST`` on ``jax.numpy`` arrays (through the fix that
``nnbackend.backends.jax`` registers with the kernels), in the backend's own
path and in users' JAX code alike. That is visible on a CPU, in the jaxpr.
torch and CuPy compute full float32 by default, and nnbackend must never
turn TF32 on by itself.
"""

import os

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import data
from nnbackend import kernels as K
from nnbackend import network


def _jax():
    return pytest.importorskip("jax", reason="jax is needed for the jaxpr checks")


def _dot_precisions(jaxpr):
    """The ``precision`` of every dot_general in ``jaxpr``, nested jaxprs (jit, scan) included."""
    found = []

    def walk(j):
        j = getattr(j, "jaxpr", j)  # a ClosedJaxpr holds its Jaxpr
        for eqn in j.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    if hasattr(getattr(sub, "jaxpr", sub), "eqns"):
                        walk(sub)

    walk(jaxpr)
    return found


def _all_highest(jaxpr, expected_dots):
    import jax

    highest = jax.lax.Precision.HIGHEST
    precisions = _dot_precisions(jaxpr)
    assert len(precisions) == expected_dots, str(jaxpr)
    assert all(p == (highest, highest) for p in precisions), str(jaxpr)


def _arrays(jnp, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.normal(size=s).astype(np.float32)) for s in shapes]


def test_dense_kernels_ask_jax_for_full_float32_precision():
    jax = _jax()
    x, W, b, dz = _arrays(jax.numpy, (8, 3), (3, 4), (4,), (8, 4))
    _all_highest(jax.make_jaxpr(lambda x, W, b: K.dense_forward(x, W, b))(x, W, b), 1)
    _all_highest(jax.make_jaxpr(lambda x, W, dz: K.dense_backward(x, W, dz))(x, W, dz), 2)
    _all_highest(jax.make_jaxpr(
        lambda x, W, dz: K.dense_backward(x, W, dz, need_dx=False))(x, W, dz), 1)
    _all_highest(jax.make_jaxpr(
        lambda x, W, b: K.dense_activation_forward(x, W, b, "tanh"))(x, W, b), 1)
    # The namespace given as xp= is the same jax.numpy: the same fix.
    _all_highest(jax.make_jaxpr(
        lambda x, W, b: K.dense_forward(x, W, b, xp=jax.numpy))(x, W, b), 1)


def test_a_jitted_network_step_asks_for_full_precision():
    jax = _jax()
    jnp = jax.numpy
    sizes = [3, 5, 4, 2]
    params = [jnp.asarray(p.astype(np.float32))
              for p in data.init_params(sizes, "relu", np.random.default_rng(0))]
    X, Y = _arrays(jnp, (16, 3), (16, 2), seed=1)
    spec = network.NetSpec("relu", "identity", "mse", "mean")

    def step(params, X, Y):
        return network.loss_and_grads_rows(params, spec, network.slice_rows(X, Y), 16, 16,
                                           None, jnp)

    # Three layers: three forward matmuls, three for dW and two for dx.
    _all_highest(jax.make_jaxpr(jax.jit(step))(params, X, Y), 8)


def test_the_jax_scan_executor_compiles_full_precision_matmuls(monkeypatch):
    jax = _jax()
    from nnbackend.backends.jax import scan

    seen = []
    compile_epoch = scan._compile

    def spy(task):
        compiled = compile_epoch(task)

        def run(*args):
            seen.append(jax.make_jaxpr(compiled)(*args))
            return compiled(*args)
        return run

    monkeypatch.setattr(scan, "_compile", spy)
    scan._COMPILED.clear()  # compile afresh, through the spy
    try:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(40, 3))
        y = (X[:, :1] > 0).astype(float)
        model = nb.MLP([3, 4, 1], loss="bce", backend="jax", seed=0)
        model.fit(X, y, mode="minibatch", batch_size=10, epochs=1, executor="jax-scan")
    finally:
        scan._COMPILED.clear()  # no spy left in the cache
    assert seen, "the scan executor did not run"
    # One scan of full batches (40 = 4 x 10): 2 forward, 2 dW, 1 dx matmuls.
    _all_highest(seen[0], 5)


def test_a_users_own_matmul_precision_rules():
    # Opting in to TF32 (or any precision) is the user's call: inside
    # jax.default_matmul_precision the kernels leave the precision to it.
    jax = _jax()
    x, W, b = _arrays(jax.numpy, (8, 3), (3, 4), (4,))
    with jax.default_matmul_precision("tensorfloat32"):
        precisions = _dot_precisions(
            jax.make_jaxpr(lambda x, W, b: K.dense_forward(x, W, b))(x, W, b))
    highest = jax.lax.Precision.HIGHEST
    assert len(precisions) == 1 and highest not in (precisions[0] or ()), precisions
    # And outside it, full precision again.
    _all_highest(jax.make_jaxpr(lambda x, W, b: K.dense_forward(x, W, b))(x, W, b), 1)


def test_kernels_on_jax_give_numpys_numbers():
    jax = _jax()
    rng = np.random.default_rng(7)
    x, W, b = (rng.normal(size=s).astype(np.float32) for s in ((64, 32), (32, 16), (16,)))
    on_jax = np.asarray(K.dense_forward(*(jax.numpy.asarray(v) for v in (x, W, b))))
    on_numpy = K.dense_forward(x, W, b)
    # Full float32 on both: rounding apart (TF32 would be ~1e-3 apart).
    np.testing.assert_allclose(on_jax, on_numpy, rtol=2e-5, atol=2e-5)


def _tf32_switches():
    """Every TF32 switch nnbackend could touch, as it stands now."""
    state = {"CUPY_TF32": os.environ.get("CUPY_TF32"),
             "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE")}
    try:
        import torch
    except ImportError:
        pass
    else:
        state["torch.backends.cuda.matmul.allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
        state["torch.backends.cudnn.allow_tf32"] = torch.backends.cudnn.allow_tf32
        state["torch float32 matmul precision"] = torch.get_float32_matmul_precision()
    try:
        import jax
    except ImportError:
        pass
    else:
        state["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
    return state


def test_nnbackend_never_turns_tf32_on(backend):
    before = _tf32_switches()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X[:, :1] > 0).astype(float)
    model = nb.MLP([3, 4, 1], backend=backend, seed=0)
    model.fit(X, y, mode="batch", epochs=2)
    model.fit(X, y, mode="minibatch", batch_size=16, epochs=1)
    model.predict(X)
    assert _tf32_switches() == before


def test_torch_computes_full_float32_matmuls_by_default():
    # What the README promises for torch: TF32 is off unless the user turns it on.
    pytest.importorskip("torch", reason="torch is needed for its defaults")
    import subprocess
    import sys

    code = ("import torch, nnbackend as nb; nb.get_backend('torch'); "
            "print(torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             filter(None, [os.path.dirname(os.path.dirname(nb.__file__)),
                                           os.environ.get("PYTHONPATH")]))},
                         check=True).stdout.split()
    assert out == ["False", "highest"], out
