"""What a NumPy step costs in calls, held where it is, and what it computes (issue 15).

A single-row step of a small network is a few microseconds of NumPy
arithmetic, and every Python call around it costs a good share of one. The
calls a step makes are counted with ``sys.setprofile`` (deterministic,
unlike a timing on a shared machine): Python functions entered and C
functions called from Python, per step, as the difference between an
epoch of 2N steps and one of N. Before issue 15 a step made 76 Python and
48 C calls; the plain seed-style loop makes 15 and 7. Speed itself is
measured in benchmarks/test_ratios.py, interleaved.

The bound one-chunk function that removed them must compute what the
chunked function computes, bit for bit, and so must NumPy's fused updates.
"""

import itertools
import sys

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import data
from nnbackend import network
from nnbackend.bench import workloads as W
from nnbackend.model import epoch_function
from nnbackend.optim import get_optimizer, on_namespace

# Per step, on NumPy >= 2.1 (its own namespace): 21 Python and 18 C calls
# after issue 15 (sgd; a mini-batch step one more of each). Some room
# for another NumPy's dispatch; a new per-step look-up shows.
MAX_PY_CALLS, MAX_C_CALLS = 26, 23


class _Counter:
    def __init__(self):
        self.py = self.c = 0

    def __call__(self, frame, event, arg):
        if event == "call":
            self.py += 1
        elif event == "c_call":
            self.c += 1


def _count(step):
    counter = _Counter()
    sys.setprofile(counter)
    try:
        step()
    finally:
        sys.setprofile(None)
    return counter


def _calls_per_step(make, n, steps):
    """(Python calls, C calls) per step: epochs of 2n and n rows, their difference over
    the extra steps (the per-epoch set-up cancels)."""
    one, two = make(n), make(2 * n)
    one(), two()  # first-use look-ups and caches
    a, b = _count(one), _count(two)
    return (b.py - a.py) / steps, (b.c - a.c) / steps


def _numpy_namespace_is_native():
    return nb.get_backend("numpy").xp.__name__ == "nnbackend.numpy"


