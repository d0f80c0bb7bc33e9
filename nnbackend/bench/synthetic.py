"""The benchmark's data and starting weights, shared by nnbackend and every peer.

All drawn on the host from seeded NumPy generators, so every implementation
trains the same network from the same start on the same rows.
"""

from __future__ import annotations

from collections import OrderedDict

import functools

import numpy as np

from ..model import MLP
from .models import DATA_OF, workload

__all__ = ["synthetic", "synthetic_mnist", "data_for", "initial_params", "batch_size_of",
           "one_hot"]

# The most recent data sets, so that the implementations timed one after
# another at the same N (and both sides of a ratio) share one draw: at N = 1e7
# (small) or 1e6 (mnist) a draw takes seconds and gigabytes. Kept while they
# hold at most _CACHE_BYTES together (the newest always), at most _CACHE_SIZE
# of them: a GPU check comes back to its large draws after smaller ones.
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 6
_CACHE_BYTES = 6 << 30


def synthetic(n_samples, seed=0, n_features=None):
    """Regression data from a fixed random teacher network, float32 (the ``small`` models).

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
        32 features (the ``small`` model's) unless ``n_features`` says otherwise.
    y : ndarray, shape (n_samples, 1), in (0, 1)
    """
    n_features = workload("small").n_features if n_features is None else n_features
    teacher = np.random.default_rng(12345)
    W1 = teacher.normal(size=(n_features, 16)) / np.sqrt(n_features)
    w2 = teacher.normal(size=(16, 1)) * 1.5
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    y = 1 / (1 + np.exp(-(np.tanh(X @ W1) @ w2)))
    return X, y.astype(np.float32)


def synthetic_mnist(n_samples, seed=0):
    """Ten-class data of MNIST's shape (the ``mnist`` model), float32 pixels in [0, 1).

    Pixels are uniform (MNIST's values, not its images); each row's class is
    the argmax of a fixed random linear teacher, so the classes are learnable
    and about equally frequent.

    Returns
    -------
    X : ndarray, shape (n_samples, 784), float32
    labels : ndarray, shape (n_samples,), int64 class ids in 0..9
    """
    w = workload("mnist")
    teacher = np.random.default_rng(54321).standard_normal((w.n_features, w.n_outputs),
                                                           dtype=np.float32)
    rng = np.random.default_rng(seed)
    X = rng.random((n_samples, w.n_features), dtype=np.float32)
    labels = np.argmax((X - np.float32(0.5)) @ teacher, axis=1).astype(np.int64)
    return X, labels


def one_hot(labels, n_classes):
    """``labels`` (n,) int as an (n, n_classes) float32 one-hot matrix, on the host."""
    out = np.zeros((labels.shape[0], n_classes), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def data_for(model, n_samples, seed=0):
    """``(X, y)`` on the host for ``model``, drawn once per (data set, N, seed) among the
    last few (:data:`.models.DATA_OF`: ``mid`` trains on ``mnist``'s draw).

    The arrays are shared between callers: read them, never write to them.
    ``y`` is (N, 1) float32 targets for ``small`` and ``small16``, (N,) int64 class ids for
    ``mnist`` and ``mid``.
    """
    data = DATA_OF.get(workload(model).name)
    key = (data, int(n_samples), seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    make = {"small": synthetic, "small16": functools.partial(synthetic, n_features=16),
            "mnist": synthetic_mnist}.get(data)
    if make is None:
        raise ValueError(f"no synthetic data for benchmark model {model!r}")
    _CACHE[key] = make(n_samples, seed)
    while len(_CACHE) > 1 and (len(_CACHE) > _CACHE_SIZE or _cached_bytes() > _CACHE_BYTES):
        _CACHE.popitem(last=False)
    return _CACHE[key]


def _cached_bytes():
    return sum(a.nbytes for pair in _CACHE.values() for a in pair)


def initial_params(model="small", seed=0):
    """The starting weights every implementation copies: ``[W1, b1, W2, b2, ...]``.

    ``W`` is (fan_in, fan_out) and ``b`` (fan_out,), float32, as
    :class:`nnbackend.MLP` draws them on the host for ``seed``.
    """
    w = workload(model)
    net = MLP(list(w.layers), hidden_activation=w.hidden_activation,
              output_activation=w.output_activation, loss=w.loss, backend="numpy",
              dtype="float32", seed=seed)
    return [np.array(a) for pair in net.params for a in pair]


def batch_size_of(mode, batch_size, n_samples):
    """Rows per step: N in batch mode, 1 in sgd, else ``batch_size`` (at most N)."""
    return {"batch": n_samples, "sgd": 1}.get(mode, min(batch_size, n_samples))
