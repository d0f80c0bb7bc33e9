"""The CuPy kernels carry a fit's L2 penalty and learning-rate schedules.

The fused epoch kernel (both placements of the parameters) and the
full-batch kernels run the optimizers that ``fit(alpha=..., lr_schedule=...)``
and the scikit-learn estimators build (:func:`nnbackend.optim.l2_penalty`
around :func:`nnbackend.optim.scheduled`), and must equal the reference loop
running the same wrapped optimizer: on the host build here, through CuPy
where there is a GPU. What they cannot carry they decline, saying why.
"""

import sys

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends.cupy import batch as B
from nnbackend.backends.cupy import fused as F
from nnbackend.backends.cupy.kernel_update import kernel_update
from nnbackend.data import host_rng, make_plan
from nnbackend.engine import run_epoch
from nnbackend.optim import ScheduledState, get_optimizer, inverse_scaling, l2_penalty, scheduled
from nnbackend.network import NetSpec

from test_cooperative_launch import fake_cupy  # noqa: F401 (a fixture)
from test_cupy_bridge import _data, _flat, host_bridge  # noqa: F401 (a fixture)
from test_cupy_fused import _assert_same_run, _problem
from conftest import needs_cxx

N = 101


def _wrapped(name, plan, n_layers, l2=0.0, schedule=None, scale=1.0, mask="weights", on=None,
             **options):
    """The optimizer a fit builds: ``l2_penalty(scheduled(built-in))``, each where asked
    (``on``: where the factor goes; None, scheduled's default: sgd's and
    momentum's gradients, Adam's updates)."""
    opt = get_optimizer(name, 0.05, **options)
    if schedule == "invscaling":
        steps = -(-plan.n_samples // plan.batch_size)
        opt = scheduled(opt, inverse_scaling(0.5, plan.n_samples, steps), scale, on=on)
    elif schedule == "adaptive":
        opt = scheduled(opt, None, scale, on=on)
    masks = {"weights": [True, False] * n_layers, "all": None, "biases": [False, True] * n_layers}
    return l2_penalty(opt, l2, masks[mask])


# (optimizer, options, L2 coefficient, schedule, scale, mask): what fit and the
# estimators build, the masks the kernels place by offset, and factors on the
# gradients and on the steps (on="...").
FORMS = [
    ("sgd", {}, 0.3, "invscaling", 1.0, "weights"),
    ("sgd", {}, 0.0, "adaptive", 0.2, "weights"),
    ("momentum", {"beta": 0.8}, 0.3, "adaptive", 0.2, "weights"),
    ("momentum", {"nesterov": True}, 0.3, "invscaling", 0.2, "all"),
    ("adam", {}, 0.3, None, 1.0, "weights"),
    ("adam", {}, 0.3, None, 1.0, "biases"),
    ("adam", {}, 0.3, "invscaling", 0.2, "weights"),
    ("adam", {"on": "grads"}, 0.0, "adaptive", 0.2, "weights"),
    ("sgd", {"on": "updates"}, 0.3, "invscaling", 0.5, "weights"),
]


def _run(make, opt, model, X, Y, plan, multiclass, epochs, windows=False):
    """``epochs`` epochs of the kernel's ``epoch`` (or one window of them) and of the
    reference loop, from the same start."""
    params = model.flat_params
    a = b = (params, opt.init(params))
    rng_a, rng_b = host_rng(3), host_rng(3)
    epoch = make()
    if windows:
        orders = [plan.order(rng_a) for _ in range(epochs)]
        *a, loss_a, _ = epoch.epochs(*a, orders)
        loss_a = loss_a[-1]
    else:
        for _ in range(epochs):
            *a, loss_a, _ = epoch(*a, plan.order(rng_a))
    for _ in range(epochs):
        *b, loss_b, _ = run_epoch(*b, opt, model.spec, X, Y, plan, rng_b, np.int64, 2048,
                                  multiclass, xp=model.backend.xp)
    return a, b, loss_a, loss_b


def _assert_same(a, b, loss_a, loss_b, rtol=1e-12, atol=1e-14):
    """The kernel's run ``a`` equals the reference's ``b``: parameters, the optimizer
    state (a schedule's count and the state it holds), the loss."""
    (params, state), (ref_params, ref_state) = a, b
    assert type(state) is type(ref_state)
    if isinstance(ref_state, ScheduledState):
        assert state.count == ref_state.count
        state, ref_state = state.inner[0], ref_state.inner[0]
    _assert_same_run(((params, state), (loss_a, None)), ((ref_params, ref_state), (loss_b, None)),
                     rtol, atol)


@needs_cxx
@pytest.mark.parametrize("windows", [False, True])
@pytest.mark.parametrize("placement", ["shared", "global"])
@pytest.mark.parametrize("name, options, l2, schedule, scale, mask", FORMS)
def test_fused_kernel_carries_the_penalty_and_schedules(name, options, l2, schedule, scale, mask,
                                                         placement, windows):
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64")
    plan = make_plan("minibatch", N, 8, shuffle=True)
    opt = _wrapped(name, plan, 3, l2, schedule, scale, mask, **options)
    layout = F.Layout(model.layer_sizes, 8, "float64", params_in=placement)

    def make():
        return F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                            "float64", F.host_launcher, layout=layout)

    _assert_same(*_run(make, opt, model, X, Y, plan, multiclass, 3, windows))


