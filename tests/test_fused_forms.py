"""The namespaces' fast forms of the kernels' chains and reductions.

CuPy's fused kernels (``nnbackend.backends.cupy.elementwise``) cannot run
without a GPU, but their bodies are written to be Python too: here each runs
with NumPy arrays (its "NumPy twin") inside a namespace that offers them as
``nnbackend_fused``, through the same Python-side table CuPy's namespace
uses, and must give the generic kernels' results bit for bit (the same
formula, in the same order). The row sum by matmul, CuPy's form of
``sum(axis=0)``, runs on every CPU namespace and must equal the plain sum to
rounding. The last test runs the real CuPy kernels against the generic
kernels on CuPy arrays, where a GPU is present.
"""

import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import data
from nnbackend import kernels as K
from nnbackend import network
from nnbackend.backends.cupy.elementwise import KERNELS, RowSums, fused_table, sum_rows_by_matmul

# The C helpers and math functions of the bodies, as NumPy spells them.
NUMPY_TWINS = {"nnb_where": np.where, "nnb_max": np.maximum, "nnb_abs": np.abs,
               "exp": np.exp, "log1p": np.log1p, "tanh": np.tanh}


def _names(params):
    return [p.split()[-1] for p in params.split(",")]


def numpy_kernel(name, inputs, outputs, body):
    """A kernel body of :data:`KERNELS` run with NumPy arrays, as an ElementwiseKernel would."""
    code = compile(body, f"<{name}>", "exec")
    ins, outs = _names(inputs), _names(outputs)

    def run(*args):
        assert len(args) == len(ins), f"{name} takes {ins}, got {len(args)} arguments"
        dtypes = {np.asarray(a).dtype for a in args}
        # ElementwiseKernel's T is one type for every argument.
        assert len(dtypes) == 1, f"{name}: arguments of several dtypes {dtypes}"
        scope = dict(NUMPY_TWINS, T=dtypes.pop().type, **dict(zip(ins, args)))
        exec(code, scope)
        result = tuple(np.asarray(scope[o]) for o in outs)
        return result if len(result) > 1 else result[0]

    return run


def twin_namespace(base, record=None, row_sums=False):
    """``base`` with CuPy's fused table, its kernels run as NumPy twins.

    ``row_sums`` False leaves ``sum_rows`` out (the one entry that sums in
    another order), so that results stay bit for bit comparable.
    """
    table = fused_table(numpy_kernel, base)
    if not row_sums:
        del table["sum_rows"]
    if record is not None:
        table = {name: _recorded(name, fn, record) for name, fn in table.items()}
    xp = types.ModuleType("twin_numpy")
    xp.__dict__.update({k: v for k, v in vars(base).items() if not k.startswith("__")})
    xp.nnbackend_fused = table
    return xp


def _recorded(name, fn, record):
    def wrapped(*args):
        record.append(name)
        return fn(*args)
    return wrapped


def _data(rng, dtype, n=7, fan_in=4, fan_out=5):
    x = rng.normal(size=(n, fan_in)).astype(dtype)
    W = rng.normal(size=(fan_in, fan_out)).astype(dtype)
    b = rng.normal(size=(fan_out,)).astype(dtype)
    # Huge, tiny, zero and NaN pre-activations: the floor, relu's 0 and NaN's way through.
    z = (rng.normal(size=(n, fan_out)) * 30).astype(dtype)
    z[0, :4] = [0.0, -1e6, 1e6, np.nan]
    return x, W, b, z


NUMPY = nb.get_backend("numpy").xp


def _activations_agree(names, xp, plain, x, W, b, z, da, same):
    """Each activation's dense forward, forward and backward through ``xp``
    (with fused forms) against ``plain``; ``same(got, want)`` asserts."""
    for name in names:
        got = K.dense_activation_forward(x, W, b, name, xp=xp)
        want = K.dense_activation_forward(x, W, b, name, xp=plain)
        same(got[0], want[0])
        same(got[1], want[1])
        fwd, bwd = K.activation(name)
        a = fwd(z, xp=plain)
        same(fwd(z, xp=xp), a)
        same(bwd(z, a, da, xp=xp), bwd(z, a, da, xp=plain))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_fused_body_is_the_generic_formula(dtype):
    rng = np.random.default_rng(3)
    calls = []
    xp = twin_namespace(NUMPY, calls)
    x, W, b, z = _data(rng, dtype)
    da = rng.normal(size=z.shape).astype(dtype)
    y = rng.uniform(0, 1, size=z.shape).astype(dtype)
    same = np.testing.assert_array_equal

    _activations_agree(("sigmoid", "tanh", "relu", "identity"), xp, NUMPY, x, W, b, z, da, same)

    for output, loss in (("sigmoid", "mse"), ("identity", "mse"), ("softmax", "mse"),
                         ("sigmoid", "bce"), ("softmax", "cross_entropy")):
        a = K.activation_forward(output, z, xp=NUMPY)
        for reduction, n_samples in (("mean", None), ("mean", 1000), ("sum", None)):
            got = K.loss_and_backward(loss, output, z, a, y, reduction, n_samples, xp=xp)
            want = K.loss_and_backward(loss, output, z, a, y, reduction, n_samples, xp=NUMPY)
            same(got[0], want[0])
            same(got[1], want[1])
            if loss != "mse":
                same(K.loss_backward(loss, output, z, a, y, reduction, n_samples, xp=xp),
                     K.loss_backward(loss, output, z, a, y, reduction, n_samples, xp=NUMPY))
    # Every kernel of CuPy's table was reached through the kernels' dispatch.
    assert set(calls) == set(KERNELS)


