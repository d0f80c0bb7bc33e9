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
import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import data
from nnbackend import kernels as K
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
@pytest.mark.parametrize("rows", [1, 9, 700])
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
    want = network.loss_and_grads_chunk(params, spec, X, Y, rows, multiclass, xp)
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
@pytest.mark.parametrize("below_floor", [True, False], ids=["specials", "all-above-floor"])
def test_in_place_sigmoid_forms_are_the_formula_bit_for_bit(dtype, shape, below_floor):
    """A batch's chunks (>= 4096 elements) take NumPy's sigmoid and its
    gradient in one buffer, and skip the floor where no element is below
    it; the bits must be the generic formula's either way, and the inputs
    must stay as they were."""
    fused = _numpy_fused()
    rng = np.random.default_rng(7)
    z = (rng.normal(size=shape) * 30).astype(dtype)
    if below_floor:
        z.flat[:4] = [np.inf, -np.inf, np.nan, -1e30 if dtype == "float64" else -3e38]
    else:
        z = np.maximum(z, -79.5)  # every element just above the floor at the lowest
        z.flat[:2] = [np.inf, -0.0]
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


@pytest.mark.parametrize("hidden, output, loss", [("sigmoid", "sigmoid", "mse"),
                                                  ("tanh", "identity", "mse"),
                                                  ("relu", "sigmoid", "bce")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_large_batch_epoch_is_the_formula_bit_for_bit(hidden, output, loss, dtype,
                                                        monkeypatch):
    """Batch mode on a network whose chunks take the in-place forms (bias,
    sigmoid, row sums) gives the parameters the generic kernels give (the
    strict backend runs them)."""
    pytest.importorskip("array_api_strict", reason="the strict backend runs the formula")
    from nnbackend.backends.blas import limit

    rng = np.random.default_rng(3)
    X = rng.normal(size=(6000, 16)).astype(dtype)
    y = (X[:, 0] * X[:, 1] > 0).astype(dtype)
    fits = {}
    # Both at one BLAS thread: a NumPy fit sets its own count, a strict one
    # keeps the library's, and OpenBLAS may split a product's sum over its
    # threads (a (6000, 32)ᵀ(6000, 1) gradient on an AMD EPYC at 2 threads:
    # other last bits than at 1). The formulas are what is compared here.
    monkeypatch.setattr(nb.MLP, "_blas_threads", lambda self, n_samples, options: 1)
    for name in ("numpy", "strict"):
        model = nb.MLP([16, 32, 1], hidden_activation=hidden, output_activation=output,
                       loss=loss, backend=name, dtype=dtype, seed=0)
        with limit(1):
            model.fit(X, y, mode="batch", epochs=3, lr=0.5)
        fits[name] = [model.backend.to_host(p) for pair in model.params for p in pair]
    for a, b in zip(fits["numpy"], fits["strict"]):
        assert a.tobytes() == b.tobytes()


def _plain_numpy():
    """NumPy's own namespace with no fused forms: the kernels' formulas themselves."""
    xp = types.ModuleType("plain_numpy")
    xp.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    return xp


PLAIN_NUMPY = _plain_numpy()


def _numpy_fused():
    from nnbackend.backends.numpy import numpy_namespace

    if not _numpy_namespace_is_native():
        pytest.skip("NumPy < 2.1 goes through array-api-compat: no fused forms")
    return numpy_namespace().nnbackend_fused


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(256, 2), (300, 33), (4096, 32), (2048, 64), (5000, 7),
                                   (257, 1), (4096, 1), (3, 5), (1, 32), (64, 64)])
def test_the_row_sum_form_adds_the_rows_in_numpys_order(dtype, shape):
    """``sum_rows`` takes einsum on a chunk's rows: it must add them in
    np.add.reduce's order (row after row), so every bit matches, specials too."""
    sum_rows = _numpy_fused()["sum_rows"]
    rng = np.random.default_rng(11)
    a = (rng.normal(size=shape) * rng.choice([1e-3, 1.0, 1e4], size=shape)).astype(dtype)
    want = np.add.reduce(a, axis=0)
    assert sum_rows(a).tobytes() == want.tobytes()
    if shape[0] > 2:
        a[1, 0], a[2, -1] = np.inf, np.nan
        assert sum_rows(a).tobytes() == np.add.reduce(a, axis=0).tobytes()
    # Views that are not C-contiguous take NumPy's reduction itself.
    for view in (a[:, ::2], a[::2], np.asfortranarray(a)):
        assert sum_rows(view).tobytes() == np.add.reduce(view, axis=0).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4096, 32), (1100, 32), (5000, 7), (300, 2048), (4096, 1),
                                   (64, 64), (9, 5)])