@needs_cxx
@pytest.mark.parametrize("windows", [False, True])
@pytest.mark.parametrize("name, options, l2, schedule, scale, mask", FORMS)
def test_batch_kernels_carry_the_penalty_and_schedules(name, options, l2, schedule, scale, mask,
                                                       windows):
    model, X, Y, multiclass = _problem("tanh", "softmax", "cross_entropy", 3, "float64", n=301)
    plan = make_plan("batch", 301, None)
    opt = _wrapped(name, plan, 3, l2, schedule, scale, mask, **options)
    layout = B.BatchLayout(model.layer_sizes, "float64", 32)

    def make():
        # The persistent kernel's host build runs a window in one launch (a
        # constant factor); an 'invscaling' window takes two launches an epoch.
        return B.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, layout, 3,
                            B.host_launcher, persistent=B.host_persistent)

    epoch = make()
    assert ("persistent" in epoch.path) == (schedule != "invscaling"), epoch.path
    _assert_same(*_run(make, opt, model, X, Y, plan, multiclass, 3, windows),
                 rtol=1e-9, atol=1e-12)


@needs_cxx
@pytest.mark.parametrize("name, options, schedule", [("sgd", {}, "invscaling"),
                                                     ("momentum", {}, "adaptive"),
                                                     ("adam", {}, None),
                                                     ("adam", {}, "invscaling")])
def test_float32_kernels_with_the_penalty_stay_within_float32_rounding(name, options, schedule):
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float32")
    plan = make_plan("minibatch", N, 8, shuffle=True)
    opt = _wrapped(name, plan, 3, 0.3, schedule, 0.2, **options)

    def make():
        return F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                            "float32", F.host_launcher)

    (params, _), (ref_params, _), loss, ref_loss = _run(make, opt, model, X, Y, plan,
                                                         multiclass, 2)
    for got, want in zip(params, ref_params):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)


@needs_cxx
def test_the_penalty_and_the_factor_change_the_result():
    """Each of them reaches the kernel: without it, the kernel's run differs."""
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float64")
    plan = make_plan("minibatch", N, 8, shuffle=True)
    runs = {}
    for key, (l2, scale) in {"plain": (0.0, 1.0), "l2": (0.3, 1.0), "scaled": (0.0, 0.2)}.items():
        opt = _wrapped("momentum", plan, 3, l2, "adaptive", scale)

        def make(opt=opt):
            return F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                                "float64", F.host_launcher)

        a, b, *_ = _run(make, opt, model, X, Y, plan, multiclass, 2)
        _assert_same(a, b, 0.0, 0.0)
        runs[key] = a[0][0]
    assert not np.allclose(runs["plain"], runs["l2"])
    assert not np.allclose(runs["plain"], runs["scaled"])


