"""The network's math, the epoch engine, the class labels, the fit's
options and the kernels' namespace forms, at their edges.

Each test pins one behaviour that a plausible slip in that code changes
without failing the other tests (a hand mutation audit of ``network.py``,
``engine.py``, ``classifier.py``, ``training/options.py`` and
``kernel_forms.py`` found them).
"""

import numpy as np
import pytest

import nnbackend as nb
from conftest import to_numpy
from nnbackend import network


def _rows(n, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_features)), rng.normal(size=(n, 1))


# -- network.py: chunk sizes, layer sizes, chunked predictions ---------------------------

@pytest.mark.parametrize("value", [np.int64(7), np.int32(7), 7])
def test_an_integer_chunk_size_of_any_integer_type_comes_back_a_python_int(value):
    # check_chunk_size returns a plain int (its documented "an int >= 1"), not the caller's type.
    got = network.check_chunk_size(value)
    assert got == 7 and type(got) is int


def test_a_layer_list_of_one_size_is_refused_by_name():
    # A network needs at least its input and output sizes; [3] alone is no network.
    with pytest.raises(ValueError, match="layer_sizes must list at least the input and output"):
        nb.MLP([3])


def test_a_softmax_of_one_unit_is_refused():
    # A softmax over one unit is the constant 1: refused when the model is built.
    with pytest.raises(ValueError, match="a softmax output needs at least 2 units"):
        nb.MLP([3, 4, 1], output_activation="softmax", loss="cross_entropy")


@pytest.mark.parametrize("n, chunk_size", [(7, 3), (13, 4), (5, 4)])
def test_predict_in_chunks_keeps_a_last_chunk_of_one_row(backend, n, chunk_size):
    # predict's chunks cover every row, the last one too when it is alone in its chunk.
    if "float64" not in backend.float_dtypes():
        pytest.skip(f"{backend} has no float64")
    X, _ = _rows(n)
    model = nb.MLP([3, 5, 2], hidden_activation="tanh", output_activation="identity",
                   backend=backend.name, device=backend.device, dtype="float64", seed=4)
    whole = to_numpy(backend, model.predict(X, chunk_size=n))
    chunked = to_numpy(backend, model.predict(X, chunk_size=chunk_size))
    assert chunked.shape == (n, 2)
    np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-15)


# -- engine.py: the executor's choice and what it carries -----------------------------------

class _Executor:
    """An executor that supports a fit unless ``why_not``; ``describe`` and
    ``own_matmuls`` only where given."""

    def __init__(self, name, why_not=None, describe=None, own_matmuls=None):
        self.name, self.why_not = name, why_not
        if describe is not None:
            self.describe = describe
        if own_matmuls is not None:
            self.own_matmuls = own_matmuls

    def supports(self, task):
        return self.why_not

    def make_epoch(self, task):
        return f"epoch of {self.name}"


def _task(*executors, names=None):
    from types import SimpleNamespace

    backend = SimpleNamespace(name="fake", no_reference_loop=None,
                              executor_names=names or tuple(e.name for e in executors),
                              executors=lambda: tuple(executors))
    return SimpleNamespace(backend=backend)


def test_own_matmuls_is_false_unless_the_executor_says_so():
    # Choice.own_matmuls is False unless the executor says True (then a fit's precision skips it).
    from nnbackend.engine import choose_executor

    assert choose_executor("auto", _task(_Executor("jax-scan"))).own_matmuls is False
    assert choose_executor("auto", _task(_Executor("jax-scan", own_matmuls=True))).own_matmuls
    assert choose_executor("reference", _task(_Executor("jax-scan"))).own_matmuls is False


def test_a_describing_executor_is_described_anew_after_the_fit():
    # Choice.reason_now asks describe() again (a CUDA graph learns how it ran only when it runs).
    from nnbackend.engine import choose_executor

    said = ["graph pending"]
    choice = choose_executor("auto", _task(_Executor("jax-batch", describe=lambda t: said[0])))
    assert choice.reason.startswith("jax-batch: graph pending; ")
    said[0] = "replayed as a CUDA graph"
    assert choice.reason_now is not None
    assert choice.reason_now().startswith("jax-batch: replayed as a CUDA graph; ")
    assert choose_executor("auto", _task(_Executor("jax-batch"))).reason_now is None


