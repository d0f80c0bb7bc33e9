"""The benchmark's hand-written peers (``nnbackend/bench/peers.py``) train what nnbackend trains.

Tests written in the mutation audit of 2026-12-08q. Each peer (``numpy-seed`` and its
``-bare``/``-record`` forms, ``torch-eager``, the ``cupy-eager`` arithmetic with NumPy
standing in for CuPy, ``jax-scan-hand``, ``jax-jit-step``) is compared epoch by epoch with
nnbackend's own epoch on NumPy (:func:`nnbackend.bench.workloads.nnbackend_epoch`) for a
seed, learning rate and batch size other than the defaults the benchmark passes, with a
last partial mini-batch; where a peer draws its row order from another generator (torch,
CuPy), that draw is replaced by nnbackend's (``np.random.default_rng(seed)``), so both
take the same steps. Also: batch mode draws no row order, how each seed loop keeps its
loss, what ``info`` records, which JAX device is asked for, and the JAX peers' refusal of
a model other than ``small``. Each test names in a comment the mutants it kills.
"""

import types

import numpy as np
import pytest

from nnbackend.backends import cpu_name
from nnbackend.bench import peers
from nnbackend.bench import workloads as W
from nnbackend.bench.models import workload
from nnbackend.bench.synthetic import data_for, initial_params

N = 100  # not a multiple of 16 or 64: every mini-batch epoch ends with a partial batch

# (seed, learning rate as a multiple of the model's, batch size): each differs from the
# benchmark's own (seed 0, the model's rate, 64 rows) in one place only.
SETTINGS = [(1, 1.0, 64), (0, 5.0, 64), (0, 1.0, 16)]
IDS = ["seed 1", "lr x5", "batch 16"]


def _epochs(step, count=2):
    return [step() for _ in range(count)]


def _ours(mode, n, model="small", batch_size=64, seed=0, lr=None):
    step, _ = W.nnbackend_epoch("numpy", None, mode, n, batch_size=batch_size, seed=seed,
                                lr=lr, model=model)
    return _epochs(step)


class _NumpyAsCupy:
    """NumPy standing in for CuPy in ``plain_epoch``, its ``RandomState(seed)`` drawing
    the row order as nnbackend does (``np.random.default_rng(seed)``); ``drawn`` lists
    the orders drawn."""

    def __init__(self):
        self.drawn = []
        self.random = types.SimpleNamespace(RandomState=self._state)

    def _state(self, seed):
        rng = np.random.default_rng(seed)
        drawn = self.drawn

        class _Order:
            def permutation(self, n):
                drawn.append(n)
                return rng.permutation(n)

        return _Order()

    def __getattr__(self, name):
        return getattr(np, name)


@pytest.fixture
def torch_orders(monkeypatch):
    """torch.randperm replaced by nnbackend's order for the generator's seed; the list
    of those seeds (one entry per order drawn)."""
    torch = pytest.importorskip("torch", reason="the torch-eager peer needs torch")
    seeds, rngs = [], {}

    def randperm(n, device=None, generator=None):
        seed = generator.initial_seed()
        seeds.append(seed)
        rng = rngs.setdefault(seed, np.random.default_rng(seed))
        return torch.from_numpy(rng.permutation(n)).to(device)

    monkeypatch.setattr(torch, "randperm", randperm)
    return seeds


# -- every peer trains nnbackend's epochs: seed, learning rate, batch size, last batch --

@pytest.mark.parametrize("implementation", ["numpy-seed", "numpy-seed-record"])
@pytest.mark.parametrize("seed, scale, batch", SETTINGS, ids=IDS)
def test_the_seed_loop_trains_nnbackends_epochs(implementation, seed, scale, batch):
    # S06 (the rows drawn for seed 0 whatever the seed), S07 (the weights of seed 0),
    # S09 (the row order of seed 0), S08 (batch_size ignored: 64 rows a step), S16 (W2
    # updated at lr 0.1 whatever the rate): the loop trained other rows, from another
    # start, in another order or at another rate than nnbackend.
    lr = 0.1 * scale
    step, _ = peers.numpy_seed_epoch("minibatch", N, batch, seed, lr,
                                     implementation=implementation)
    expected = _ours("minibatch", N, batch_size=batch, seed=seed, lr=lr)
    np.testing.assert_allclose(_epochs(step), expected, rtol=1e-5)