def test_what_the_kernels_cannot_carry_is_declined_by_name():
    plan = make_plan("minibatch", 100, 10)
    sizes = [4, 3, 1]
    sgd, adam = get_optimizer("sgd", 0.1), get_optimizer("adam", 0.1)
    steps = 10

    def why(opt, p=plan):
        return kernel_update(opt, p, sizes)[1]

    assert why(l2_penalty(scheduled(sgd, inverse_scaling(0.5, 100, steps), 0.5), 1e-4)) is None
    assert why(l2_penalty(scheduled(adam, inverse_scaling(0.5, 100, steps), 0.5), 1e-4)) is None
    assert why(scheduled(sgd, None, 0.5, on="updates")) is None
    assert "of the caller's own" in why(scheduled(sgd, lambda count: 0.5))
    assert "another plan" in why(scheduled(sgd, inverse_scaling(0.5, 100, steps)),
                                 make_plan("minibatch", 100, 20))
    assert "nested in another order" in why(scheduled(l2_penalty(sgd, 0.1), None, 0.5,
                                                      on="grads"))
    assert "custom optimizer" in why(nb.Optimizer(sgd.init, sgd.update))
    assert "L2 mask of 3 entries" in why(l2_penalty(sgd, 0.1, [True, False, True]))
    # A penalty of 0, or on no parameter, is none: the plain kernel.
    for opt in (l2_penalty(sgd, 0.0), l2_penalty(sgd, 0.1, [False] * 4)):
        update = kernel_update(opt, plan, sizes)[0]
        assert update.penalized is None and not update.scaled and str(update) == "sgd"
    # The executors say the same.
    spec = NetSpec("tanh", "sigmoid", "bce", "mean")
    own = scheduled(adam, lambda count: 0.5)
    assert "of the caller's own" in F.unsupported(spec, plan, own, sizes, "float32")
    batch_plan = make_plan("batch", 100, None)
    assert "of the caller's own" in B.unsupported(spec, batch_plan, own, sizes, "float32")
    assert F.unsupported(spec, plan, l2_penalty(adam, 1e-4, [True, False] * 2), sizes,
                         "float32") is None


def test_the_penalty_is_placed_by_offset():
    plan = make_plan("minibatch", 100, 10)
    sgd = get_optimizer("sgd", 0.1)
    # [4, 3, 1]: W0 0..12, b0 12..15, W1 15..18, b1 18..19.
    cases = {(True, False, True, False): "(p >= 0 && p < 12) || (p >= 15 && p < 18)",
             (False, True, False, True): "(p >= 12 && p < 15) || (p >= 18 && p < 19)",
             (True, True, False, False): "(p >= 0 && p < 15)", None: "true",
             (True,) * 4: "true"}
    for mask, want in cases.items():
        update = kernel_update(l2_penalty(sgd, 0.1, mask), plan, [4, 3, 1])[0]
        assert update.penalized == want and str(update) == "sgd + L2 0.1"


@needs_cxx
def test_invscaling_needs_epochs_that_start_on_an_epoch_boundary():
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float64")
    plan = make_plan("minibatch", N, 8, shuffle=True)
    opt = _wrapped("sgd", plan, 3, 0.0, "invscaling")
    epoch = F.make_epoch(np, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes,
                         "float64", F.host_launcher)
    params = model.flat_params
    state = opt.init(params)._replace(count=5)
    with pytest.raises(RuntimeError, match="factor changes within the 13 steps from step 5"):
        epoch(params, state, None)


@needs_cxx
@pytest.mark.parametrize("optimizer, alpha, lr_schedule", [
    ("momentum", 0.01, "invscaling"), ("sgd", 0.01, "adaptive"), ("adam", 0.01, "constant")])