@pytest.mark.parametrize("name", ["bias_sigmoid", "bias_tanh", "bias_relu"])
def test_the_bias_forms_are_the_formula_bit_for_bit(dtype, shape, name):
    """A chunk's bias is added in place, in row blocks: each element must be
    ``xw[i, j] + b[j]`` and the activation the kernels' formula."""
    fused = _numpy_fused()
    rng = np.random.default_rng(12)
    xw = (rng.normal(size=shape) * 5).astype(dtype)
    b = rng.normal(size=shape[1]).astype(dtype)
    want_z = xw + b
    floor = -80.0
    activation = name.removeprefix("bias_")
    want_a = K.activation_forward(activation, want_z, xp=PLAIN_NUMPY)
    z, a = fused[name](xw.copy(), b, floor)
    assert z.tobytes() == want_z.tobytes() and z.dtype == want_z.dtype
    assert a.tobytes() == want_a.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(9, 5), (4096, 32)])
def test_the_relu_forms_are_the_formula_bit_for_bit_at_special_values(dtype, shape):
    """NumPy's relu is fmax(z, 0) + 0: NaN must give 0 and -0 must give +0,
    as ``where(z > 0, z, 0)`` does."""
    rng = np.random.default_rng(14)
    xw = (rng.normal(size=shape) * 5).astype(dtype)
    b = rng.normal(size=shape[1]).astype(dtype)
    b[:2] = -0.0
    xw[0, :2] = [-0.0, np.nan]
    xw[1, :2] = [np.inf, -np.inf]
    xw[2, :2] = [0.0, -0.0]
    want_z = xw + b
    want_a = K.activation_forward("relu", want_z, xp=PLAIN_NUMPY)
    z, a = _numpy_fused()["bias_relu"](xw.copy(), b, -80.0)
    assert z.tobytes() == want_z.tobytes()
    assert a.tobytes() == want_a.tobytes()
    assert np.signbit(a).sum() == 0 and a[0, 0] == 0 and a[0, 1] == 0
    assert _numpy_fused()["relu"](want_z).tobytes() == want_a.tobytes()
    # The gradient: da where z > 0, else +0, whatever da holds there.
    da = rng.normal(size=shape).astype(dtype)
    da[:3, :2] = [[-0.0, np.nan], [np.inf, -np.inf], [-0.0, np.nan]]
    da[3, :] = -0.0
    want_da = K.activation_backward("relu", want_z, want_a, da, xp=PLAIN_NUMPY)
    got = _numpy_fused()["relu_backward"](want_z, da)
    assert got.tobytes() == want_da.tobytes() and got.dtype == want_da.dtype
    view = da[:, ::2]  # strided
    assert _numpy_fused()["relu_backward"](want_z[:, ::2], view).tobytes() == \
        K.activation_backward("relu", want_z[:, ::2], None, view, xp=PLAIN_NUMPY).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction, n_samples", [("mean", None), ("mean", 1000), ("sum", None)])
def test_the_softmax_and_cross_entropy_forms_are_the_formula_bit_for_bit(dtype, reduction,
                                                                         n_samples):
    assert K.fused_form(nb.get_backend("numpy").xp, "cross_entropy") is not None
    rng = np.random.default_rng(15)
    z = (rng.normal(size=(200, 10)) * 20).astype(dtype)
    z[0, :3] = [np.inf, -np.inf, 1.0]
    z[1, :] = np.nan
    z[2, :] = 1e30 if dtype == "float64" else 3e38
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, size=200)]
    kept = z.copy(), y.copy()
    with np.errstate(all="ignore"):
        want_a = K.softmax_forward(z, xp=PLAIN_NUMPY)
        got_a = K.softmax_forward(z, xp=nb.get_backend("numpy").xp)
        assert got_a.tobytes() == want_a.tobytes() and got_a.dtype == want_a.dtype
        want = K.loss_and_backward("cross_entropy", "softmax", z, want_a, y, reduction,
                                   n_samples, xp=PLAIN_NUMPY)
        got = K.loss_and_backward("cross_entropy", "softmax", z, got_a, y, reduction,
                                  n_samples, xp=nb.get_backend("numpy").xp)
    assert np.asarray(got[0]).tobytes() == np.asarray(want[0]).tobytes()
    assert got[1].tobytes() == want[1].tobytes()
    np.testing.assert_array_equal(z, kept[0])
    np.testing.assert_array_equal(y, kept[1])