@pytest.mark.parametrize("model", ["small", "mid"])
@pytest.mark.parametrize("seed, scale, batch", SETTINGS, ids=IDS)
def test_the_plain_peer_trains_nnbackends_epochs(model, seed, scale, batch):
    # C01 (batch_size ignored), C02 and C16 (lr ignored), C03 (the weights of seed 0),
    # C04 (the rows of seed 0), C05 (the order of seed 0), C12 (the last, partial batch's
    # gradient divided by the full batch size), C19 (a shuffled batch's targets taken in
    # row order, paired with other rows): the cupy-eager arithmetic trained another epoch
    # than nnbackend's.
    lr = workload(model).lr * scale
    step = peers.plain_epoch(_NumpyAsCupy(), "minibatch", N, batch, seed, lr, model)
    expected = _ours("minibatch", N, model, batch, seed, lr)
    np.testing.assert_allclose(_epochs(step), expected, rtol=1e-5)


@pytest.mark.parametrize("model", ["small", "mid"])
@pytest.mark.parametrize("seed, scale, batch", SETTINGS, ids=IDS)
def test_the_torch_peer_trains_nnbackends_epochs(torch_orders, model, seed, scale, batch):
    # T01 (batch_size ignored), T02 (lr ignored), T05 (the weights of seed 0), T06 (the
    # rows of seed 0), T08 (the small models' loss without its ½: twice the loss and
    # the gradient), T12 (the last, partial batch's loss counted as a full batch's),
    # T10 (the order's generator seeded 0 whatever the seed).
    lr = workload(model).lr * scale
    step, _ = peers.torch_eager_epoch("minibatch", N, batch, seed, lr, model=model)
    expected = _ours("minibatch", N, model, batch, seed, lr)
    np.testing.assert_allclose(_epochs(step), expected, rtol=1e-5)
    assert torch_orders == [seed, seed]


def test_the_torch_peer_trains_nnbackends_adam_epochs():
    # T15 (torch.optim.AdamW for Adam): a weight decay of 0.01 nnbackend's Adam does not
    # have; the losses part by about 1e-5 of themselves from the second epoch, where the
    # peers agree to about 1e-7 (the existing check, 3 epochs at rtol 1e-4, let it pass).
    pytest.importorskip("torch", reason="the torch-eager peer needs torch")
    ours, _ = W.nnbackend_epoch("numpy", None, "batch", 48, model="mnist")
    theirs, _ = peers.torch_eager_epoch("batch", 48, model="mnist")
    np.testing.assert_allclose(_epochs(theirs, 4), _epochs(ours, 4), rtol=2e-6)


@pytest.mark.parametrize("make", ["jax_scan_epoch", "jax_step_loop_epoch"])
@pytest.mark.parametrize("seed, scale, batch", SETTINGS, ids=IDS)
def test_the_jax_peers_train_nnbackends_epochs(make, seed, scale, batch):
    # J03 (the rows of seed 0), J04 (the weights of seed 0), J06 (lr 0.1 whatever the
    # rate), J24 (batch_size ignored: 64 rows a step), J12 and J15 (the order of seed 0),
    # J16 (jax-jit-step's rows never shuffled), J17 (its epoch loss the last batch's
    # only), J18 (its trained weights never kept), J19 (its last, partial batch left out).
    pytest.importorskip("jax", reason="the JAX peers need jax")
    lr = 0.1 * scale
    step, _ = getattr(peers, make)("minibatch", N, batch, seed, lr, device="cpu")
    expected = _ours("minibatch", N, batch_size=batch, seed=seed, lr=lr)
    np.testing.assert_allclose(_epochs(step), expected, rtol=1e-4)


def test_the_torch_peer_trains_on_the_data_it_is_given():
    # T07 (``data`` ignored): the peer trained on the model's synthetic rows instead.
    torch = pytest.importorskip("torch", reason="the torch-eager peer needs torch")
    X, y = data_for("small", 40, 0)
    y = 1 - y  # other targets for the same rows
    step, _ = peers.torch_eager_epoch("batch", 40, data=(torch.from_numpy(X),
                                                        torch.from_numpy(y)))
    W1, b1, W2, b2 = initial_params("small", 0)
    out = 1 / (1 + np.exp(-(1 / (1 + np.exp(-(X @ W1 + b1))) @ W2 + b2)))
    # The first epoch's loss is the loss at the start, before its one step.
    assert step() == pytest.approx(0.5 * float(np.sum((out - y) ** 2)), rel=1e-5)


