"""JAX at the backend's edges: traced and sharded arrays, devices named by
index, models pickled across processes and devices, and x64 turned off after
a float64 model was made."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="needs jax (the 'jax' extra)")
import jax.numpy as jnp  # noqa: E402

import nnbackend as nb  # noqa: E402
from conftest import child_pythonpath  # noqa: E402

ROOT = Path(__file__).parent.parent


def _data(n=24):
    X = np.random.default_rng(0).normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(float)


@pytest.mark.parametrize("named", [False, True])
def test_a_traced_array_is_refused_and_the_model_keeps_its_weights(named):
    # Under jit or grad, a model that follows its data had moved to a device of
    # None and kept the leaked tracers as its weights (save and pickle failed).
    model = nb.MLP([3, 4, 1], backend="jax" if named else None)
    before = [np.array(p) for p in model.flat_params]
    ones = jnp.ones((5, 3))
    for transformed in (jax.jit(model.predict), jax.grad(lambda X: model.predict(X).sum())):
        with pytest.raises(TypeError, match=r"X is a traced JAX array \(inside jax.jit, grad "
                                            "or vmap\\): a model's methods run eagerly"):
            transformed(ones)
    assert model.backend.name == ("jax" if named else "numpy")
    for got, want in zip(model.flat_params, before):
        np.testing.assert_array_equal(np.asarray(got), want)
    pickle.dumps(model)


@pytest.mark.parametrize("device, error, match", [
    ("cpu:x", ValueError, "bad device 'cpu:x': its index must be a whole number >= 0"),
    ("cpu:-1", ValueError, "bad device 'cpu:-1': its index must be a whole number"),
    (object(), ValueError, "bad device <object .*>; give a jax.Device, an index"),
    (99, nb.BackendUnavailableError, r"no device '99' \(devices here: "),
    # jax.devices("") gives the default device: an empty name was taken for it.
    ("", ValueError, "bad device ''; give 'cpu', 'gpu'"),
    (" ", ValueError, "bad device ' '; give 'cpu', 'gpu'"),
    # A typo is no missing GPU: the refusal said to install jax with CUDA.
    ("cpuu", ValueError, "bad device 'cpuu': JAX has no platform 'cpuu' \\(devices here"),
])
def test_a_device_jax_has_not_is_refused_by_name(device, error, match):
    with pytest.raises(error, match=match):
        nb.get_backend("jax", device)


def test_a_platform_is_read_in_any_case_and_a_missing_one_is_unavailable():
    assert nb.get_backend("jax:CPU").device == jax.devices("cpu")[0]
    assert nb.get_backend("jax", " Cpu:0 ").device == jax.devices("cpu")[0]
    if not any(d.platform == "tpu" for d in jax.devices()):
        with pytest.raises(nb.BackendUnavailableError, match="has no 'tpu' device"):
            nb.get_backend("jax:TPU")


def test_a_device_index_is_an_index_of_jax_devices():
    for index in (0, "0"):
        assert nb.get_backend("jax", index).device == jax.devices()[0]


def test_the_range_refusal_names_the_dtype():
    # It had named jax's dtype object: "<class 'jax.numpy.float32'>".
    nb.MLP([3, 1], backend="jax", dtype="float64")  # x64 on, for a float64 jax X
    huge = jnp.asarray(np.full((2, 3), 1e300), dtype=jnp.float64)
    with pytest.raises(ValueError, match="beyond the range of the model's dtype float32: "):
        nb.MLP([3, 1], backend="jax").predict(huge)


def _child(code, devices=1, x64="0"):
    """The last line a fresh Python prints, as JSON, with ``devices`` JAX CPU devices."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND")}
    env.update(PYTHONPATH=child_pythonpath(ROOT), JAX_ENABLE_X64=x64, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_pickled_model_comes_back_on_its_device_in_its_dtype(tmp_path):
    # JAX's own pickling of its arrays lands them on its default device, in
    # float32 where x64 is off; the model's backend and dtype said otherwise.
    path = tmp_path / "model.pkl"
    _child(f"""
        import pickle, numpy as np, nnbackend as nb
        X = np.random.default_rng(0).normal(size=(24, 3)); y = (X[:, 0] > 0).astype(float)
        model = nb.MLP([3, 4, 1], backend="jax", device="cpu:1", dtype="float64")
        model.fit(X, y, batch_size=8, epochs=2, optimizer="adam")
        with open({str(path)!r}, "wb") as f:
            pickle.dump(model, f)
        print("[]")
        """, devices=2)
    got = _child(f"""
        import json, pickle, jax, numpy as np
        with open({str(path)!r}, "rb") as f:
            model = pickle.load(f)
        arrays = [W for W, b in model.params] + model.train_state.state_arrays["mu"]
        X = np.random.default_rng(0).normal(size=(24, 3))
        print(json.dumps([model.dtype, str(model.backend.device),
                          sorted({{str(a.dtype) for a in arrays}}),
                          sorted({{str(d) for a in arrays for d in a.devices()}}),
                          str(model.predict(X).dtype), str(jax.devices()[1])]))
        """, devices=2)
    dtype, device, array_dtypes, array_devices, predicted, second = got
    assert dtype == predicted == "float64" and array_dtypes == ["float64"]
    assert array_devices == [device] == [second]


def test_a_sharded_array_is_refused_by_name():
    got = _child("""
        import json, jax, numpy as np, nnbackend as nb
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        mesh = Mesh(np.array(jax.devices()), ("d",))
        X = jax.device_put(np.ones((4, 3)), NamedSharding(mesh, PartitionSpec("d", None)))
        try:
            nb.MLP([3, 4, 1]).fit(X, np.ones(4), epochs=1)
            print(json.dumps(["fitted"]))
        except TypeError as exc:
            print(json.dumps([str(exc)]))
        """, devices=2)
    assert got[0].startswith("X is a JAX array sharded over 2 devices; nnbackend trains on one")


def test_a_float64_model_turns_x64_on_again_after_it_was_turned_off():
    # A minibatch fit had failed deep inside lax.scan (float64 weights against
    # float32 data), and a batch fit silently made the weights float32.
    got = _child("""
        import json, jax, numpy as np, nnbackend as nb
        X = np.random.default_rng(0).normal(size=(24, 3)); y = (X[:, 0] > 0).astype(float)
        out = []
        for mode in ("minibatch", "batch"):
            model = nb.MLP([3, 4, 1], backend="jax", dtype="float64")
            jax.config.update("jax_enable_x64", False)
            hist = model.fit(X, y, mode=mode, batch_size=8, epochs=2)
            out.append([str(model.params[0][0].dtype), str(model.predict(X).dtype),
                        bool(np.isfinite(hist.loss).all())])
        print(json.dumps(out))
        """)
    assert got == [["float64", "float64", True]] * 2
