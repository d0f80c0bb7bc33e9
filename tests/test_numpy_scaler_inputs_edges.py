"""NumPy's namespace and fused forms, the flat Adam update, the scaler, the
model's input checks and the task rules, at their edges.

Each test pins one behaviour that a plausible slip in that code changes
without failing the other tests (a second mutation audit, of
backends/numpy.py, backends/numpy_optim.py, scaling.py, model_inputs.py and
tasks.py, found them).
"""

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.scaling import StandardScaler
from nnbackend.tasks import MANY_CLASSES, encode_labels, infer_task, text_labels


def _native_numpy():
    """nnbackend's own NumPy namespace (NumPy >= 2.1), else skip."""
    from nnbackend.backends.numpy import numpy_namespace

    xp = numpy_namespace()
    if xp.__name__ != "nnbackend.numpy":
        pytest.skip("NumPy < 2.1 goes through array-api-compat: no own namespace")
    return xp


def _fused():
    return _native_numpy().nnbackend_fused


def _same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


# -- backends/numpy.py: the namespace's sum and matmul ---------------------------------

@pytest.mark.parametrize("shapes", [((2, 3), (4, 3, 5)), ((4, 2, 3), (3, 5)),
                                    ((3,), (3, 5)), ((2, 3), (3,)), ((2, 3), (3, 4))],
                         ids=["2d@3d", "3d@2d", "1d@2d", "2d@1d", "2d@2d"])
def test_the_namespaces_matmul_is_numpys_matmul_for_every_rank(shapes):
    """np.dot stands in for matmul only for two 2-D operands: a 2-D by 3-D
    product is a stack of products (B, n, m), not np.dot's (n, B, m)."""
    xp = _native_numpy()
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=s) for s in shapes)
    got = xp.matmul(a, b)
    want = np.matmul(a, b)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_the_namespaces_sum_honours_its_dtype_argument(dtype):
    """The faster float sum is taken only without a dtype: ``sum(x, dtype=float64)``
    of float32 data is summed (and returned) in float64, as the standard says
    (the scaler's wide statistics rely on it)."""
    xp = _native_numpy()
    x = (np.arange(12).reshape(4, 3) % 3).astype(dtype)
    if dtype == "float32":
        x = np.full((3000, 2), 0.1, dtype=np.float32)  # a float32 sum drifts
    for axis in (None, 0):
        for keepdims in (False, True):
            got = xp.sum(x, axis=axis, dtype=xp.float64, keepdims=keepdims)
            want = np.sum(x, axis=axis, dtype=np.float64, keepdims=keepdims)
            _same(got, want)


# -- backends/numpy.py: the fused forms outside their fast paths -----------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 3), (3,), (7, 5)])
def test_relu_of_negative_zero_is_positive_zero_for_every_shape(dtype, shape):
    """``where(z > 0, z, 0)`` gives +0 at -0; NumPy's fmax returns -0 there
    for some shapes and dtypes (small float64 arrays), which the ``+ 0`` turns
    into +0."""
    relu = _fused()["relu"]
    z = np.full(shape, -0.0, dtype=dtype)
    a = relu(z)
    assert a.dtype == z.dtype and a.shape == z.shape
    assert not np.signbit(a).any()
    _same(a, np.where(z > 0, z, np.zeros_like(z)))


def test_the_fused_forms_take_the_formula_for_whole_numbers_and_mixed_dtypes():
    """'Anything but floating arrays of one dtype takes the formula with Python
    numbers': each fused form's fallback is that form's formula (count, floor,
    axis and the gradient at 0 included)."""
    f = _fused()
    rng = np.random.default_rng(1)
    a32 = rng.uniform(0.05, 0.95, size=(4, 3)).astype(np.float32)
    d64 = rng.normal(size=(4, 3))
    y64 = rng.uniform(size=(4, 3))
    # sigmoid of whole numbers, one below the floor
    z_int = np.array([[-1000, -2, 0], [1, 3, 50]])
    _same(f["sigmoid"](z_int, -80.0), 1 / (1 + np.exp(-np.maximum(z_int, -80.0))))
    assert f["sigmoid"](z_int, -80.0)[0, 0] > 0
    # gradients with da of another dtype
    _same(f["sigmoid_backward"](a32, d64), d64 * (a32 * (1 - a32)))
    _same(f["tanh_backward"](a32, d64), d64 * (1 - a32 * a32))
    z32 = np.array([[-1.0, 0.0, 2.0]] * 4, dtype=np.float32)
    got = f["relu_backward"](z32, d64)
    _same(got, np.where(z32 > 0, d64, np.zeros_like(d64)))
    assert (got[:, 1] == 0).all()  # the gradient at 0 is 0
    # losses with targets of another dtype, and a count above 1
    d = a32 - y64
    sq, da = f["mse_sigmoid"](a32, y64, 4)
    _same(sq, d * d)
    _same(da, (d / 4) * (a32 * (1 - a32)))
    z = rng.normal(size=(4, 3)).astype(np.float32)
    m = np.max(z, axis=-1, keepdims=True)
    log_norm = np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
    per_element, grad = f["cross_entropy"](z, a32, y64, 4)
    _same(per_element, y64 * ((m - z) + log_norm))
    _same(grad, (a32 - y64) / 4)
    # whole numbers: softmax row by row, half the sum of squares
    zi = np.array([[1, 2, 3], [0, 0, 5]])
    e = np.exp(zi - np.max(zi, axis=-1, keepdims=True))
    _same(f["softmax"](zi), e / np.sum(e, axis=-1, keepdims=True))
    np.testing.assert_allclose(np.sum(f["softmax"](zi), axis=-1), 1.0)
    sq_int = np.array([[1, 4], [9, 16]])
    assert f["half_sum"](sq_int) == 15.0


