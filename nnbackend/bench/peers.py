"""The peers nnbackend is timed against: training epochs written by hand, plainly.

Each ``*_epoch`` function returns ``(step, info)``: ``step()`` trains one
epoch on data already on the device, waits for the device and returns the
epoch's summed loss; ``step.window(k)`` trains ``k`` epochs with nothing
read between them and returns their ``k`` losses, read in one transfer at
the end (as a user's loop that logs the loss now and then would); ``info``
is what the benchmark records (``label``,
``device``, ``device_kind``, ``gpu``, ``model``...). Every peer starts from the
weights nnbackend draws (:func:`.synthetic.initial_params`) on the same rows.

* ``numpy-seed`` (``small`` and ``small16``): the seed tutorial's NumPy loop
  with one hidden layer; batch mode is the one-shot full-batch step.
  ``numpy-seed-bare`` is the same loop keeping no loss, ``numpy-seed-record``
  keeping it as nnbackend does (a 0-D array, read once per epoch).
* ``torch-eager``: what a PyTorch user writes: ``nn.Linear`` layers,
  autograd, ``torch.optim``; one shot over all N rows in batch mode.
* ``cupy-eager``: the same network written in plain CuPy, forward and
  backward by hand: one shot in batch mode, an eager loop of mini-batches
  otherwise. Plain means CuPy's own idioms, ``dz.sum(axis=0)`` for a bias
  gradient included, so it shows what CuPy gives a user who writes the
  obvious code (CuPy reduces over axis 0 of a C-contiguous array without
  CUB, its slow path; nnbackend's kernels sum a bias gradient as a product
  with a vector of ones instead).
* ``jax-scan-hand`` / ``jax-jit-step`` (``small`` only): a jitted
  ``lax.scan`` epoch of ``jax.grad`` steps, and a jitted step called from a
  Python loop, on the JAX device asked for.
"""

from __future__ import annotations

import numpy as np

from ..backends import cpu_name, get_backend
from .models import label_for, workload
from .synthetic import batch_size_of, data_for, initial_params, one_hot

__all__ = ["SEED_RECORDS", "numpy_seed_epoch", "torch_eager_epoch", "cupy_eager_epoch",
           "plain_epoch", "jax_scan_epoch", "jax_step_loop_epoch", "jax_default_precision",
           "windowed"]


def windowed(run_epoch, read):
    """``step`` (one epoch, its loss read) and ``step.window(k)`` (``k`` epochs queued
    one after another, their losses read together) from ``run_epoch()``, which
    trains one epoch and returns its loss on the device without waiting, and
    ``read(losses)``, which brings a list of them to the host as floats."""
    def step():
        return read([run_epoch()])[0]

    def window(k):
        return read([run_epoch() for _ in range(k)])

    step.window = window
    return step


def _small_only(name, model):
    if workload(model).name != "small":
        raise ValueError(f"the {name} peer trains the 'small' model only, not {model!r}")


# How each numpy-seed loop keeps the epoch's loss: a float per step (issue 5's
# peer), none at all (the plain loop's floor), or as nnbackend keeps it (a
# 0-D array summed on the device, read once per epoch).
SEED_RECORDS = {"numpy-seed": "float", "numpy-seed-bare": None, "numpy-seed-record": "array"}


def _seed_model(name, model):
    w = workload(model)
    if (len(w.layers), w.hidden_activation, w.output_activation, w.loss, w.optimizer) != (
            3, "sigmoid", "sigmoid", "mse", "sgd"):
        raise ValueError(f"the {name} peer trains the 'small' models only (one sigmoid hidden "
                         f"layer, ½·squared error, SGD), not {model!r}")
    return w