def test_the_bias_form_leaves_what_it_does_not_own_alone():
    """Mixed dtypes and views that are not C-contiguous get a new array, the
    input unchanged; a chunk's own product is written in place."""
    bias_sigmoid = _numpy_fused()["bias_sigmoid"]
    rng = np.random.default_rng(13)
    xw = rng.normal(size=(4096, 64)).astype(np.float32)
    b64 = rng.normal(size=64)
    kept = xw.copy()
    z, _ = bias_sigmoid(xw, b64, -80.0)
    assert z.dtype == np.float64 and np.array_equal(xw, kept)
    view = xw[:, ::2]
    z, _ = bias_sigmoid(view, b64[:32].astype(np.float32), -80.0)
    assert np.array_equal(xw, kept) and z.tobytes() == (view + b64[:32].astype(np.float32)).tobytes()
    z, _ = bias_sigmoid(xw, b64.astype(np.float32), -80.0)
    assert z is xw  # the chunk's fresh product, reused


def test_a_repeated_bias_is_reused_only_for_the_same_bias():
    """The chunks of one batch share the repeated bias; a bias written in
    place, or the next step's, must get its own (never an old one's sums),
    and the cache stays bounded."""
    from nnbackend.backends import numpy as numpy_backend

    bias_sigmoid = _numpy_fused()["bias_sigmoid"]
    rng = np.random.default_rng(17)
    xw = rng.normal(size=(4096, 32)).astype(np.float32)
    b = rng.normal(size=32).astype(np.float32)
    for _ in range(3):
        z, _ = bias_sigmoid(xw.copy(), b, -80.0)
        assert z.tobytes() == (xw + b).tobytes()
        b += np.float32(0.25)  # in place: the same object, new values
    assert 1 <= len(numpy_backend._REPEATED) <= numpy_backend._REPEATED_MAX
    repeated = next(iter(numpy_backend._REPEATED.values()))
    assert not repeated.flags.writeable
    for i in range(numpy_backend._REPEATED_MAX + 5):
        bias_sigmoid(xw.copy(), b + np.float32(i), -80.0)
    assert len(numpy_backend._REPEATED) <= numpy_backend._REPEATED_MAX


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4096, 32), (1100, 32), (5000, 7), (300, 2048), (2000, 600),
                                   (4096, 1), (64, 64), (9, 5)])
def test_the_sigmoid_without_z_is_bias_sigmoids_a(dtype, shape):
    """A hidden layer's chunk makes -z as (-b) - xw in one pass: every number
    must be bias_sigmoid's a, bit for bit, where the floor applies, at an
    exact zero (z = +0 there, -z = +0 here) and at infinities. A NaN stays
    a NaN (its sign bit may differ: it carries nothing)."""
    fused = _numpy_fused()
    rng = np.random.default_rng(15)
    xw = (rng.normal(size=shape) * 40).astype(dtype)
    b = rng.normal(size=shape[1]).astype(dtype)
    xw[0] = -b  # z = 0 exactly
    specials = [np.nan, np.inf, -np.inf, -1e4, 95.0, -79.9, -80.1, -0.0]
    xw.flat[shape[1]:shape[1] + len(specials)] = specials[:xw.size - shape[1]]
    want = fused["bias_sigmoid"](xw.copy(), b, -80.0)[1]
    got = fused["bias_sigmoid_no_z"](xw.copy(), b, -80.0)
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan) and nan.any() == (xw.size > shape[1])
    assert got[~nan].tobytes() == want[~nan].tobytes()
    # Nothing it does not own is written: a view, a read-only array.
    kept = xw.copy()
    view = xw[:, ::2]
    got = fused["bias_sigmoid_no_z"](view, b[::2].copy(), -80.0)
    np.testing.assert_array_equal(xw, kept)
    xw.flags.writeable = False
    fused["bias_sigmoid_no_z"](xw, b, -80.0)
    np.testing.assert_array_equal(xw, kept)


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "identity"])
def test_a_hidden_layer_drops_z_only_where_its_gradient_never_reads_it(hidden):
    """bind_hidden_layer gives None for z only with NumPy's sigmoid (its
    gradient takes a); a, and z elsewhere, are bind_dense_activation's."""
    from nnbackend import bound

    xp = nb.get_backend("numpy").xp
    rng = np.random.default_rng(16)
    x, W_, b = (rng.normal(size=s).astype(np.float32) for s in [(4096, 16), (16, 32), (32,)])
    z_want, a_want = bound.bind_dense_activation(hidden, xp, np.float32)(x, W_, b)
    forward, backward = bound.bind_hidden_layer(hidden, xp, np.float32)
    z, a = forward(x, W_, b)
    assert a.tobytes() == a_want.tobytes()
    drops = hidden == "sigmoid" and _numpy_namespace_is_native()
    assert (z is None) == drops
    if not drops:
        assert z.tobytes() == z_want.tobytes()
    da = rng.normal(size=a.shape).astype(np.float32)
    want_dz = K.activation(hidden)[1](z_want, a_want, da, xp=PLAIN_NUMPY)
    assert backward(z, a, da).tobytes() == want_dz.tobytes()
    # A namespace without the form keeps z.
    z, _ = bound.bind_hidden_layer(hidden, PLAIN_NUMPY, np.float32)[0](x, W_, b)
    assert z.tobytes() == z_want.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (64, 1), (4096, 3)])