def test_the_in_place_sigmoid_gradient_broadcasts_as_the_formula_does():
    """A large ``a`` with a ``da`` of another shape (broadcast against it) takes
    the formula, not the in-place form (whose buffer is ``a``'s shape)."""
    f = _fused()
    rng = np.random.default_rng(2)
    a = rng.uniform(size=(1, 4096)).astype(np.float32)
    da = rng.normal(size=(2, 4096)).astype(np.float32)
    _same(f["sigmoid_backward"](a, da), da * (a * (np.float32(1) - a)))


# -- backends/numpy_optim.py: the layout table and the generic fallback ------------------

def test_the_layout_table_evicts_dead_layouts_before_live_ones():
    """With dead and live layouts in a full table, the dead go first: the
    current step's views stay found, so the next step takes them without a copy."""
    from nnbackend.backends import numpy_optim as no

    rng = np.random.default_rng(4)
    shapes = [(5, 4), (4,), (4, 3), (3,)]
    params = [rng.normal(size=s) for s in shapes]
    grads = [rng.normal(size=s) for s in shapes]
    mu, nu = [0 * p for p in params], [0 * p for p in params]
    kept = []
    for _ in range(no._MAX_LAYOUTS):
        params, mu, nu = no.adam_update(params, grads, mu, nu, 0.9, 0.999, 0.01, 1e-8)
        kept.append((params, mu, nu))
    del kept[:-1]  # most of the table's layouts die
    for _ in range(no._MAX_LAYOUTS):
        params, mu, nu = no.adam_update(params, grads, mu, nu, 0.9, 0.999, 0.01, 1e-8)
        kept.append((params, mu, nu))
        for arrays in (params, mu, nu):
            assert no._flat(arrays) is arrays[0].base
    assert len(no._LAYOUTS) <= no._MAX_LAYOUTS


def test_adam_on_whole_number_arrays_takes_the_generic_formulas():
    """Only floating arrays of one dtype go flat (in-place float arithmetic on
    an integer buffer would fail); whole numbers get the generic formulas."""
    from nnbackend.backends import numpy_optim as no

    params = [np.array([[1, 2], [3, 4]]), np.array([5, 6])]
    grads = [np.array([[1, -1], [2, 0]]), np.array([3, -2])]
    mu, nu = [0 * p for p in params], [0 * p for p in params]
    b1, b2, step, eps = 0.9, 0.999, 0.01, 1e-8
    new_params, new_mu, new_nu = no.adam_update(params, grads, mu, nu, b1, b2, step, eps)
    for p, g, m0, v0, p1, m1, v1 in zip(params, grads, mu, nu, new_params, new_mu, new_nu):
        m = b1 * m0 + (1 - b1) * g
        v = b2 * v0 + (1 - b2) * (g * g)
        _same(m1, m)
        _same(v1, v)
        _same(p1, p - step * m / (np.sqrt(v) + eps))


# -- scaling.py ------------------------------------------------------------------------

def test_a_scaler_of_no_columns_is_refused():
    """mean and scale must be non-empty: a scaler of 0 columns (a hand-made one,
    or a checkpoint's empty lists) is refused, not kept."""
    with pytest.raises(ValueError, match="non-empty"):
        StandardScaler(mean=[], scale=[])
    with pytest.raises(ValueError, match="non-empty"):
        StandardScaler.from_dict({"mean": [], "scale": []})