def numpy_seed_epoch(mode, n_samples, batch_size=64, seed=0, lr=0.1, model="small",
                     implementation="numpy-seed"):
    """``(step, info)``: the seed tutorial's NumPy loop with one hidden layer.

    Batch mode is the one-shot full-batch step (all N rows at once), as a
    plain NumPy user writes it. ``implementation`` picks how the loss is
    kept (:data:`SEED_RECORDS`): ``numpy-seed`` adds a Python float per
    step, ``numpy-seed-record`` a 0-D array as nnbackend does (``total +
    0.5 * sum(error * error)``, the error being the one the gradient uses),
    and ``numpy-seed-bare`` keeps none (its ``step()`` returns 0.0): set
    beside each other they tell the library's own cost from its loss
    record's. ``model``: ``small`` or ``small16``.
    """
    record = SEED_RECORDS[implementation]
    w = _seed_model(implementation, model)
    X, y = data_for(w.name, n_samples, seed)
    W1, b1, W2, b2 = initial_params(w.name, seed)
    size = batch_size_of(mode, batch_size, n_samples)
    rng = np.random.default_rng(seed)

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def epoch():
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
            if record == "float":
                total += 0.5 * float(np.sum(error * error))
            elif record == "array":
                total = total + 0.5 * np.sum(error * error)
            d_out = error * (outputs * (1 - outputs)) / len(X_batch)
            d_hidden = np.dot(d_out, W2.T) * (hidden * (1 - hidden))
            W2 += np.dot(hidden.T, d_out) * lr
            b2 += np.sum(d_out, axis=0) * lr
            W1 += np.dot(X_batch.T, d_hidden) * lr
            b1 += np.sum(d_hidden, axis=0) * lr
        return total

    step = windowed(epoch, lambda totals: [float(t) for t in totals])

    info = {"implementation": implementation, "label": label_for(implementation, "cpu"),
            "backend": "numpy", "device": cpu_name(), "device_kind": "cpu", "gpu": False,
            "model": w.name}
    return step, info


