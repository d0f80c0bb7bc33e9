"""What the benchmark times: one training epoch of a fixed MLP, three ways.

* ``nnbackend``: :func:`nnbackend.model.epoch_function`, the code every fit runs.
* ``numpy-seed``: a plain NumPy loop written the way the seed tutorial
  writes it (sigmoid layers, ½·squared error, per-epoch shuffle by fancy
  indexing, ``+=`` updates), grown to one hidden layer.
* ``torch-eager``: what a PyTorch user would write: ``nn.Linear`` layers,
  autograd and ``torch.optim.SGD``.
* ``jax-scan-hand``: a hand-written JAX epoch, ``jax.jit`` over a
  ``lax.scan`` of ``jax.grad`` steps: the floor nnbackend's compiled JAX
  epoch is measured against.
* ``jax-jit-step``: a jitted JAX step called from a Python loop, the usual
  way to write JAX training.

All three train the same network (32 features, 64 sigmoid hidden units, one
sigmoid output, ½·squared error averaged over the batch, plain SGD with lr
0.1, float32) on the same synthetic data, already on the device. Each
``step()`` runs one epoch and waits for the device before returning.
"""

from __future__ import annotations

import time

import numpy as np

from ..backends import cpu_name, get_backend
from ..model import MLP
from ..model import epoch_function

N_FEATURES = 32
N_HIDDEN = 64
LR = 0.1
LAYERS = [N_FEATURES, N_HIDDEN, 1]


def synthetic(n_samples, seed=0):
    """Regression data from a fixed random teacher network, float32.

    Returns
    -------
    X : ndarray, shape (n_samples, 32)
    y : ndarray, shape (n_samples, 1), in (0, 1)
    """
    teacher = np.random.default_rng(12345)
    W1 = teacher.normal(size=(N_FEATURES, 16)) / np.sqrt(N_FEATURES)
    w2 = teacher.normal(size=(16, 1)) * 1.5
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, N_FEATURES), dtype=np.float32)
    y = 1 / (1 + np.exp(-(np.tanh(X @ W1) @ w2)))
    return X, y.astype(np.float32)


def _initial_params(seed=0):
    model = MLP(LAYERS, backend="numpy", dtype="float32", seed=seed)
    return [np.array(a) for pair in model.params for a in pair]


def batch_size_of(mode, batch_size, n_samples):
    return {"batch": n_samples, "sgd": 1}.get(mode, min(batch_size, n_samples))


def nnbackend_epoch(backend, device, mode, n_samples, batch_size=64, seed=0, lr=LR,
                    executor="auto"):
    """``(step, info)``: one nnbackend epoch per ``step()`` call.

    ``executor="reference"`` times the plain loop where ``"auto"`` would
    take the backend's fast path (labelled ``nnbackend-<name>-reference``).
    """
    b = get_backend(backend, device)
    model = MLP(LAYERS, backend=b, dtype="float32", seed=seed)
    X, y = synthetic(n_samples, seed)
    dtype = b.dtype("float32")
    X, y = b.asarray(X, dtype=dtype), b.asarray(y, dtype=dtype)  # on the device before timing
    step = epoch_function(model, X, y, mode=mode, batch_size=batch_size, lr=lr, seed=seed,
                          executor=executor)
    label = f"nnbackend-{b.name}" + ("" if executor == "auto" else f"-{executor}")
    info = {"implementation": "nnbackend", "label": label, "backend": b.name,
            "device": b.device_name(), "gpu": b.is_gpu()}
    return step, info


def numpy_seed_epoch(mode, n_samples, batch_size=64, seed=0, lr=LR):
    """``(step, info)``: the seed tutorial's NumPy loop with one hidden layer.

    Batch mode is the one-shot full-batch step (all N rows at once), as a
    plain NumPy user writes it.
    """
    X, y = synthetic(n_samples, seed)
    W1, b1, W2, b2 = _initial_params(seed)
    size = batch_size_of(mode, batch_size, n_samples)
    rng = np.random.default_rng(seed)

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def step():
        nonlocal W1, b1, W2, b2
        if size < n_samples:
            indices = rng.permutation(n_samples)
            Xs, ys = X[indices], y[indices]
        else:
            Xs, ys = X, y
        total = 0.0
        for i in range(0, n_samples, size):
            X_batch, y_batch = Xs[i:i + size], ys[i:i + size]
            hidden = sigmoid(np.dot(X_batch, W1) + b1)
            outputs = sigmoid(np.dot(hidden, W2) + b2)
            error = y_batch - outputs
            total += 0.5 * float(np.sum(error * error))
            d_out = error * (outputs * (1 - outputs)) / len(X_batch)
            d_hidden = np.dot(d_out, W2.T) * (hidden * (1 - hidden))
            W2 += np.dot(hidden.T, d_out) * lr
            b2 += np.sum(d_out, axis=0) * lr
            W1 += np.dot(X_batch.T, d_hidden) * lr
            b1 += np.sum(d_hidden, axis=0) * lr
        return total

    info = {"implementation": "numpy-seed", "label": "numpy-seed", "backend": "numpy",
            "device": cpu_name(), "gpu": False}
    return step, info