def test_a_scaler_dict_with_other_keys_is_refused():
    """from_dict takes exactly 'mean' and 'scale': another key is a sign of some
    other dict, refused by name rather than read."""
    with pytest.raises(ValueError, match="a scaler is a dict with 'mean' and 'scale'"):
        StandardScaler.from_dict({"mean": [0.0], "scale": [1.0], "extra": 1})


def test_whole_numbers_with_a_large_offset_keep_their_spread_on_the_host():
    """Whole numbers are judged at float64's resolution by fit_host (as fit does,
    in float64): 1e9 ± 5 in int32 has scale 5, not float32's 'constant' 1."""
    X = np.array([[10**9 - 5], [10**9 + 5]] * 10, dtype=np.int32)
    host = StandardScaler().fit_host(X)
    device = StandardScaler().fit(X)
    np.testing.assert_allclose(host.scale_, [5.0])
    np.testing.assert_allclose(device.scale_, [5.0])
    np.testing.assert_allclose(host.mean_, [1e9])


@pytest.mark.parametrize("method", ["fit", "fit_host"])
def test_a_spread_exactly_at_the_resolution_counts_as_constant(method):
    """'Within resolution of its mean' includes the bound: 2 ± 2**-47 in float64
    (std exactly 16·eps·|mean|) is a constant column, scale 1."""
    X = np.array([[2 - 2.0 ** -47], [2 + 2.0 ** -47]])
    scaler = getattr(StandardScaler(), method)(X)
    assert scaler.mean_[0] == 2.0
    assert scaler.scale_[0] == 1.0


def test_the_host_statistics_take_data_wider_than_a_row_block():
    """_row_blocks gives at least one row: a row of more than 2**20 columns
    (over 8 MiB of float64) is still one block, not a step of 0 rows."""
    n_cols = (1 << 20) + 8
    X = np.zeros((2, n_cols), dtype=np.float32)
    X[1, :] = 2.0
    scaler = StandardScaler().fit_host(X)
    assert scaler.n_features_in_ == n_cols
    assert scaler.mean_[0] == 1.0 and scaler.scale_[-1] == 1.0
    out = scaler.transform_host(X, np.dtype(np.float32))
    assert out.shape == X.shape and out[0, 0] == -1.0 and out[1, -1] == 1.0


@pytest.mark.parametrize("method", ["transform", "transform_host", "inverse_transform"])
def test_no_rows_are_transformed_to_no_rows(method):
    """Only fitting needs a row: transforming an empty (0, k) batch gives an
    empty (0, k) result."""
    scaler = StandardScaler(mean=[1.0, 2.0], scale=[2.0, 4.0])
    out = getattr(scaler, method)(np.zeros((0, 2)))
    assert out.shape == (0, 2)


def test_float32_statistics_on_a_backend_are_exact_for_one_row_and_near_an_offset():
    """The wide statistics shift the data by their mean (sum / n): one row is
    that row (scale 1), and 1e5 + small steps keep their float64 spread."""
    numpy_backend = nb.get_backend("numpy")
    one = np.array([[1.5, -3.0, 1e5]], dtype=np.float32)
    scaler = StandardScaler().fit(one, backend=numpy_backend)
    np.testing.assert_array_equal(scaler.mean_, one[0].astype(np.float64))
    np.testing.assert_array_equal(scaler.scale_, [1.0, 1.0, 1.0])
    steps = np.array([0, 5, 17, 33, 40, 63, 2, 9], dtype=np.float64).reshape(-1, 1)
    X = (1e5 + steps / 128).astype(np.float32)  # exact in float32, spread ~0.17
    got = StandardScaler().fit(X, backend=numpy_backend)
    want = StandardScaler().fit_host(X)
    np.testing.assert_allclose(got.mean_, want.mean_, rtol=1e-12)
    assert want.scale_[0] != 1.0  # a spread, not a constant column
    np.testing.assert_allclose(got.scale_, want.scale_, rtol=1e-6)


def test_more_than_five_overflowing_columns_are_named_with_an_ellipsis():
    """The message names the first five columns whose spread overflows and says
    there are more ('...') when there are six or more."""
    X = np.array([[1e308] * 6, [-1e308] * 6])
    with pytest.raises(ValueError, match=r"column\(s\) 0, 1, 2, 3, 4, \.\.\. are too large"):
        StandardScaler().fit(X)


# -- model_inputs.py ---------------------------------------------------------------------

def _pairs(rng, dtype=np.float64):
    return [(rng.normal(size=(3, 4)).astype(dtype), np.zeros(4, dtype)),
            (rng.normal(size=(4, 1)).astype(dtype), np.zeros(1, dtype))]