def torch_eager_epoch(mode, n_samples, batch_size=None, seed=0, lr=None, device="cpu",
                      model="small", data=None):
    """``(step, info)``: PyTorch eager with ``nn.Linear``, autograd and ``torch.optim``.

    ``small``: sigmoid layers, ½·squared error, ``optim.SGD``. ``mnist``: relu
    layers, ``F.cross_entropy`` on the logits (the softmax inside it),
    ``optim.Adam``; ``mid`` the same with ``optim.SGD``. TF32 stays as torch
    is set (off for matmuls unless changed; the benchmark's ``precision``
    sets it around each epoch). ``data``: ``(X, y)`` as torch tensors, used
    as they are (X (n_samples, n_features) float32, y the model's targets),
    instead of the model's synthetic data.
    """
    import torch

    w = workload(model)
    size = batch_size_of(mode, batch_size or w.batch_size, n_samples)
    lr = w.lr if lr is None else lr
    dev = torch.device(device)
    hidden = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    layers = []
    for fan_in, fan_out in zip(w.layers[:-1], w.layers[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), hidden[w.hidden_activation]()]
    layers.pop()  # the output layer's activation is the loss's business below
    if w.output_activation == "sigmoid":
        layers.append(torch.nn.Sigmoid())
    net = torch.nn.Sequential(*layers).to(dev)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    params = initial_params(model, seed)
    with torch.no_grad():
        # Same start as the others (nn.Linear keeps W as (out, in)).
        for layer, W, b in zip(linears, params[0::2], params[1::2]):
            layer.weight.copy_(torch.from_numpy(W.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    if data is None:
        X, y = data_for(model, n_samples, seed)
        X, y = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
    else:
        X, y = data
    if w.loss == "cross_entropy":
        def loss_fn(out, target):
            return torch.nn.functional.cross_entropy(out, target)
    else:
        def loss_fn(out, target):
            return 0.5 * torch.mean(torch.sum((out - target) ** 2, dim=1))
    make_opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[w.optimizer]
    opt = make_opt(net.parameters(), lr=lr)
    gen = torch.Generator(device=dev).manual_seed(seed)

    def epoch():
        order = torch.randperm(n_samples, device=dev, generator=gen) if size < n_samples else None
        total = torch.zeros((), device=dev)
        for i in range(0, n_samples, size):
            idx = slice(i, i + size) if order is None else order[i:i + size]
            out = net(X[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * out.shape[0]
        return total

    # Reading the losses waits for the device.
    step = windowed(epoch, lambda totals: torch.stack(totals).tolist())

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    info = {"implementation": "torch-eager", "label": label_for("torch-eager", dev.type),
            "backend": "torch", "device": name, "device_kind": dev.type,
            "gpu": dev.type == "cuda", "model": w.name,
            "threads": torch.get_num_threads() if dev.type == "cpu" else None}
    return step, info


def cupy_eager_epoch(mode, n_samples, batch_size=None, seed=0, lr=None, model="small"):
    """``(step, info)``: the network in plain CuPy, on the current CUDA device.

    Batch mode is one step over all N rows at once; mini-batch and sgd an
    eager loop over batches in an order drawn on the device each epoch.
    Raises :class:`nnbackend.BackendUnavailableError` (with the reason)
    where CuPy or a GPU is missing.
    """
    get_backend("cupy")  # refuses, with the reason, where CuPy cannot run
    import cupy

    step = plain_epoch(cupy, mode, n_samples, batch_size, seed, lr, model)
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    info = {"implementation": "cupy-eager", "label": label_for("cupy-eager", "cuda"),
            "backend": "cupy", "device": name, "device_kind": "cuda", "gpu": True,
            "model": workload(model).name}
    return step, info


def plain_epoch(cp, mode, n_samples, batch_size=None, seed=0, lr=None, model="small"):
    """The ``cupy-eager`` peer's ``step`` written against the module ``cp``.

    ``cp`` is CuPy for the peer; NumPy, whose API CuPy copies, runs the same
    lines on the CPU (how the tests check its arithmetic without a GPU).
    """
    w = workload(model)
    size = batch_size_of(mode, batch_size or w.batch_size, n_samples)
    lr = w.lr if lr is None else lr
    params = [cp.asarray(a) for a in initial_params(model, seed)]  # W1, b1, W2, b2, ...
    X, y = data_for(model, n_samples, seed)
    if w.loss == "cross_entropy":
        y = one_hot(y, w.n_outputs)
    X, Y = cp.asarray(X), cp.asarray(y)
    n_layers = len(params) // 2
    moments = [[cp.zeros_like(p) for p in params] for _ in range(2)]  # adam's m and v
    rs = cp.random.RandomState(seed)
    count = 0

    def act(z):
        return cp.maximum(z, 0) if w.hidden_activation == "relu" else 1 / (1 + cp.exp(-z))

    def act_grad(a):
        return (a > 0).astype(a.dtype) if w.hidden_activation == "relu" else a * (1 - a)

    def update(grads):
        nonlocal count
        if w.optimizer == "sgd":
            for j, g in enumerate(grads):
                params[j] -= lr * g
            return
        count += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for j, g in enumerate(grads):
            m, v = moments[0][j], moments[1][j]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** count), v / (1 - b2 ** count)
            params[j] -= lr * m_hat / (cp.sqrt(v_hat) + eps)

    def epoch():
        order = rs.permutation(n_samples) if size < n_samples else None
        total = cp.zeros((), dtype=cp.float32)
        for i in range(0, n_samples, size):
            if order is None:
                Xb, Yb = X[i:i + size], Y[i:i + size]
            else:
                idx = order[i:i + size]
                Xb, Yb = X[idx], Y[idx]
            rows = Xb.shape[0]
            acts = [Xb]
            for k in range(n_layers - 1):
                acts.append(act(acts[-1] @ params[2 * k] + params[2 * k + 1]))
            z = acts[-1] @ params[-2] + params[-1]
            if w.loss == "cross_entropy":  # softmax output
                z = z - z.max(axis=1, keepdims=True)
                e = cp.exp(z)
                s = e.sum(axis=1, keepdims=True)
                total += -cp.sum(Yb * (z - cp.log(s)))
                dz = (e / s - Yb) / rows
            else:  # sigmoid output, ½·squared error
                out = 1 / (1 + cp.exp(-z))
                err = out - Yb
                total += 0.5 * cp.sum(err * err)
                dz = err * out * (1 - out) / rows
            grads = [None] * len(params)
            for k in reversed(range(n_layers)):
                grads[2 * k] = acts[k].T @ dz
                grads[2 * k + 1] = dz.sum(axis=0)
                if k:
                    dz = (dz @ params[2 * k].T) * act_grad(acts[k])
            update(grads)
        return total

    # Reading the losses (one transfer) waits for the device.
    step = windowed(epoch, lambda totals: cp.stack(totals).tolist())
    step.params = params
    return step


def _jax_setup(mode, n_samples, batch_size, seed, lr, device):
    import jax
    import jax.numpy as jnp

    if device:
        platform, _, index = str(device).partition(":")
        dev = jax.devices({"cuda": "gpu"}.get(platform, platform))[int(index or 0)]
    else:
        dev = jax.devices()[0]
    X, y = data_for("small", n_samples, seed)
    X, y = jax.device_put(X, dev), jax.device_put(y, dev)
    params = [jax.device_put(a, dev) for a in initial_params("small", seed)]
    size = batch_size_of(mode, batch_size, n_samples)

    def loss(params, Xb, yb):
        W1, b1, W2, b2 = params
        out = jax.nn.sigmoid(jax.nn.sigmoid(Xb @ W1 + b1) @ W2 + b2)
        return 0.5 * jnp.sum((out - yb) ** 2) / Xb.shape[0]

    def step(params, Xb, yb):
        value, grads = jax.value_and_grad(loss)(params, Xb, yb)
        return [p - lr * g for p, g in zip(params, grads)], value * Xb.shape[0]

    return jax, jnp, dev, X, y, params, size, step


def jax_default_precision(named):
    """What a jitted ``@`` that asks for no precision runs at on a JAX GPU:
    ``named`` (the backend's name for ``jax_default_matmul_precision``) where
    that is set; unset, JAX's default, which lets XLA use TF32 on GPUs that
    have it (nnbackend's own matmuls ask for HIGHEST instead)."""
    import jax

    if jax.config.jax_default_matmul_precision is None:
        return "JAX's default (TF32 on GPUs that have it)"
    return named


def _jax_read(totals):
    """JAX device scalars as floats, in one transfer (waits for the device)."""
    import jax.numpy as jnp

    return [float(t) for t in np.asarray(jnp.stack(totals))]


def _jax_info(implementation, dev):
    gpu = dev.platform != "cpu"
    return {"implementation": implementation, "label": label_for(implementation, dev.platform),
            "backend": "jax", "device": str(dev.device_kind) if gpu else cpu_name(),
            "device_kind": dev.platform, "gpu": gpu, "model": "small"}


def jax_scan_epoch(mode, n_samples, batch_size=64, seed=0, lr=0.1, device=None, model="small"):
    """``(step, info)``: a hand-written jitted ``lax.scan`` epoch over the full batches,
    then the last, partial one (where N is not a multiple of the batch size) as
    one more step, so that it trains every row, as the other implementations do.

    ``device``: a JAX platform (``"cpu"``, ``"gpu"``, ``"gpu:1"``); None for JAX's default.
    """
    _small_only("jax-scan-hand", model)
    jax, jnp, dev, X, y, params, size, one_step = _jax_setup(mode, n_samples, batch_size, seed,
                                                             lr, device)
    n_full = n_samples // size
    rng = np.random.default_rng(seed)

    # X and y are arguments, not closed over: a closure would bake them into the
    # program as constants (compile time and memory growing with N).
    @jax.jit
    def epoch(params, X, y, order):
        def body(carry, idx):
            params, total = carry
            params, value = one_step(params, X[idx], y[idx])
            return (params, total + value), None

        batches = order[: n_full * size].reshape(n_full, size)
        params, total = jax.lax.scan(body, (params, jnp.zeros((), X.dtype)), batches)[0]
        if n_full * size < n_samples:  # the last, partial batch (without it: a step short)
            tail = order[n_full * size:]
            params, value = one_step(params, X[tail], y[tail])
            total = total + value
        return params, total

    whole = jax.jit(one_step)
    state = {"params": params}

    def run_epoch():
        if size < n_samples:
            order = jax.device_put(rng.permutation(n_samples), dev)
            state["params"], total = epoch(state["params"], X, y, order)
        else:  # batch mode: the rows as they are, as the other peers take them
            state["params"], total = whole(state["params"], X, y)
        return total

    return windowed(run_epoch, _jax_read), _jax_info("jax-scan-hand", dev)


def jax_step_loop_epoch(mode, n_samples, batch_size=64, seed=0, lr=0.1, device=None,
                        model="small"):
    """``(step, info)``: a jitted JAX step called from a Python loop over batches."""
    _small_only("jax-jit-step", model)
    jax, jnp, dev, X, y, params, size, one_step = _jax_setup(mode, n_samples, batch_size, seed,
                                                             lr, device)
    jit_step = jax.jit(one_step)
    rng = np.random.default_rng(seed)
    state = {"params": params}

    def run_epoch():
        params = state["params"]
        if size >= n_samples:  # batch mode: the rows as they are, as the other peers take them
            state["params"], total = jit_step(params, X, y)
            return total
        order = jax.device_put(rng.permutation(n_samples), dev)
        Xs, ys = X[order], y[order]
        total = jnp.zeros((), X.dtype)
        for i in range(0, n_samples, size):
            params, value = jit_step(params, Xs[i:i + size], ys[i:i + size])
            total = total + value
        state["params"] = params
        return total

    return windowed(run_epoch, _jax_read), _jax_info("jax-jit-step", dev)