@pytest.mark.parametrize("hidden,output,loss", [("sigmoid", "sigmoid", "mse"),
                                                ("relu", "softmax", "cross_entropy"),
                                                ("tanh", "sigmoid", "bce"),
                                                ("relu", "identity", "mse")])
def test_a_network_step_through_the_fused_table_is_the_generic_one(hidden, output, loss):
    # The batch path (network.loss_and_grads_rows) with CuPy's table, as twins.
    rng = np.random.default_rng(5)
    sizes, n = [4, 6, 5, 3], 40
    params = [p.astype(np.float32) for p in data.init_params(sizes, hidden, rng)]
    params = [p + np.float32(0.1) if p.ndim == 1 else p for p in params]
    X = rng.normal(size=(n, sizes[0])).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    spec = network.NetSpec(hidden, output, loss, "mean")
    calls = []
    xp = twin_namespace(NUMPY, calls)
    rows = network.slice_rows(X, Y)
    multiclass = network.multiclass_of(spec)
    got = network.loss_and_grads_rows(params, spec, rows, n, 16, multiclass, xp)
    want = network.loss_and_grads_rows(params, spec, rows, n, 16, multiclass, NUMPY)
    np.testing.assert_array_equal(got[0], want[0])
    for g, w in zip(got[1], want[1]):
        np.testing.assert_array_equal(g, w)
    if multiclass is not None:
        np.testing.assert_array_equal(got[2], want[2])
    assert {"bias_" + hidden, hidden + "_backward"} <= set(calls)
    assert ("bias_sigmoid" in calls) == (output == "sigmoid" or hidden == "sigmoid")
    # With the row sum by matmul too: equal to rounding.
    xp = twin_namespace(NUMPY, row_sums=True)
    near = network.loss_and_grads_rows(params, spec, rows, n, 16, multiclass, xp)
    for g, w in zip(near[1], want[1]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_the_twin_refuses_mixed_dtypes_as_a_cupy_kernel_would():
    run = numpy_kernel("sigmoid_backward", *KERNELS["sigmoid_backward"])
    with pytest.raises(AssertionError, match="several dtypes"):
        run(np.ones(3, np.float32), np.ones(3))


def test_mixed_dtypes_take_the_generic_formula():
    # The kernels hand a fused form only arrays of one dtype.
    calls = []
    xp = twin_namespace(NUMPY, calls)
    z = np.linspace(-2, 2, 6).reshape(2, 3)
    da = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(K.relu_backward(z, None, da, xp=xp),
                                  K.relu_backward(z, None, da, xp=NUMPY))
    x, W, b = np.ones((2, 2), np.float32), np.ones((2, 3), np.float32), np.ones(3)
    z32, a32 = K.dense_activation_forward(x, W, b, "tanh", xp=xp)
    assert z32.dtype == np.float64 and a32.dtype == np.float64
    assert calls == []


# -- sums over rows ------------------------------------------------------------------


def test_sum_rows_calls_the_namespace_form_and_keeps_numpy_exact():
    rng = np.random.default_rng(1)
    dz = rng.normal(size=(50, 6)).astype(np.float32)
    calls = []
    xp = twin_namespace(NUMPY, calls, row_sums=True)
    _, _, db = K.dense_backward(dz[:, :3], np.ones((3, 6), np.float32), dz, xp=xp)
    assert calls == ["sum_rows"]
    np.testing.assert_allclose(db, dz.astype(np.float64).sum(axis=0), rtol=1e-5)
    # NumPy's own form is np.sum's reduction called directly: np.add.reduce, bit for bit.
    np.testing.assert_array_equal(NUMPY.nnbackend_fused["sum_rows"](dz), np.sum(dz, axis=0))
    np.testing.assert_array_equal(K.sum_rows(dz, xp=NUMPY), np.add.reduce(dz, axis=0))
    np.testing.assert_array_equal(K.sum_rows(dz), np.add.reduce(dz, axis=0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_sum_forms_agree_with_the_plain_sum(backend, dtype):
    if backend.name == "dask":
        pytest.skip("dask's kernels sum NumPy chunks (Backend.asarray makes NumPy arrays), "
                    "as in the numpy case")
    if dtype not in backend.float_dtypes():
        pytest.skip(f"{backend!r} has no {dtype}")
    xp = backend.xp
    rng = np.random.default_rng(2)
    host = rng.normal(size=(300, 7)) * 10
    a = backend.asarray(host, dtype=backend.dtype(dtype))
    want = host.sum(axis=0)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    plain = K.sum_rows(a)
    assert plain.shape == (7,) and plain.dtype == a.dtype
    np.testing.assert_allclose(backend.to_host(plain), want, rtol=rtol, atol=rtol)
    by_matmul = sum_rows_by_matmul(xp, a)
    assert by_matmul.shape == (7,) and by_matmul.dtype == a.dtype
    np.testing.assert_allclose(backend.to_host(by_matmul), backend.to_host(xp.sum(a, axis=0)),
                               rtol=rtol, atol=rtol)
    # The kept row of ones: grown for more rows, its front used for fewer.
    sums = RowSums(xp)
    for n in (300, 20, 300, 1):
        got = backend.to_host(sums(a[:n, :]))
        np.testing.assert_allclose(got, host[:n].sum(axis=0), rtol=rtol, atol=rtol)
    assert len(sums._ones) == 1


# -- on a GPU ------------------------------------------------------------------------


def test_cupy_fused_kernels_equal_the_generic_ones_on_cupy():
    try:
        gpu = nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend cupy unavailable: {exc}")
    import array_api_compat.cupy as plain

    fused = gpu.xp
    rng = np.random.default_rng(4)
    for dtype in ("float32", "float64"):
        x, W, b, z = (gpu.asarray(v) for v in _data(rng, dtype, n=3000))
        da = gpu.asarray(rng.normal(size=z.shape).astype(dtype))
        y = gpu.asarray(rng.uniform(0, 1, size=z.shape).astype(dtype))
        host = gpu.to_host

        def same(got, want):
            # Same operations in the same order, no fused multiply-add: the
            # same bits, NaN where the generic gives NaN.
            np.testing.assert_array_equal(host(got), host(want))

        _activations_agree(("sigmoid", "tanh", "relu"), fused, plain, x, W, b, z, da, same)
        for output, loss in (("sigmoid", "mse"), ("identity", "mse"), ("sigmoid", "bce"),
                             ("softmax", "cross_entropy")):
            a = K.activation_forward(output, z, xp=plain)
            finite = slice(1, None)  # the NaN row aside: the sums would be NaN
            got = K.loss_and_backward(loss, output, z[finite], a[finite], y[finite], xp=fused)
            want = K.loss_and_backward(loss, output, z[finite], a[finite], y[finite], xp=plain)
            np.testing.assert_allclose(host(got[0]), host(want[0]), rtol=1e-6)
            same(got[1], want[1])
        dz = da[1:]
        rtol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(host(K.sum_rows(dz, xp=fused)),
                                   host(plain.sum(dz, axis=0)), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_bound_kernels_take_the_fused_table_as_the_kernels_do(dtype):
    # nnbackend.bound looks the fused forms up once; through CuPy's table (as
    # twins) each bound function must call them and give the kernels' bits.
    from nnbackend import bound

    rng = np.random.default_rng(4)
    calls = []
    xp, dt = twin_namespace(NUMPY, calls), np.dtype(dtype)
    x, W, b, z = _data(rng, dtype)
    da = rng.normal(size=z.shape).astype(dtype)
    y = rng.uniform(0, 1, size=z.shape).astype(dtype)
    same = np.testing.assert_array_equal
    for name in ("sigmoid", "tanh", "relu", "identity"):
        fwd, bwd = K.activation(name)
        a = fwd(z, xp=NUMPY)
        same(bound.bind_activation_forward(name, xp, dt)(z), a)
        same(bound.bind_activation_backward(name, xp, dt)(z, a, da), bwd(z, a, da, xp=NUMPY))
        got = bound.bind_dense_activation(name, xp, dt)(x, W, b)
        want = K.dense_activation_forward(x, W, b, name, xp=NUMPY)
        same(got[0], want[0])
        same(got[1], want[1])
    for output in ("sigmoid", "identity"):
        a = K.activation_forward(output, z, xp=NUMPY)
        for reduction in ("mean", "sum"):
            got = bound.bind_loss_and_backward("mse", output, reduction, xp, dt)(z, a, y, 7)
            want = K.loss_and_backward("mse", output, z, a, y, reduction, 7, xp=NUMPY)
            same(got[0], want[0])
            same(got[1], want[1])
    labels = (y > 0.5).astype(dtype)
    a = K.activation_forward("sigmoid", z, xp=NUMPY)
    same(bound.bind_n_correct(None, xp)(a, labels), K.n_correct(a, labels, None, xp=NUMPY))
    assert {"sigmoid", "relu", "sigmoid_backward", "relu_backward", "tanh_backward",
            "bias_sigmoid", "bias_tanh", "bias_relu", "mse", "mse_sigmoid"} <= set(calls)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_a_bias_of_another_dtype_is_added_by_the_generic_formula(name):
    # NumPy's table fuses bias + activation for one dtype; a float64 bias on
    # float32 data takes the generic z = xW + b (promoted), never the fused form.
    x = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    W = np.ones((3, 2), dtype=np.float32)
    b = np.array([0.25, -0.75])
    z, a = K.dense_activation_forward(x, W, b, name, xp=NUMPY)
    np.testing.assert_array_equal(z, x @ W + b)
    np.testing.assert_array_equal(a, K.activation(name)[0](x @ W + b, xp=NUMPY))