# -- batch mode: the rows as they are, no order drawn ------------------------------------

def test_the_seed_loops_batch_epoch_draws_no_order(monkeypatch):
    # S10 (``size <= n_samples``): a permutation drawn and all N rows gathered through it
    # every batch epoch, time the plain full-batch step a NumPy user writes never spends.
    drawn = []
    real = np.random.default_rng

    class _Recording:
        def __init__(self, rng):
            self._rng = rng

        def permutation(self, n):
            drawn.append(n)
            return self._rng.permutation(n)

        def __getattr__(self, name):
            return getattr(self._rng, name)

    monkeypatch.setattr(np.random, "default_rng", lambda *a, **k: _Recording(real(*a, **k)))
    for mode, orders in (("batch", []), ("minibatch", [N, N])):
        step, _ = peers.numpy_seed_epoch(mode, N)
        drawn.clear()
        _epochs(step)
        assert drawn == orders, mode


def test_the_plain_peers_batch_epoch_draws_no_order():
    # C11 (``size <= n_samples``): CuPy's batch epoch drew an order and gathered all N
    # rows through it every epoch.
    for mode, orders in (("batch", []), ("minibatch", [N, N])):
        cp = _NumpyAsCupy()
        _epochs(peers.plain_epoch(cp, mode, N))
        assert cp.drawn == orders, mode


def test_the_torch_peers_batch_epoch_draws_no_order(torch_orders):
    # T11 (``size <= n_samples``): torch's batch epoch drew an order (torch.randperm)
    # and indexed all N rows through it every epoch.
    step, _ = peers.torch_eager_epoch("batch", N)
    _epochs(step)
    assert torch_orders == []
    step, _ = peers.torch_eager_epoch("minibatch", N)
    _epochs(step)
    assert torch_orders == [0, 0]


# -- how each seed loop keeps its loss -----------------------------------------------------

def test_each_seed_loop_keeps_its_loss_as_its_name_says(monkeypatch):
    # S01 (numpy-seed keeping a 0-D array) and S03 (numpy-seed-record keeping a Python
    # float per step): the two loops timed side by side to tell the library's cost from
    # its loss record's kept the loss the same way, or the other's way.
    monkeypatch.setattr(peers, "windowed", lambda run_epoch, read: run_epoch)
    kept = {}
    for implementation in peers.SEED_RECORDS:
        epoch, _ = peers.numpy_seed_epoch("minibatch", N, implementation=implementation)
        kept[implementation] = epoch()
    assert type(kept["numpy-seed"]) is float
    assert isinstance(kept["numpy-seed-record"], (np.ndarray, np.generic))
    assert kept["numpy-seed-bare"] == 0.0
    assert float(kept["numpy-seed-record"]) == pytest.approx(kept["numpy-seed"], rel=1e-5)


# -- what info records -------------------------------------------------------------------

def test_the_seed_loops_info_names_itself_and_the_cpu():
    # S19 (every seed loop recorded as "numpy-seed"), S20 (the device recorded as "cpu",
    # not the processor's name the report prints for every CPU case).
    for implementation in peers.SEED_RECORDS:
        _, info = peers.numpy_seed_epoch("batch", 16, implementation=implementation)
        assert info["implementation"] == info["label"] == implementation
        assert info["device"] == cpu_name() and info["gpu"] is False


def test_the_torch_peers_info_records_its_cpu_threads():
    # T14 (threads None on the CPU): the report could not say how many threads torch ran.
    torch = pytest.importorskip("torch", reason="the torch-eager peer needs torch")
    _, info = peers.torch_eager_epoch("batch", 16)
    assert info["threads"] == torch.get_num_threads() >= 1
    assert info["device"] == cpu_name() and info["label"] == "torch-eager-cpu"