def _regression(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * 100 + 1e3
    y = X @ [0.01, -0.02, 0.005] + rng.normal(size=n)
    return X, y


def test_params_may_be_a_tuple_of_pairs():
    """params is 'a list of (W, b) pairs'; a tuple of pairs is taken as one."""
    rng = np.random.default_rng(0)
    pairs = _pairs(rng)
    model = nb.MLP([3, 4, 1], params=tuple(pairs), dtype="float64")
    for (W, b), (W2, b2) in zip(pairs, model.params):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


@pytest.mark.parametrize("params, match", [
    (lambda p: [p[0] + (np.zeros(4),), p[1]], r"^params\[0\] must be a \(W, b\) pair$"),
    (lambda p: [(), ()], r"^params\[0\] must be a \(W, b\) pair$"),
    (lambda p: [], r"^params must hold 2 \(W, b\) pairs for layer_sizes \[3, 4, 1\]; got 0$"),
], ids=["three-items", "empty-pairs", "no-pairs"])
def test_params_that_are_not_pairs_are_refused_by_name(params, match):
    """A 'pair' of three items, empty pairs or no pairs at all are refused with
    the checks' own message (first_param passes them on), not an unpacking or
    index error."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        nb.MLP([3, 4, 1], params=params(_pairs(rng)))


def test_bool_params_are_taken_as_zeros_and_ones():
    """Bools are real numbers to the parameter checks (as to the scaler): a bool
    W becomes 0.0 / 1.0 in the model's dtype."""
    W = np.array([[True, False, True, False]] * 3)
    params = [(W, np.zeros(4, bool)), (np.ones((4, 1), bool), np.zeros(1, bool))]
    model = nb.MLP([3, 4, 1], params=params, dtype="float32")
    got = model.params[0][0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, W.astype(np.float32))


def test_nan_in_host_params_is_named_without_a_dtype():
    """NaN given on the host is the caller's, named as such; '(in dtype ...)' is
    kept for values that only the cast to the model's dtype made infinite."""
    rng = np.random.default_rng(0)
    params = _pairs(rng)
    params[1][0][2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^params\[1\] W contains NaN or infinity$"):
        nb.MLP([3, 4, 1], params=params, dtype="float32")
    params = _pairs(rng)
    params[0][0][0, 0] = 1e300  # finite in float64, infinity in float32
    with np.errstate(over="ignore"), \
            pytest.raises(ValueError, match=r"^params\[0\] W contains NaN or infinity "
                                            r"\(in dtype float32\)$"):
        nb.MLP([3, 4, 1], params=params, dtype="float32")


def test_the_model_copies_the_params_it_is_given(backend):
    """'The model never shares (and so never changes) the caller's arrays': each
    parameter is a new array, even where dtype and device already match."""
    rng = np.random.default_rng(0)
    given = [(backend.asarray(W, dtype=backend.dtype("float64")),
              backend.asarray(b, dtype=backend.dtype("float64"))) for W, b in _pairs(rng)]
    model = nb.MLP([3, 4, 1], params=given, dtype="float64", backend=backend.name,
                   device=backend.device)
    for pair, model_pair in zip(given, model.params):
        for a, mine in zip(pair, model_pair):
            assert mine is not a
            if isinstance(a, np.ndarray) and isinstance(mine, np.ndarray):
                assert not np.shares_memory(a, mine)


def test_float32_features_on_the_device_are_standardized_as_host_ones(backend):
    """A float32 model's device arrays of its own dtype are not prescaled before a
    cast (there is none): they must be scaled after, as the host data were."""
    X, y = _regression()
    model = nb.MLP([3, 4, 1], output_activation="identity", standardize=True, seed=0,
                   dtype="float32", backend=backend.name, device=backend.device)
    model.fit(X, y, epochs=2, lr=0.01)
    X32 = X.astype(np.float32)
    on_device = backend.to_host(model.predict(backend.asarray(X32, dtype=backend.dtype("float32"))))
    on_host = backend.to_host(model.predict(X32))
    np.testing.assert_allclose(np.asarray(on_device, dtype=np.float64),
                               np.asarray(on_host, dtype=np.float64), rtol=1e-4, atol=1e-3)


def test_predicting_on_a_dataframe_learns_no_feature_names():
    """Only a fit learns feature_names_in_: a model fitted on an array and then
    asked to predict a DataFrame keeps None (and a later fit on other columns
    is not refused)."""
    pd = pytest.importorskip("pandas")
    X, y = _regression()
    model = nb.MLP([3, 4, 1], output_activation="identity", standardize=True, seed=0)
    model.fit(X, y, epochs=1)
    model.predict(pd.DataFrame(X, columns=["a", "b", "c"]))
    assert model.feature_names_in_ is None
    model.fit(pd.DataFrame(X, columns=["x", "y", "z"]), y, epochs=1)
    assert list(model.feature_names_in_) == ["x", "y", "z"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_evaluating_an_unfitted_model_learns_no_scaler(dtype):
    """Only a fit learns the scalers: evaluate on a standardize=True model built
    from params (never fitted) scales nothing and keeps no scaler, so its loss
    is that of the same params without standardizing."""
    X, y = _regression()
    rng = np.random.default_rng(1)
    params = _pairs(rng)
    model = nb.MLP([3, 4, 1], output_activation="identity", standardize=True,
                   params=params, dtype=dtype)
    plain = nb.MLP([3, 4, 1], output_activation="identity", params=params, dtype=dtype)
    got = model.evaluate(X, y)["loss"]
    assert model.target_scaler is None and model.feature_scaler is None
    assert got == plain.evaluate(X, y)["loss"]


def test_a_float64_models_scalers_are_kept_by_later_fits():
    """A later fit keeps the scalers the first one learned (the weights are
    fitted to them), for a float64 model too, which scales after the cast."""
    X, y = _regression()
    model = nb.MLP([3, 4, 1], output_activation="identity", standardize=True, seed=0,
                   dtype="float64")
    model.fit(X, y, epochs=1)
    features = model.feature_scaler.to_dict()
    targets = model.target_scaler.to_dict()
    model.fit(2 * X + 5, 3 * y - 1, epochs=1)
    assert model.feature_scaler.to_dict() == features
    assert model.target_scaler.to_dict() == targets


# -- tasks.py --------------------------------------------------------------------------

def test_bytes_labels_are_classes():
    """Bytes labels (NumPy 'S') are whole labels, not numbers to round: two
    distinct ones are a binary task with the bytes as classes."""
    task = infer_task(np.array([b"no", b"yes", b"no"]))
    assert task["kind"] == "binary" and task["classes"] == [b"no", b"yes"]


def test_a_word_in_2d_text_targets_is_placed_by_row():
    """The row named for the first word in 2-D text targets counts rows, not
    elements: ['3', 'x'] is row 1 (element 3)."""
    y = np.array([["1", "2"], ["3", "x"]])
    with pytest.raises(ValueError, match="is in row 1, counting from 0"):
        infer_task(y, task="regression")


def test_labels_with_no_columns_are_empty():
    """y of shape (n, 0) holds no label: refused as empty, not by an index error."""
    with pytest.raises(ValueError, match="^y is empty$"):
        infer_task(np.zeros((3, 0)))


def test_exactly_many_classes_stay_classes():
    """Whole numbers become a quantity only with *more than* MANY_CLASSES
    distinct values: exactly MANY_CLASSES, each a large share of the rows,
    are still classes."""
    y = np.arange(5 * MANY_CLASSES) % MANY_CLASSES
    task = infer_task(y)
    assert task["kind"] == "multiclass" and task["n_outputs"] == MANY_CLASSES
    assert infer_task(np.arange(5 * (MANY_CLASSES + 1)) % (MANY_CLASSES + 1))["kind"] == \
        "regression"


def test_bool_labels_report_int_classes():
    """Bools are class ids reported as ints (0, 1), as whole-valued floats are,
    not as False/True."""
    task = infer_task(np.array([True, False, True]))
    assert task["classes"] == [0, 1]
    assert all(type(c) is int for c in task["classes"])


def test_no_classes_are_refused_by_name():
    """encode_labels needs at least one class: an empty list is refused with
    its message, not an index error."""
    with pytest.raises(ValueError, match="classes must be a non-empty sequence"):
        encode_labels([1, 2], [])


def test_object_arrays_of_bytes_are_text_labels():
    """An object array of bytes (alone or with str) is text: decoded as ASCII,
    'a' not "b'a'"."""
    for y in (np.array([b"a", b"b"], dtype=object), np.array([b"a", "b"], dtype=object)):
        got = text_labels(y)
        assert got is not None and got.tolist() == ["a", "b"]


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_non_whole_floats_cannot_be_made_classes(task):
    """A task overrides the rules only where the labels allow it: non-whole
    floats are no classes, for 'multiclass' as for 'binary'."""
    with pytest.raises(ValueError, match="look like a regression task"):
        infer_task([0.5, 1.5, 2.5], task=task)