def test_an_executor_the_backend_lists_but_did_not_make_is_refused_by_name():
    # A forced executor the backend names but did not build is refused, not run as the reference.
    from nnbackend.engine import choose_executor

    task = _task(_Executor("jax-batch"), names=("jax-scan", "jax-batch"))
    with pytest.raises(ValueError, match="executor 'jax-scan' is not among the fake backend's "
                                         "executors here"):
        choose_executor("jax-scan", task)
    assert choose_executor("jax-batch", task).name == "jax-batch"


# -- classifier.py: class labels ----------------------------------------------------------

def _softmax3(**kw):
    return nb.MLP([3, 4, 3], output_activation="softmax", loss="cross_entropy",
                  dtype="float64", seed=0, **kw)


def test_classes_with_a_repeated_label_are_refused_even_when_every_class_is_named():
    # classes_ must hold exactly one label per class: ['a', 'b', 'b'] on two classes is refused.
    model = nb.MLP([3, 4, 1], loss="bce")
    with pytest.raises(ValueError, match="classes_ must list 2 distinct labels"):
        model.classes_ = ["a", "b", "b"]
    assert model.classes_ is None


@pytest.mark.parametrize("classes, as_labels", [
    # Numeric classes_ of floats map labels to ids as integer ones do.
    ([0.5, 1.5, 2.5], lambda ids: ids + 0.5),
    # A (n, 1) column of labels is labels, not one-hot rows: it maps to the ids.
    ([1, 2, 3], lambda ids: (ids + 1)[:, None]),
], ids=["float-classes", "a-column-of-labels"])
def test_numeric_labels_map_to_the_ids_evaluate_takes(classes, as_labels):
    rng = np.random.default_rng(0)
    X, ids = rng.normal(size=(30, 3)), rng.integers(0, 3, 30)
    model = _softmax3()
    want = model.evaluate(X, ids)
    model.classes_ = classes
    assert model.evaluate(X, as_labels(ids)) == want


def _constant_model(sizes, output, loss, **kw):
    """A model whose weights and biases are all 0: every output is the same."""
    params = [(np.zeros((a, b)), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    return nb.MLP(sizes, output_activation=output, loss=loss, params=params, **kw)


def test_a_tie_between_classes_goes_to_the_first():
    # predict_labels breaks a tie toward the first class; one sigmoid unit at exactly 0.5 says 0.
    X = np.random.default_rng(2).normal(size=(5, 2))
    softmax = _constant_model([2, 3, 3], "softmax", "cross_entropy")
    np.testing.assert_array_equal(softmax.predict_labels(X), [0] * 5)
    softmax.classes_ = ["x", "y", "z"]
    np.testing.assert_array_equal(softmax.predict_labels(X), ["x"] * 5)
    binary = _constant_model([2, 3, 1], "sigmoid", "bce")
    np.testing.assert_array_equal(binary.predict_proba(X), np.full((5, 2), 0.5))
    np.testing.assert_array_equal(binary.predict_labels(X), [0] * 5)


def test_predicted_class_ids_are_int64_on_every_backend(backend):
    # predict_labels gives int64 ids and indicators on the host (JAX's argmax of float32 is int32).
    X = np.random.default_rng(3).normal(size=(6, 3))
    model = nb.MLP([3, 4, 3], output_activation="softmax", loss="cross_entropy", seed=0,
                   dtype="float32", backend=backend.name, device=backend.device)
    labels = model.predict_labels(X)
    assert isinstance(labels, np.ndarray) and labels.dtype == np.int64 and labels.shape == (6,)
    multilabel = nb.MLP([3, 4, 2], seed=0, backend=backend.name, device=backend.device)
    indicators = multilabel.predict_labels(X)
    assert isinstance(indicators, np.ndarray) and indicators.dtype == np.int64
    assert set(np.unique(indicators)) <= {0, 1}


# -- training/options.py: the fit's options, refused before any data moves ----------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mode="full"), ValueError, "unknown mode 'full'; choose one of"),
    (dict(mode="minibatch", batch_size=None), TypeError, "batch_size must be an integer"),
    (dict(min_delta=-0.1), ValueError, "min_delta must be a finite number >= 0, got -0.1"),
    (dict(validation_split=0.0), ValueError,
     "validation_split must be a finite number > 0 and < 1"),
    (dict(validation_split=1.0), ValueError,
     "validation_split must be a finite number > 0 and < 1"),
    (dict(lr_schedule=lambda count: float("inf")), ValueError,
     r"lr_schedule\(0\) must be a finite number >= 0"),
], ids=["mode", "minibatch-without-size", "negative-min_delta", "split-0", "split-1",
        "infinite-schedule"])