def torch_eager_epoch(mode, n_samples, batch_size=64, seed=0, lr=LR, device="cpu"):
    """``(step, info)``: PyTorch eager with ``nn.Linear``, autograd and ``optim.SGD``."""
    import torch

    dev = torch.device(device)
    W1, b1, W2, b2 = _initial_params(seed)
    net = torch.nn.Sequential(torch.nn.Linear(N_FEATURES, N_HIDDEN), torch.nn.Sigmoid(),
                              torch.nn.Linear(N_HIDDEN, 1), torch.nn.Sigmoid()).to(dev)
    with torch.no_grad():
        # Same start as the others (nn.Linear keeps W as (out, in)).
        for layer, W, b in ((net[0], W1, b1), (net[2], W2, b2)):
            layer.weight.copy_(torch.from_numpy(W.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    X, y = synthetic(n_samples, seed)
    X, y = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    size = batch_size_of(mode, batch_size, n_samples)
    gen = torch.Generator(device=dev).manual_seed(seed)

    def step():
        order = torch.randperm(n_samples, device=dev, generator=gen) if size < n_samples else None
        total = torch.zeros((), device=dev)
        for i in range(0, n_samples, size):
            idx = slice(i, i + size) if order is None else order[i:i + size]
            out = net(X[idx])
            loss = 0.5 * torch.mean(torch.sum((out - y[idx]) ** 2, dim=1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * out.shape[0]
        return float(total)  # waits for the device

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    info = {"implementation": "torch-eager", "label": f"torch-eager-{dev.type}", "backend": "torch",
            "device": name, "gpu": dev.type == "cuda"}
    return step, info


def _jax_setup(mode, n_samples, batch_size, seed, lr):
    import jax
    import jax.numpy as jnp

    X, y = synthetic(n_samples, seed)
    X, y = jnp.asarray(X), jnp.asarray(y)
    params = [jnp.asarray(a) for a in _initial_params(seed)]
    size = batch_size_of(mode, batch_size, n_samples)

    def loss(params, Xb, yb):
        W1, b1, W2, b2 = params
        out = jax.nn.sigmoid(jax.nn.sigmoid(Xb @ W1 + b1) @ W2 + b2)
        return 0.5 * jnp.sum((out - yb) ** 2) / Xb.shape[0]

    def step(params, Xb, yb):
        value, grads = jax.value_and_grad(loss)(params, Xb, yb)
        return [p - lr * g for p, g in zip(params, grads)], value * Xb.shape[0]

    return jax, jnp, X, y, params, size, step


def jax_scan_epoch(mode, n_samples, batch_size=64, seed=0, lr=LR):
    """``(step, info)``: a hand-written jitted ``lax.scan`` epoch (full batches only)."""
    jax, jnp, X, y, params, size, one_step = _jax_setup(mode, n_samples, batch_size, seed, lr)
    n_full = n_samples // size
    rng = np.random.default_rng(seed)

    @jax.jit
    def epoch(params, order):
        def body(carry, idx):
            params, total = carry
            params, value = one_step(params, X[idx], y[idx])
            return (params, total + value), None

        batches = order[: n_full * size].reshape(n_full, size)
        return jax.lax.scan(body, (params, jnp.zeros((), X.dtype)), batches)[0]

    state = {"params": params}

    def step():
        order = jnp.asarray(rng.permutation(n_samples) if size < n_samples else np.arange(n_samples))
        state["params"], total = epoch(state["params"], order)
        return float(total)

    info = {"implementation": "jax-scan-hand", "label": "jax-scan-hand", "backend": "jax",
            "device": cpu_name(), "gpu": False}
    return step, info


def jax_step_loop_epoch(mode, n_samples, batch_size=64, seed=0, lr=LR):
    """``(step, info)``: a jitted JAX step called from a Python loop over batches."""
    jax, jnp, X, y, params, size, one_step = _jax_setup(mode, n_samples, batch_size, seed, lr)
    jit_step = jax.jit(one_step)
    rng = np.random.default_rng(seed)
    state = {"params": params}

    def step():
        order = rng.permutation(n_samples) if size < n_samples else np.arange(n_samples)
        Xs, ys = X[jnp.asarray(order)], y[jnp.asarray(order)]
        total = jnp.zeros((), X.dtype)
        params = state["params"]
        for i in range(0, n_samples, size):
            params, value = jit_step(params, Xs[i:i + size], ys[i:i + size])
            total = total + value
        state["params"] = params
        return float(total)

    info = {"implementation": "jax-jit-step", "label": "jax-jit-step", "backend": "jax",
            "device": cpu_name(), "gpu": False}
    return step, info


def time_to_target(make_step, target_loss, n_samples, max_seconds=20.0, max_epochs=10_000):
    """Train epoch after epoch until the mean epoch loss is at most ``target_loss``.

    Returns a dict: ``reached``, ``epochs``, ``seconds`` (wall time, set-up
    excluded), ``final_loss``.
    """
    step = make_step()
    start = time.perf_counter()
    loss, epochs = float("inf"), 0
    while epochs < max_epochs:
        loss = step() / n_samples
        epochs += 1
        if loss <= target_loss or time.perf_counter() - start > max_seconds:
            break
    return {"reached": loss <= target_loss, "epochs": epochs,
            "seconds": time.perf_counter() - start, "final_loss": loss}