def test_the_binary_count_form_is_the_kernels_count(dtype, shape, monkeypatch):
    """Correct predictions of sigmoid outputs, counted once as an integer:
    the same number, of the same type, as the kernels' formula (0.5 itself,
    NaN and soft targets included), and the formula itself where a count
    might not be exact in the dtype."""
    from nnbackend.backends import numpy as numpy_backend

    count = _numpy_fused()["n_correct_binary"]
    rng = np.random.default_rng(14)
    a = rng.uniform(size=shape).astype(dtype)
    y = rng.choice([0.0, 1.0, 0.5, 0.7], size=shape).astype(dtype)
    a.flat[0] = 0.5
    if a.size > 2:
        a.flat[1], y.flat[2] = np.nan, np.nan
    want = K.n_correct(a, y, False, xp=PLAIN_NUMPY)
    got = count(a, y)
    assert type(got) is type(want) and got == want
    monkeypatch.setitem(numpy_backend._COUNT_CONSTS, np.dtype(dtype),
                        (np.asarray(0.5, dtype=dtype), a.size))  # "not exact from a.size on"
    got = count(a, y)
    assert type(got) is type(want) and got == want


def test_the_step_pieces_script_times_every_piece():
    """benchmarks/numpy_step_pieces.py (the closing note's table of where a
    step's microseconds go) runs against the library as it is."""
    from conftest import load_script

    module = load_script("numpy_step_pieces")
    for rows in (1, 64):
        table = module.pieces(rows, number=3)
        assert len(table) == 12 and all(us > 0 for _, us in table)
    if not _numpy_namespace_is_native():
        pytest.skip("the batch pieces time NumPy's own forms (NumPy >= 2.1)")
    table = module.chunk_pieces(n_samples=9000, chunk_rows=4096, epochs=1)
    assert [name for name, _ in table] == module.CHUNK_PIECES + ["epoch"]
    assert all(ms > 0 for _, ms in table)
    assert sum(ms for _, ms in table[:-1]) <= table[-1][1]


def test_the_before_after_script_finds_the_same_bits_at_head():
    """benchmarks/before_after.py imports the package at a git revision beside
    the working tree and alternates their epochs: against HEAD it must run
    both and, where the package is as committed, find the same loss."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs git and a git checkout (the script extracts a revision)")
    committed = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--",
                                "nnbackend"]).returncode == 0
    from conftest import child_pythonpath

    env = {**os.environ, "PYTHONPATH": child_pythonpath(root)}
    run = subprocess.run([sys.executable, str(root / "benchmarks" / "before_after.py"), "HEAD",
                          "--n", "300", "--rounds", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert "before median" in run.stdout and "after/before" in run.stdout, run.stderr
    if committed:
        assert run.returncode == 0, run.stdout + run.stderr
        assert "the same before and after" in run.stdout
