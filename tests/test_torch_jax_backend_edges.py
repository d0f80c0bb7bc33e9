"""The torch and jax backends at their edges, from the torch and JAX backends
review of 2026-12-07: an optimizer of the caller's that jax cannot trace,
JAX's own default device, a torch plugin device that says it is available
but holds no tensor, a deleted JAX array, and a float32 compiled JAX fit's
bits with x64 on or off."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nnbackend as nb
from conftest import child_pythonpath
from nnbackend.backends import UnusableArrayError
from nnbackend.optim import Optimizer

ROOT = Path(__file__).parent.parent


def _child(code, devices=1, env=None):
    """The last line a fresh Python prints, as JSON (``devices`` JAX CPU devices,
    ``env`` added to the environment)."""
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("NNBACKEND", "JAX_ENABLE"))}, **(env or {})}
    env.update(PYTHONPATH=child_pythonpath(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _data(n=48):
    X = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    return X, (X[:, :1] > 0).astype(np.float32)


def _no_state(params):
    return ()


def _clipped(grads, state, params):
    """SGD clipped by the gradients' norm, read as a host number (``float``)."""
    norm = sum(float((g * g).sum()) for g in grads) ** 0.5
    scale = 0.5 / max(norm, 1.0)
    return [p - scale * g for p, g in zip(params, grads)], state


def _plain(grads, state, params):
    return [p - 0.5 * g for p, g in zip(params, grads)], state


@pytest.mark.parametrize("mode, executor", [("minibatch", "jax-scan"), ("batch", "jax-batch")])
def test_an_optimizer_jax_cannot_trace_runs_on_the_reference_loop(mode, executor):
    # It ran on numpy, torch and jax's reference loop, but jax's default
    # executors traced it and failed inside JAX (ConcretizationTypeError).
    pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
    X, y = _data()
    opt = Optimizer(_no_state, _clipped)
    model = nb.MLP([3, 4, 1], backend="jax", seed=0)
    hist = model.fit(X, y, epochs=2, batch_size=8, mode=mode, optimizer=opt)
    assert hist.executor == "reference"
    assert f"{executor}: an optimizer of the caller's whose update jax cannot trace" \
        in hist.executor_reason
    host = nb.MLP([3, 4, 1], backend="numpy", seed=0)
    host.fit(X, y, epochs=2, batch_size=8, mode=mode, optimizer=opt)
    for (W, b), (hW, hb) in zip(model.params, host.params):
        np.testing.assert_allclose(np.asarray(W), hW, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(b), hb, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=f"executor '{executor}' does not apply here: an "
                                         "optimizer of the caller's whose update jax cannot"):
        model.fit(X, y, epochs=1, batch_size=8, mode=mode, optimizer=opt, executor=executor)
    # One that traces keeps the compiled epoch.
    hist = nb.MLP([3, 4, 1], backend="jax", seed=0).fit(
        X, y, epochs=1, batch_size=8, mode=mode, optimizer=Optimizer(_no_state, _plain))
    assert hist.executor == executor


def test_the_jax_backend_is_on_jaxs_default_device():
    # get_backend("jax") took jax.devices()[0] whatever jax.default_device
    # said, and refused the arrays jnp had made on that device.
    pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
    got = _child("""
        import json, jax, jax.numpy as jnp, numpy as np, nnbackend as nb
        d0, d1 = jax.devices()
        out = {}
        with jax.default_device(d1):
            out["block"] = str(nb.get_backend("jax").device)
            X = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)), dtype=jnp.float32)
            model = nb.MLP([3, 4, 1], backend="jax", seed=0)
            model.fit(X, (X[:, :1] > 0).astype(jnp.float32), epochs=1, batch_size=4)
            out["fit"] = str(next(iter(model.params[0][0].devices())))
        out["after"] = str(nb.get_backend("jax").device)
        jax.config.update("jax_default_device", d1)
        out["config"] = str(nb.get_backend("jax").device)
        jax.config.update("jax_default_device", "cpu")
        out["platform"] = str(nb.get_backend("jax").device)
        print(json.dumps(out))
        """, devices=2)
    assert got == {"block": "cpu:1", "fit": "cpu:1", "after": "cpu:0",
                   "config": "cpu:1", "platform": "cpu:0"}


def test_a_plugin_device_that_holds_no_tensor_is_refused_at_lookup():
    # A device module that says it is available, where no tensor can be
    # made: the backend was made, and only the model's first array failed.
    torch = pytest.importorskip("torch", reason="needs torch (the 'torch' extra)")
    got = _child("""
        import json, warnings, torch, nnbackend as nb
        warnings.simplefilter("ignore")
        torch.utils.rename_privateuse1_backend("nnbtest")

        class Module:
            is_available = staticmethod(lambda: True)
            current_device = staticmethod(lambda: 0)

        torch._register_device_module("nnbtest", Module)
        out = []
        for device in ("nnbtest", "nnbtest:0"):
            try:
                nb.get_backend("torch", device)
                out.append("made")
            except nb.BackendUnavailableError as exc:
                out.append(str(exc))
        print(json.dumps(out))
        """)
    assert got == [f"backend 'torch': device '{d}' is not available here (torch "
                   f"{torch.__version__}); use 'cpu', 'cuda' or 'mps'"
                   for d in ("nnbtest", "nnbtest:0")]