def test_the_jax_peers_info_names_the_cpu_and_any_accelerator():
    # J09 (the device recorded as JAX's device_kind "cpu", not the processor's name),
    # J08 (``platform == "gpu"``: a TPU recorded as no accelerator).
    jax = pytest.importorskip("jax", reason="the JAX peers need jax")
    _, info = peers.jax_step_loop_epoch("batch", 16, device="cpu")
    assert info["device"] == cpu_name() and info["gpu"] is False
    assert info["label"] == "jax-jit-step-cpu"
    tpu = types.SimpleNamespace(platform="tpu", device_kind="TPU v4")
    info = peers._jax_info("jax-scan-hand", tpu)
    assert info["gpu"] is True and info["device"] == "TPU v4"
    assert info["label"] == "jax-scan-hand-tpu"
    assert jax.devices("cpu")  # the CPU platform is there to ask for


# -- which JAX device, which model ---------------------------------------------------------

@pytest.mark.parametrize("device, asked", [("cpu", ("cpu",)), ("cuda", ("gpu",)),
                                           ("cuda:0", ("gpu",)), (None, ())])
def test_the_jax_peers_ask_jax_for_the_device_named(monkeypatch, device, asked):
    # J01 (``device`` ignored: JAX's default device, a GPU where there is one, for
    # "cpu"), J02 (torch's "cuda" passed on to JAX, whose platform is "gpu").
    jax = pytest.importorskip("jax", reason="the JAX peers need jax")
    calls = []
    cpus = jax.devices("cpu")
    monkeypatch.setattr(jax, "devices", lambda *a: calls.append(a) or cpus)
    for make in (peers.jax_scan_epoch, peers.jax_step_loop_epoch):
        calls.clear()
        make("batch", 16, device=device)
        assert calls == [asked], make.__name__


def test_the_jax_peers_take_the_device_index_named(monkeypatch):
    # J22 (the index after the colon ignored): "gpu:1" ran on the first GPU.
    jax = pytest.importorskip("jax", reason="the JAX peers need jax")
    cpu = jax.devices("cpu")[0]
    second = types.SimpleNamespace(platform="cpu", device_kind="cpu")  # a 2nd device
    monkeypatch.setattr(jax, "devices", lambda *a: [cpu, second])
    put, used = jax.device_put, []
    monkeypatch.setattr(jax, "device_put", lambda x, d=None: used.append(d) or put(x, cpu))
    for make in (peers.jax_scan_epoch, peers.jax_step_loop_epoch):
        used.clear()
        make("batch", 16, device="cpu:1")
        assert used and all(d is second for d in used), make.__name__


@pytest.mark.parametrize("implementation", ["jax-scan-hand", "jax-jit-step"])
def test_the_jax_peers_train_the_small_model_only(implementation):
    # W02 (jax-scan-hand's check dropped) and J21 (jax-jit-step's): asked for small16,
    # they trained the small model's 32 features under small16's name.
    pytest.importorskip("jax", reason="the JAX peers need jax")
    with pytest.raises(ValueError, match=f"the {implementation} peer trains the 'small' model"):
        W.make_epoch(implementation, "cpu", "batch", 32, model="small16")


# -- the plain peer: a softmax at large logits, the weights it trains ------------------------

def test_the_plain_peers_softmax_stays_finite_where_nnbackends_does():
    # C13 (the logits not shifted by their row maximum before ``exp``): at a learning
    # rate too high for the mid model the logits pass 88 by the third epoch, exp
    # overflows float32 and the peer's loss is nan where nnbackend's is a number.
    plain = peers.plain_epoch(np, "batch", 48, lr=3.0, model="mid")
    ours, _ = W.nnbackend_epoch("numpy", None, "batch", 48, lr=3.0, model="mid")
    expected = _epochs(ours, 3)
    assert np.isfinite(expected).all() and expected[2] > 1e5  # diverging, still finite
    np.testing.assert_allclose(_epochs(plain, 3), expected, rtol=1e-4)


def test_the_plain_peers_step_holds_the_weights_it_trains():
    # C18 (``step.params`` dropped): the weights the peer trains were out of a caller's
    # reach (nothing else in the repository reads them).
    step = peers.plain_epoch(np, "batch", 48)
    start = initial_params("small", 0)
    assert [p.shape for p in step.params] == [a.shape for a in start]
    np.testing.assert_array_equal(step.params[0], start[0])
    step()
    assert not np.array_equal(step.params[0], start[0])  # trained in place
    assert all(p.dtype == np.float32 for p in step.params)