def test_torch_fits_with_alpha_and_schedules_take_the_kernel_through_the_bridge(
        host_bridge, optimizer, alpha, lr_schedule):
    """What torch:cuda does on a GPU, on the CPU: the fit's wrapped optimizer and its
    state (a ScheduledState around the optimizer's) cross to the kernel and back,
    equal to the reference loop, and a resumed fit carries the schedule on."""
    pytest.importorskip("torch")
    X, y = _data()
    runs = {}
    for executor in ("reference", "auto"):
        model = nb.MLP([5, 7, 1], hidden_activation="tanh", loss="bce", backend="torch",
                       device="cpu", dtype="float64", seed=1)
        kwargs = dict(epochs=2, lr=0.05, batch_size=8, optimizer=optimizer, seed=4,
                      alpha=alpha, lr_schedule=lr_schedule, executor=executor)
        first = model.fit(X, y, **kwargs)
        again = model.fit(X, y, resume=True, **kwargs)
        runs[executor] = (model, first, again)
    (ref, *ref_hists), (got, *hists) = runs["reference"], runs["auto"]
    assert [h.executor for h in hists] == ["cupy-fused"] * 2, hists[0].executor_reason
    for a, b in zip(_flat(got), _flat(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for h, r in zip(hists, ref_hists):
        np.testing.assert_allclose(h.loss, r.loss, rtol=1e-12)


def _cupy():
    try:
        return nb.get_backend("cupy")
    except nb.BackendUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("mode, batch_size, executor", [("minibatch", 16, "cupy-fused"),
                                                        ("batch", None, "cupy-batch")])
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("alpha, lr_schedule", [(0.01, "invscaling"), (0.01, "adaptive"),
                                                (0.01, "constant")])
def test_cupy_fits_with_alpha_and_schedules_take_the_kernels(mode, batch_size, executor, alpha,
                                                             lr_schedule, optimizer):
    _cupy()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, :1] > 0).astype(np.float64)
    runs = {}
    for chosen in (executor, "reference"):
        model = nb.MLP([6, 16, 1], loss="bce", backend="cupy", dtype="float64", seed=0)
        hist = model.fit(X, y, mode=mode, batch_size=batch_size, epochs=4, optimizer=optimizer,
                         alpha=alpha, lr_schedule=lr_schedule, executor=chosen)
        assert hist.executor == chosen
        runs[chosen] = (hist, [model.backend.to_host(p) for p in model.flat_params])
    (h_kernel, p_kernel), (h_ref, p_ref) = runs[executor], runs["reference"]
    for a, b in zip(p_kernel, p_ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_kernel.loss, h_ref.loss, rtol=1e-9)


def test_the_executors_build_their_kernels_for_a_wrapped_optimizer(fake_cupy):
    """CuPy's own executors, as on a GPU (a stand-in CuPy records the kernels): the
    sources they compile, the persistent kernel's included, carry the penalty."""
    from types import SimpleNamespace

    from nnbackend.engine import EpochTask

    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float32", n=301)
    backend = SimpleNamespace(device=fake_cupy.Device(), name="cupy")
    for plan, executor in ((make_plan("minibatch", 301, 8), F.CupyFused()),
                           (make_plan("batch", 301, None), B.CupyBatch())):
        opt = _wrapped("momentum", plan, 3, 0.25, "adaptive", 0.5)
        task = EpochTask(backend, model.spec, opt, plan, X, Y, 2048, multiclass, np.int64,
                         model.layer_sizes)
        assert executor.supports(task) is None
        sources = []
        real = sys.modules["cupy"].RawKernel

        class Recording(real):
            def __init__(self, source, name, options=()):
                super().__init__(source, name, options)
                sources.append((name, source))

        sys.modules["cupy"].RawKernel = Recording
        try:
            epoch = executor.make_epoch(task)
        finally:
            sys.modules["cupy"].RawKernel = real
        assert callable(epoch) and sources
        for name, source in sources:
            assert "momentum + L2 0.25 + gradients times h3" in source, name
            assert "g = g + (T)0.25 * " in source and "g = h3_t * g;" in source, name