def test_a_deleted_jax_array_is_refused_by_name():
    # JAX's own "Array has been deleted" came from deep inside the first
    # operation on it, naming neither X nor the parameter.
    jnp = pytest.importorskip("jax.numpy", reason="needs jax (the 'jax' extra)")
    X, y = _data(8)
    gone = jnp.asarray(X)
    gone.delete()
    model = nb.MLP([3, 4, 1], backend="jax", seed=0)
    with pytest.raises(UnusableArrayError, match=r"^X is a deleted JAX array \(shape \(8, 3\)\)"):
        model.fit(gone, y, epochs=1)
    with pytest.raises(UnusableArrayError, match=r"^X is a deleted JAX array"):
        model.predict(gone)
    W = jnp.zeros((3, 4))
    W.delete()
    params = [(W, np.zeros(4)), (np.zeros((4, 1)), np.zeros(1))]
    with pytest.raises(UnusableArrayError, match=r"^params\[0\] W is a deleted JAX array"):
        nb.MLP([3, 4, 1], backend="jax", params=params)
    with pytest.raises(UnusableArrayError, match=r"^a deleted JAX array \(shape \(3, 4\)\)"):
        nb.MLP([3, 4, 1], params=params)  # (the backend found from W, as for a tracer)


def _with_x64_off_and_on(fits):
    """``fits()`` run with JAX's x64 off, then on (and x64 left as it was)."""
    jax = pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
    before = jax.config.jax_enable_x64
    try:
        jax.config.update("jax_enable_x64", False)
        off = fits()
        assert not jax.config.jax_enable_x64  # (no fit leaves it switched)
        jax.config.update("jax_enable_x64", True)
        return off, fits()
    finally:
        jax.config.update("jax_enable_x64", before)


def _x64_fits():
    """Digests of a float32 jax-scan fit and a shuffled jax-batch fit."""
    X = np.random.default_rng(0).normal(size=(700, 10)).astype(np.float32)
    ids = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    out = {}
    for size in (32, 1000):  # jax-scan; jax-batch, gathering through the order
        model = nb.MLP([10, 16, 3], output_activation="softmax", loss="cross_entropy",
                       backend="jax", seed=0)
        hist = model.fit(X, ids, epochs=2, seed=1, batch_size=size, optimizer="momentum")
        data = b"".join(np.asarray(p).tobytes() for p in model.flat_params)
        out[hist.executor] = hashlib.sha1(data + np.asarray(hist.loss).tobytes()).hexdigest()
    return out


@pytest.mark.filterwarnings("ignore:batch_size=1000 is larger")
def test_a_float32_compiled_jax_fit_has_the_same_bits_with_x64_on_or_off():
    # With x64 on (as after any float64 jax model) the row order went into the
    # compiled epoch as int64, XLA compiled the float code around the gather
    # differently, and 170 of 227 parameters moved by up to 1.8e-7.
    off, on = _with_x64_off_and_on(_x64_fits)
    assert set(off) == {"jax-scan", "jax-batch"}
    assert on == off


def _standardized_jax_fits():
    """Digests of float32 jax fits that standardize jnp float32 and int32 features."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(300, 4)) * 3 + 1e4).astype(np.float32)
    y = (X[:, 0] > 1e4).astype(np.float32)
    out = {}
    for name, data in (("float32", jnp.asarray(X)), ("int32", jnp.asarray(X.astype(np.int32)))):
        model = nb.MLP([4, 6, 1], backend="jax", standardize=True, seed=0)
        hist = model.fit(data, y, epochs=2, seed=1, batch_size=32)
        scaler = model.feature_scaler
        stats = np.concatenate([scaler.mean_, scaler.scale_]).tobytes()
        params = b"".join(np.asarray(p).tobytes() for p in model.flat_params)
        out[name] = hashlib.sha1(stats + params + np.asarray(hist.loss).tobytes()).hexdigest()
    return out


def test_standardized_jax_arrays_give_the_same_bits_with_x64_on_or_off():
    # The scaler summed in backend.wide_dtype(), float64 only with x64 on: the
    # statistics of jnp data, and the fit's bits, depended on it. The sums now
    # run in a block with x64 on, and only host figures leave it.
    off, on = _with_x64_off_and_on(_standardized_jax_fits)
    assert on == off