@pytest.mark.parametrize("mode, batch", [("sgd", 1), ("minibatch", 64)])
def test_a_numpy_step_makes_few_calls(mode, batch):
    if not _numpy_namespace_is_native():
        pytest.skip("NumPy < 2.1 goes through array-api-compat's wrappers")
    n = 100 * batch

    def make(rows):
        model = nb.MLP([16, 32, 1], loss="mse", backend="numpy", seed=0)
        X, y = W.data_for("small16", rows)
        return epoch_function(model, X, y, mode=mode, batch_size=batch, lr=0.1, seed=0)

    py, c = _calls_per_step(make, n, n // batch)
    assert py <= MAX_PY_CALLS, f"{py} Python calls per {mode} step (at most {MAX_PY_CALLS})"
    assert c <= MAX_C_CALLS, f"{c} C calls per {mode} step (at most {MAX_C_CALLS})"


def test_the_seed_loop_counts_what_it_should():
    # The count is of the loop, not of the harness: the bare seed loop's 15
    # and 7, as a plain NumPy user's step makes them.
    def make(rows):
        return W.make_epoch("numpy-seed-bare", "cpu", "sgd", rows, model="small16")[0]

    py, c = _calls_per_step(make, 100, 100)
    assert py < MAX_PY_CALLS and c < MAX_C_CALLS
    assert py > 5  # two sigmoids and five products at least: the counter sees calls


SPECS = [
    ("sigmoid", "sigmoid", "mse", "mean"), ("sigmoid", "sigmoid", "mse", "sum"),
    ("tanh", "identity", "mse", "mean"), ("relu", "sigmoid", "bce", "mean"),
    ("identity", "softmax", "cross_entropy", "sum"), ("sigmoid", "identity", "mse", "sum"),
]


@pytest.mark.parametrize("hidden, output, loss, reduction", SPECS)
@pytest.mark.parametrize("sizes", [[5, 4], [5, 7, 4, 3]], ids=["one-layer", "two-hidden"])
@pytest.mark.parametrize("rows", [1, 9])
def test_the_bound_chunk_is_the_chunked_function_bit_for_bit(backend, hidden, output, loss,
                                                            reduction, sizes, rows):
    xp = backend.xp
    rng = np.random.default_rng(4)
    k = 1 if output == "sigmoid" else sizes[-1]
    sizes = sizes[:-1] + [k]
    spec = network.NetSpec(hidden, output, loss, reduction)
    host = data.init_params(sizes, hidden, rng)
    params = [backend.asarray(p, dtype=backend.dtype("float32")) for p in host]
    X = backend.asarray(rng.normal(size=(rows, sizes[0])), dtype=backend.dtype("float32"))
    if loss == "cross_entropy":
        Y = np.eye(k)[rng.integers(0, k, rows)]
    else:
        Y = rng.uniform(size=(rows, k))
    Y = backend.asarray(Y, dtype=backend.dtype("float32"))
    multiclass = network.multiclass_of(spec)
    want = network.loss_and_grads_rows(params, spec, network.slice_rows(X, Y), rows, rows,
                                       multiclass, xp)
    bound = network.bind_loss_and_grads(spec, xp, X.dtype, multiclass)
    got = bound(params, X, Y, rows)
    for a, b in itertools.chain([(got[0], want[0]), (got[2], want[2])], zip(got[1], want[1])):
        if a is None:
            assert b is None
            continue
        np.testing.assert_array_equal(backend.to_host(a), backend.to_host(b))


@pytest.mark.parametrize("name, options", [
    ("sgd", {}), ("momentum", {"beta": 0.8}), ("momentum", {"beta": 0.8, "nesterov": True}),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_fused_updates_are_the_generic_ones_bit_for_bit(name, options, dtype):
    xp = nb.get_backend("numpy").xp
    opt = get_optimizer(name, 0.1, **options)
    fused = on_namespace(opt, xp)
    if not _numpy_namespace_is_native():
        pytest.skip("NumPy < 2.1 goes through array-api-compat: no fused updates")
    assert fused.update is not opt.update
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3,), (3, 1), (1,)]
    params = [rng.normal(size=s).astype(dtype) for s in shapes]
    runs = []
    for o in (opt, fused):
        p, state = list(params), o.init(params)
        step_rng = np.random.default_rng(1)
        for _ in range(5):
            grads = [step_rng.normal(size=s).astype(dtype) for s in shapes]
            p, state = o.update(grads, state, p)
        runs.append((p, state))
    (p0, s0), (p1, s1) = runs
    for a, b in zip(p0, p1):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for a, b in zip(getattr(s0, "velocity", []), getattr(s1, "velocity", [])):
        np.testing.assert_array_equal(a, b)


def test_the_seed_loops_keep_the_loss_three_ways_and_train_alike():
    n = 40
    steps = {impl: W.make_epoch(impl, "cpu", "sgd", n, model="small16")[0]
             for impl in ("numpy-seed", "numpy-seed-bare", "numpy-seed-record")}
    losses = {impl: [s() for _ in range(2)] for impl, s in steps.items()}
    assert losses["numpy-seed-bare"] == [0.0, 0.0]  # it keeps none
    np.testing.assert_allclose(losses["numpy-seed-record"], losses["numpy-seed"], rtol=1e-5)
    # The same model, data, start and row order as nnbackend's epoch: the same loss.
    ours, _ = W.make_epoch("nnbackend", "numpy", "sgd", n, model="small16")
    np.testing.assert_allclose([ours(), ours()], losses["numpy-seed-record"], rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4096, 1), (300, 64), (2048, 33)])
def test_in_place_sigmoid_forms_are_the_formula_bit_for_bit(dtype, shape):
    """A batch's chunks (>= 4096 elements) take NumPy's sigmoid and its
    gradient in one buffer; the bits must be the generic formula's, and the
    inputs must stay as they were."""
    from nnbackend.backends.numpy import numpy_namespace

    fused = numpy_namespace().nnbackend_fused
    rng = np.random.default_rng(7)
    z = (rng.normal(size=shape) * 30).astype(dtype)
    z.flat[:4] = [np.inf, -np.inf, np.nan, -1e30 if dtype == "float64" else -3e38]
    da = rng.normal(size=shape).astype(dtype)
    z0, da0 = z.copy(), da.copy()
    floor = -80.0
    one, f = np.asarray(1, dtype=dtype), np.asarray(floor, dtype=dtype)
    want = one / (one + np.exp(-np.maximum(z, f)))
    got = fused["sigmoid"](z, floor)
    assert got.tobytes() == want.tobytes() and got.dtype == want.dtype
    a = want
    want_back = da * (a * (one - a))
    got_back = fused["sigmoid_backward"](a, da)
    assert got_back.tobytes() == want_back.tobytes()
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(da, da0)
    assert got_back is not a and got_back is not da


def test_a_large_batch_epoch_is_the_formula_bit_for_bit():
    """Batch mode on a network whose chunks take the in-place forms gives the
    parameters the generic kernels give (the strict backend runs them)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6000, 16)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float32)
    fits = {}
    for name in ("numpy", "strict"):
        model = nb.MLP([16, 32, 1], backend=name, dtype="float32", seed=0)
        model.fit(X, y, mode="batch", epochs=3, lr=0.5)
        fits[name] = [model.backend.to_host(p) for pair in model.params for p in pair]
    for a, b in zip(fits["numpy"], fits["strict"]):
        assert a.tobytes() == b.tobytes()
