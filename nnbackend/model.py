"""The multi-layer perceptron: parameters, forward, backward, save and load.

The math lives in pure functions over a flat parameter list
``[W0, b0, W1, b1, ...]`` (so later executors can compile them); :class:`MLP`
holds the parameters, the backend and the configuration around them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .backend import Backend, backend_of, get_backend
from .data import array_backend, as_features, as_targets, _check_int, _is_host, n_rows

__all__ = ["MLP", "NetSpec", "forward", "backward", "loss_and_grads_rows", "DEFAULT_CHUNK_SIZE"]

# Rows per chunk when a batch is too large to push through at once: at 2048
# rows a 64-unit float32 layer's activations take 512 KiB, which stays in a
# CPU's L2 cache, and full-batch memory stays flat whatever N is.
DEFAULT_CHUNK_SIZE = 2048


@dataclass(frozen=True)
class NetSpec:
    """What the math needs beyond the parameters."""

    hidden_activation: str
    output_activation: str
    loss: str
    reduction: str


def forward(params, X, spec: NetSpec, xp=None):
    """Forward pass keeping what the backward pass needs.

    Parameters
    ----------
    params : list of arrays
        ``[W0, b0, W1, b1, ...]``, ``Wi`` of shape (fan_in, fan_out).
    X : array, shape (n, n_features)

    Returns
    -------
    xs : list of arrays
        ``xs[i]`` is layer i's input, shape (n, fan_in_i); ``xs[0]`` is ``X``.
    zs : list of arrays
        ``zs[i]`` is layer i's pre-activation, shape (n, fan_out_i).
    a : array, shape (n, n_outputs)
        The network's output (after the output activation).
    """
    xs, zs = [X], []
    n_layers = len(params) // 2
    # Resolved once per call, not per layer: this runs on every step.
    hidden = K._activation(spec.hidden_activation)[0]
    for i in range(n_layers):
        z = K.dense_forward(xs[-1], params[2 * i], params[2 * i + 1], xp=xp)
        zs.append(z)
        if i < n_layers - 1:
            xs.append(hidden(z, xp=xp))
    return xs, zs, K.activation_forward(spec.output_activation, zs[-1], xp=xp)


def backward(params, xs, zs, dz, spec: NetSpec, xp=None):
    """Backpropagate the output logits' gradient ``dz`` (shape (n, n_outputs)).

    Returns the gradients in the layout of ``params``: ``[dW0, db0, ...]``.
    """
    n_layers = len(params) // 2
    grads = [None] * len(params)
    hidden_backward = K._activation(spec.hidden_activation)[1]
    for i in reversed(range(n_layers)):
        dx, dW, db = K.dense_backward(xs[i], params[2 * i], dz, need_dx=i > 0, xp=xp)
        grads[2 * i], grads[2 * i + 1] = dW, db
        if i > 0:
            # xs[i] is the activation of zs[i - 1].
            dz = hidden_backward(zs[i - 1], xs[i], dx, xp=xp)
    return grads


def loss_and_grads_rows(params, spec: NetSpec, rows, n_batch: int, chunk_size: int,
                        multiclass=None, xp=None):
    """Loss and gradients over ``n_batch`` rows, in chunks of at most ``chunk_size``.

    Parameters
    ----------
    rows : callable
        ``rows(start, stop) -> (X, Y)``, the batch's rows ``start:stop`` as
        arrays of shapes (stop - start, n_features) and (stop - start, n_outputs).
    n_batch : int
        Rows in the batch; ``"mean"`` gradients divide by it.
    multiclass : bool or None
        If not None, also count correct predictions (see ``kernels.n_correct``).

    Returns
    -------
    loss_sum : 0-D array
        The per-sample losses *summed* over the batch, whatever the reduction
        (the caller divides for the mean), left on the device.
    grads : list of arrays
        Gradients of the batch loss (with the model's reduction) in the
        layout of ``params``. One chunk gives exactly the one-shot result;
        several give the same sum, accumulated in a different order.
    correct : 0-D array or None
        Correct predictions in the batch, when ``multiclass`` is not None.
    """
    loss_sum, grads, correct = None, None, None
    for start in range(0, n_batch, chunk_size):
        X, Y = rows(start, min(start + chunk_size, n_batch))
        xs, zs, a = forward(params, X, spec, xp)
        loss, dz = K.loss_and_backward(
            spec.loss, spec.output_activation, zs[-1], a, Y, spec.reduction, n_samples=n_batch, xp=xp
        )
        chunk_grads = backward(params, xs, zs, dz, spec, xp)
        hits = None if multiclass is None else K.n_correct(a, Y, multiclass, xp=xp)
        if grads is None:
            loss_sum, grads, correct = loss, chunk_grads, hits
        else:
            loss_sum = loss_sum + loss
            grads = [g + c for g, c in zip(grads, chunk_grads)]
            correct = None if hits is None else correct + hits
    return loss_sum, grads, correct


def evaluate_rows(params, spec: NetSpec, rows, n_rows: int, chunk_size: int, multiclass=None,
                  xp=None):
    """Summed loss (and correct predictions) over ``n_rows`` rows, forward only.

    ``rows`` is as in :func:`loss_and_grads_rows`. Returns ``(loss_sum,
    correct)``, 0-D arrays left on the device (``correct`` None when
    ``multiclass`` is None).
    """
    loss_sum, correct = None, None
    for start in range(0, n_rows, chunk_size):
        X, Y = rows(start, min(start + chunk_size, n_rows))
        _, zs, a = forward(params, X, spec, xp)
        loss = K.loss_forward(spec.loss, spec.output_activation, zs[-1], a, Y, "sum", xp=xp)
        hits = None if multiclass is None else K.n_correct(a, Y, multiclass, xp=xp)
        loss_sum = loss if loss_sum is None else loss_sum + loss
        if hits is not None:
            correct = hits if correct is None else correct + hits
    return loss_sum, correct


def _init_params(sizes, hidden_activation, rng: np.random.Generator):
    """Host (float64) initial parameters, as scikit-learn's MLP draws them.

    Weights are uniform in ±sqrt(factor / (fan_in + fan_out)), factor 2 for
    sigmoid networks (Glorot's bound for the logistic function) and 6
    otherwise. Biases start at 0.
    """
    factor = 2.0 if hidden_activation == "sigmoid" else 6.0
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        params.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)))
        params.append(np.zeros(fan_out))
    return params


def _dtype_name(dtype) -> str:
    """'float32' or 'float64' from a name or a NumPy dtype (``np.float32``);
    anything else is passed on as text for the backend to refuse by name."""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        return np.dtype(dtype).name
    return str(dtype)


class MLP:
    """A fully connected network trained with hand-written backprop on any backend.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, hidden..., n_outputs]``, at least two entries.
    hidden_activation : {'sigmoid', 'tanh', 'relu', 'identity'}
    output_activation : {'sigmoid', 'softmax', 'identity'}
    loss : {'mse', 'bce', 'cross_entropy'}
        ``mse`` is ½·squared error; ``bce`` needs a sigmoid output and
        ``cross_entropy`` a softmax output (both are computed from logits).
    reduction : {'mean', 'sum'}
        How per-sample losses combine over a batch: ``'sum'`` is the seed
        tutorial's update, ``'mean'`` divides it by the batch's rows.
    backend : str, Backend or None
        ``None`` takes ``$NNBACKEND_BACKEND`` or ``'numpy'``, or else the
        backend of the arrays in ``params``; a model built with ``None`` also
        moves to the backend of the first array-API ``X`` it is given.
    device : optional
        The backend's device (see :func:`nnbackend.get_backend`).
    dtype : {'float32', 'float64'} or the NumPy dtype of one
    seed : int or None
        Seeds the host generator that draws the initial weights and, unless
        ``fit`` is given its own ``seed``, the shuffling.
    params : list of (W, b) or None
        Initial parameters, ``W`` of shape (fan_in, fan_out) and ``b`` of
        shape (fan_out,), as host data or arrays of the backend.
    """

    def __init__(
        self,
        layer_sizes,
        hidden_activation="sigmoid",
        output_activation="sigmoid",
        loss="mse",
        reduction="mean",
        backend=None,
        device=None,
        dtype="float32",
        seed=0,
        params=None,
    ):
        try:
            sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else None
        except TypeError:  # a bare number
            sizes = None
        if not sizes or len(sizes) < 2:
            raise ValueError(
                "layer_sizes must list at least the input and output sizes, "
                f"e.g. [2, 4, 1]; got {layer_sizes!r}"
            )
        for s in sizes:
            _check_int("each entry of layer_sizes", s)
        self.layer_sizes = [int(s) for s in sizes]
        if hidden_activation not in K.HIDDEN_ACTIVATIONS:
            raise ValueError(
                f"unknown hidden_activation {hidden_activation!r}; choose one of "
                f"{list(K.HIDDEN_ACTIVATIONS)}"
            )
        if output_activation not in K.OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"unknown output_activation {output_activation!r}; choose one of "
                f"{list(K.OUTPUT_ACTIVATIONS)}"
            )
        K._check_loss(loss, output_activation)
        K._check_reduction(reduction)
        if output_activation == "softmax" and self.layer_sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units")
        self.spec = NetSpec(hidden_activation, output_activation, loss, reduction)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an integer or None, got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be >= 0 (NumPy's generators take no negative seeds), got {seed}")
        self.seed = seed

        # A model whose backend was not named follows its data (see _follow).
        self._backend_named = backend is not None or device is not None
        if backend is None and device is None and params is not None:
            arrays = [a for pair in params for a in pair]
            if arrays and not _is_host(arrays[0]):
                backend = backend_of(arrays[0])
        self.backend: Backend = get_backend(backend, device)
        self.dtype = _dtype_name(dtype)
        self._dtype = self.backend.dtype(self.dtype)

        # Set by fit: the optimizer state and shuffling stream that
        # fit(resume=True) continues; saved in checkpoints.
        self.train_state = None
        # Free-form facts about the task (class names, ...), saved in checkpoints.
        self.metadata = {}
        if params is None:
            rng = np.random.default_rng(seed)
            host = _init_params(self.layer_sizes, hidden_activation, rng)
            self._flat = [self.backend.asarray(p, dtype=self._dtype) for p in host]
        else:
            self._flat = self._check_params(params)

    # -- configuration --------------------------------------------------------------
    hidden_activation = property(lambda self: self.spec.hidden_activation)
    output_activation = property(lambda self: self.spec.output_activation)
    loss = property(lambda self: self.spec.loss)
    reduction = property(lambda self: self.spec.reduction)

    @property
    def params(self):
        """``[(W, b), ...]``: arrays of the backend, on its device."""
        return [(self._flat[i], self._flat[i + 1]) for i in range(0, len(self._flat), 2)]

    def __repr__(self):
        return (
            f"MLP({self.layer_sizes}, hidden_activation={self.hidden_activation!r}, "
            f"output_activation={self.output_activation!r}, loss={self.loss!r}, "
            f"reduction={self.reduction!r}, backend={self.backend.name!r}, "
            f"device={self.backend.device!r}, dtype={self.dtype!r})"
        )

    def _check_params(self, params):
        params = list(params)
        n_layers = len(self.layer_sizes) - 1
        if len(params) != n_layers:
            raise ValueError(
                f"params must hold {n_layers} (W, b) pairs for layer_sizes "
                f"{self.layer_sizes}; got {len(params)}"
            )
        flat = []
        for i, pair in enumerate(params):
            try:
                W, b = pair
            except (TypeError, ValueError):
                raise ValueError(f"params[{i}] must be a (W, b) pair") from None
            fan_in, fan_out = self.layer_sizes[i], self.layer_sizes[i + 1]
            for name, a, shape in (("W", W, (fan_in, fan_out)), ("b", b, (fan_out,))):
                label = f"params[{i}] {name}"
                if _is_host(a):
                    a = np.asarray(a)
                    if a.dtype.kind not in "biuf":
                        raise TypeError(f"{label} must hold real numbers; got dtype {a.dtype}")
                    if not np.all(np.isfinite(a)):
                        raise ValueError(f"{label} contains NaN or infinity")
                else:
                    source = array_backend(label, a)
                    if not source.xp.isdtype(a.dtype, ("real floating", "integral", "bool")):
                        raise TypeError(f"{label} must hold real numbers; got dtype {a.dtype}")
                    if source.name != self.backend.name:
                        a = source.to_host(a)
                if tuple(a.shape) != shape:
                    raise ValueError(f"{label} must have shape {shape}; got {tuple(a.shape)}")
                # A copy: the model never shares (and so never changes) the caller's arrays.
                a = self.backend.xp.asarray(a, dtype=self._dtype, device=self.backend.device, copy=True)
                # Arrays of a backend skipped the host check above; one sync
                # per array at construction is cheap.
                if not bool(self.backend.xp.all(self.backend.xp.isfinite(a))):
                    raise ValueError(f"{label} contains NaN or infinity (in dtype {self.dtype})")
                flat.append(a)
        return flat

    def _follow(self, X):
        """Move to ``X``'s backend and device if the model's backend was not named."""
        if self._backend_named or _is_host(X):
            return
        other = array_backend("X", X)
        if other.name == self.backend.name and str(other.device) == str(self.backend.device):
            return
        host = [self.backend.to_host(p) for p in self._flat]
        self.backend = other
        self._dtype = other.dtype(self.dtype)
        self._flat = [other.asarray(p, dtype=self._dtype) for p in host]

    def _features(self, X):
        self._follow(X)
        # The input checks compute on lazy data (one pass): on the backend's scheduler.
        with self.backend.compute_context():
            X = as_features(self.backend, X, self._dtype)
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but the network expects {self.layer_sizes[0]}"
            )
        return X

    def _targets(self, y, n_samples):
        with self.backend.compute_context():
            return as_targets(
                self.backend, y, self.loss, self.layer_sizes[-1], n_samples, self._dtype
            )

    # -- math ----------------------------------------------------------------------
    def predict(self, X):
        """The network's output for ``X``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        array, shape (n_samples, n_outputs)
            After the output activation (probabilities for sigmoid and
            softmax), in the model's namespace and on its device.
        """
        X = self._features(X)
        return forward(self._flat, X, self.spec, self.backend.xp)[2]

    def loss_and_grads(self, X, y, chunk_size=DEFAULT_CHUNK_SIZE):
        """Loss and exact gradients over all of ``X`` (computed in row chunks).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples, n_outputs) or (n_samples,)
        chunk_size : int
            Rows pushed through the network at once; memory does not grow
            with ``n_samples``, and the result is the one-shot one to rounding.

        Returns
        -------
        loss : float
        grads : list of (dW, db)
            Arrays of the model's namespace, shaped like ``params``.
        """
        X = self._features(X)
        n = n_rows(X)
        Y = self._targets(y, n)
        chunk_size = self.backend.rows_per_pass(X, _check_int("chunk_size", chunk_size))
        loss_sum, grads, _ = loss_and_grads_rows(
            self._flat,
            self.spec,
            lambda i, j: (X[i:j, :], Y[i:j, :]),
            n,
            chunk_size,
            xp=self.backend.xp,
        )
        loss = float(self.backend.to_host(loss_sum))
        if self.reduction == "mean":
            loss /= n
        return loss, [(grads[i], grads[i + 1]) for i in range(0, len(grads), 2)]

    def evaluate(self, X, y, chunk_size=DEFAULT_CHUNK_SIZE):
        """Loss (with the model's reduction) and, for sigmoid and softmax
        outputs, accuracy over ``X``, ``y``; forward passes only, in chunks.

        Returns
        -------
        dict
            ``{"loss": float}``, plus ``"accuracy"`` (the share of correct
            rows for softmax, of correct outputs for sigmoid).
        """
        X = self._features(X)
        n = n_rows(X)
        Y = self._targets(y, n)
        multiclass = {"softmax": True, "sigmoid": False}.get(self.output_activation)
        loss_sum, correct = evaluate_rows(
            self._flat, self.spec, lambda i, j: (X[i:j, :], Y[i:j, :]), n,
            self.backend.rows_per_pass(X, _check_int("chunk_size", chunk_size)), multiclass,
            self.backend.xp,
        )
        scalars = [loss_sum] if correct is None else [loss_sum, correct]
        host = self.backend.to_host(self.backend.xp.stack(scalars)).astype(np.float64)
        out = {"loss": float(host[0]) / (n if self.reduction == "mean" else 1)}
        if correct is not None:
            out["accuracy"] = float(host[1]) / (n * (1 if multiclass else self.layer_sizes[-1]))
        return out

    def fit(self, X, y, mode="minibatch", batch_size=32, epochs=100, lr=0.1,
            optimizer="sgd", shuffle=True, seed=None, progress=False, **options):
        """Train in place; see :func:`nnbackend.train.fit`. Returns a ``History``."""
        from .train import fit

        return fit(self, X, y, mode=mode, batch_size=batch_size, epochs=epochs, lr=lr,
                   optimizer=optimizer, shuffle=shuffle, seed=seed, progress=progress,
                   **options)

    # -- checkpoints ---------------------------------------------------------------
    def config(self):
        """The constructor arguments that rebuild this architecture."""
        return {
            "layer_sizes": self.layer_sizes,
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
            "loss": self.loss,
            "reduction": self.reduction,
            "dtype": self.dtype,
            "seed": self.seed,
        }

    def save(self, path):
        """Write architecture, parameters, metadata and optimizer state to ``path`` (.npz).

        Written to a temporary file beside ``path`` and renamed over it, so a
        crash never leaves a half-written file where a good one was.
        """
        from .checkpoint import save

        save(self, path)

    @classmethod
    def load(cls, path, backend=None, device=None):
        """A model from a file written by :meth:`save`, on ``backend`` / ``device``.

        Raises ``ValueError`` naming the file for a missing, corrupt or
        foreign file; never executes code from it.
        """
        from .checkpoint import load

        return load(cls, path, backend=backend, device=device)