def test_fit_options_are_refused_by_the_check_itself(kwargs, error, match):
    # FitOptions.check names each wrong value itself, before the fit's later stages see it.
    from nnbackend.training import FitOptions

    with pytest.raises(error, match=match):
        FitOptions.check(**kwargs)


def test_a_warm_up_schedule_that_starts_at_zero_is_taken():
    # A schedule factor of exactly 0 at step 0 (a linear warm-up) is a number >= 0: accepted.
    from nnbackend.training import FitOptions

    def warm_up(count):
        return min(1.0, count / 10)

    assert FitOptions.check(lr_schedule=warm_up).lr_schedule is warm_up
    X, y = _rows(40)
    model = nb.MLP([3, 4, 1], output_activation="identity", dtype="float64", seed=0)
    hist = model.fit(X, y, mode="batch", epochs=3, lr_schedule=warm_up)
    assert len(hist.loss) == 3 and hist.loss[2] < hist.loss[0]


# -- kernel_forms.py: the namespaces' own forms and registered fixes ----------------------

@pytest.fixture
def forms(monkeypatch):
    """kernel_forms with empty tables of its own (the real ones back after the test)."""
    from nnbackend import kernel_forms

    monkeypatch.setattr(kernel_forms, "_FUSED_TABLES", {})
    monkeypatch.setattr(kernel_forms, "_NAMESPACE_FIXES", {})
    return kernel_forms


def _namespace(name, fused=None):
    import types

    xp = types.ModuleType(name)
    xp.matmul = np.matmul
    if fused is not None:
        xp.nnbackend_fused = fused
    return xp


def test_registered_fixes_join_the_namespaces_own_forms(forms):
    # A namespace's fixes are added to its nnbackend_fused table, not put in its place.
    def sum_rows(a):
        return a.sum(axis=0)

    def matmul(a, b):
        return a @ b

    xp = _namespace("ns_with_both", {"sum_rows": sum_rows})
    forms.register_namespace_fixes("ns_with_both", lambda xp: {"matmul": matmul})
    assert forms.fused_form(xp, "sum_rows") is sum_rows
    assert forms.matmul_form(xp) is matmul


def test_fixes_registered_after_a_namespaces_first_use_reach_it(forms):
    # Registering forgets the tables built before it, so a namespace already seen gets the fix.
    def matmul(a, b):
        return a @ b

    xp = _namespace("ns_seen_early")
    assert forms.matmul_form(xp) is np.matmul
    forms.register_namespace_fixes("ns_seen_early", lambda xp: {"matmul": matmul})
    assert forms.matmul_form(xp) is matmul


def test_registering_again_replaces_the_maker(forms):
    # The second maker registered for a module name is the one used.
    def first(a, b):
        return a @ b

    def second(a, b):
        return a @ b

    xp = _namespace("ns_twice")
    forms.register_namespace_fixes("ns_twice", lambda xp: {"matmul": first})
    forms.register_namespace_fixes("ns_twice", lambda xp: {"matmul": second})
    assert forms.matmul_form(xp) is second


def test_the_fixes_are_made_once_per_namespace(forms):
    # make_fixes runs at the namespace's first use only; later look-ups use the kept table.
    made = []

    def make_fixes(xp):
        made.append(xp)
        return {"matmul": np.matmul}

    xp = _namespace("ns_once", {"sum_rows": np.sum})
    forms.register_namespace_fixes("ns_once", make_fixes)
    for _ in range(3):
        assert forms.matmul_form(xp) is np.matmul
        assert forms.fused_form(xp, "sum_rows") is np.sum
        assert forms.fused_form(xp, "softmax") is None
    assert made == [xp]
