"""Toy and file datasets, task inference and a train/validation split.

Everything here runs on the host with NumPy: datasets are made or read once,
then ``fit`` moves them to the backend's device (see ``data.py``). This
module makes the toy sets and the split; reading data files
(:mod:`nnbackend.datafiles`) and inferring the task from labels
(:mod:`nnbackend.tasks`) have their own modules, whose names are
importable from here too.

==========  ==========  ========  ==================  ===========================
name        default n   features  y                   task
==========  ==========  ========  ==================  ===========================
xor         4           2         float64 0/1         binary (not linearly separable)
and         4           2         float64 0/1         binary (linearly separable)
moons       500         2         float64 0/1         binary
spirals     600         2         int64 0..2          multiclass (3 arms)
digits      1797        64        int64 0..9          multiclass (needs scikit-learn)
synthetic   1000        32        float64             regression
==========  ==========  ========  ==================  ===========================

Every generated set draws its random values from
``np.random.default_rng(seed)``, so a seed gives the same arrays on every
machine and backend. ``synthetic``'s target function is the exception: its
weights come from a fixed seed (with ``n_features``), whatever ``seed`` is;
``seed`` draws its rows and their noise.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .checks import check_int
from .datafiles import load_data_file, load_features_file, read_data_file  # noqa: F401
from .tasks import encode_labels, infer_task

__all__ = [
    "DATASETS",
    "DatasetUnavailableError",
    "make_dataset",
    "load_data_file",
    "read_data_file",
    "infer_task",
    "encode_labels",
    "train_val_split",
]

DATASETS = ("xor", "and", "moons", "spirals", "digits", "synthetic")

_DEFAULT_N = {"xor": 4, "and": 4, "moons": 500, "spirals": 600, "digits": 1797, "synthetic": 1000}
# The fewest samples that still hold every class (xor/and: each corner once).
_MIN_N = {"xor": 4, "and": 4, "moons": 2, "spirals": 3, "digits": 1, "synthetic": 1}
_N_FEATURES = {"xor": 2, "and": 2, "moons": 2, "spirals": 2, "digits": 64}

_CORNERS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
_CORNER_LABELS = {"xor": np.array([0.0, 1.0, 1.0, 0.0]), "and": np.array([0.0, 0.0, 0.0, 1.0])}

# The synthetic target function is drawn from its own fixed seed, not from
# ``seed``: different seeds then give fresh samples of the *same* task, so a
# set drawn with one seed can validate a model trained on another.
_SYNTHETIC_FUNCTION_SEED = 20240601
_SYNTHETIC_HIDDEN = 8
_SYNTHETIC_NOISE = 0.1

_INSTALL_HINT = "pip install 'nnbackend[datasets]' (or: pip install scikit-learn)"


class DatasetUnavailableError(RuntimeError):
    """A dataset needs an optional package that is not installed."""


# -- generated and bundled datasets -------------------------------------------------


def make_dataset(
    name: str, n_samples: int | None = None, seed: int = 0, n_features: int | None = None
):
    """A named toy dataset as host NumPy arrays.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    n_samples : int, optional
        Rows to return; None gives the set's default (see the module table).
        ``xor``/``and``: None gives the 4 corners exactly; a number cycles
        through the corners in order (0,0), (0,1), (1,0), (1,1) and adds
        Gaussian jitter of standard deviation 0.1, so it must be >= 4.
        ``moons`` needs >= 2, ``spirals`` >= 3 (one row per class).
        ``digits``: None gives all 1797 images in scikit-learn's order; a
        number gives the first ``n_samples`` rows of a permutation drawn from
        ``seed`` (a subsample, not stratified, so a small one may miss a class).
    seed : int
        Seed of the NumPy Generator the random draws come from. The same
        seed gives identical arrays; ``xor``/``and`` without ``n_samples``
        and ``digits`` without ``n_samples`` ignore it. ``synthetic`` draws
        ``X`` and the noise added to ``y`` from it, but not its target
        function: its weights come from the module's own fixed seed and
        ``n_features``, so every ``seed`` samples the same task (a set drawn
        with one seed can validate a model trained on another).
    n_features : int, optional
        Feature count of ``synthetic`` (default 32). The other sets have a
        fixed count; passing it for them is allowed only if it matches.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)
    y : ndarray, shape (n_samples,)
        float64 0/1 for ``xor``, ``and``, ``moons``; int64 class ids for
        ``spirals`` (0..2) and ``digits`` (0..9); float64 regression target
        for ``synthetic``.

    Raises
    ------
    ValueError
        Unknown name, too few samples, or an ``n_features`` a set cannot take.
    TypeError
        ``n_samples``, ``seed`` or ``n_features`` not an integer.
    DatasetUnavailableError
        ``digits`` without scikit-learn installed.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    seed = check_int("seed", seed, 0)
    if n_samples is not None:
        n_samples = check_int("n_samples", n_samples, 1)
        if n_samples < _MIN_N[name]:
            raise ValueError(
                f"n_samples must be >= {_MIN_N[name]} for {name!r} "
                f"(one sample of each class), got {n_samples}"
            )
    if n_features is not None:
        n_features = check_int("n_features", n_features, 1)
        if name != "synthetic" and n_features != _N_FEATURES[name]:
            raise ValueError(
                f"dataset {name!r} has {_N_FEATURES[name]} features; "
                f"n_features={n_features} applies to 'synthetic' only"
            )
    rng = np.random.default_rng(seed)
    if name == "digits":
        return _digits(n_samples, rng)
    n = _DEFAULT_N[name] if n_samples is None else n_samples
    try:
        if name in ("xor", "and"):
            return _corners(name, n_samples, rng)
        if name == "moons":
            return _moons(n, rng)
        if name == "spirals":
            return _spirals(n, rng)
        return _synthetic(n, 32 if n_features is None else n_features, rng)
    except ValueError as exc:  # NumPy's "Maximum allowed size exceeded" names no argument
        wide = "" if n_features is None else f", n_features={n_features}"
        raise ValueError(f"n_samples={n}{wide}: more than an array can hold ({exc})") from None


def _corners(name, n_samples, rng):
    labels = _CORNER_LABELS[name]
    if n_samples is None:
        return _CORNERS.copy(), labels.copy()
    idx = np.arange(n_samples) % 4
    X = _CORNERS[idx] + rng.normal(0.0, 0.1, size=(n_samples, 2))
    return X, labels[idx]


def _moons(n, rng, noise=0.1):
    # The construction of sklearn.datasets.make_moons: an upper half circle
    # (class 0) and a lower one shifted right and down (class 1).
    n_outer = n // 2
    n_inner = n - n_outer
    t_out = np.linspace(0.0, np.pi, n_outer)
    t_in = np.linspace(0.0, np.pi, n_inner)
    X = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            np.stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)], axis=1),
        ]
    )
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)])
    X = X + rng.normal(0.0, noise, size=X.shape)
    # Shuffled so that a prefix or an unshuffled batch is not one class.
    order = rng.permutation(n)
    return X[order], y[order]


def _spirals(n, rng, n_arms=3, turns=4.0, noise=0.2):
    # Three arms winding out from the origin, each ``turns`` radians long,
    # rotated 2*pi/3 apart; noise jitters the angle (the CS231n spiral set,
    # less its radius 0: the arms would share the origin with three labels).
    counts = [n // n_arms + (1 if k < n % n_arms else 0) for k in range(n_arms)]
    Xs, ys = [], []
    for k, m in enumerate(counts):
        r = np.linspace(0.0, 1.0, m + 1)[1:]
        theta = k * 2.0 * np.pi / n_arms + r * turns + rng.normal(0.0, noise, size=m)
        Xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(m, k, dtype=np.int64))
    X, y = np.concatenate(Xs), np.concatenate(ys)
    order = rng.permutation(n)
    return X[order], y[order]


def _synthetic(n, d, rng):
    # y = a . tanh(X W) / sqrt(h) + noise: smooth, nonlinear, and of unit-ish
    # scale whatever d is (W's columns have norm ~1, so X W ~ N(0, 1)).
    f = np.random.default_rng([_SYNTHETIC_FUNCTION_SEED, d])
    W = f.normal(0.0, 1.0 / math.sqrt(d), size=(d, _SYNTHETIC_HIDDEN))
    a = f.normal(0.0, 1.0, size=_SYNTHETIC_HIDDEN)
    X = rng.normal(0.0, 1.0, size=(n, d))
    y = np.tanh(X @ W) @ a / math.sqrt(_SYNTHETIC_HIDDEN)
    y = y + rng.normal(0.0, _SYNTHETIC_NOISE, size=n)
    return X, y


def _digits(n_samples, rng):
    try:
        # ``import sklearn`` first: it fails when the package is absent (or
        # blocked), even if a submodule is still cached in sys.modules.
        import sklearn  # noqa: F401
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DatasetUnavailableError(
            f"the 'digits' dataset needs scikit-learn, an optional extra: {_INSTALL_HINT}"
        ) from exc
    bunch = load_digits()
    # Pixels are 0..16 ink counts; scaled to [0, 1] like the other inputs.
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    if n_samples is None:
        return X, y
    if n_samples > X.shape[0]:
        raise ValueError(f"'digits' has {X.shape[0]} samples; n_samples={n_samples} is too many")
    idx = rng.permutation(X.shape[0])[:n_samples]
    return X[idx], y[idx]


# -- splitting -----------------------------------------------------------------------


def _stratum_ids(y: np.ndarray):
    """Class id of each row if ``y`` holds class labels, else None."""
    try:
        task = infer_task(y)
    except ValueError:
        return None
    if task["kind"] == "regression":
        return None
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    return encode_labels(y, task["classes"])


def train_val_split(X, y, val_fraction: float, seed: int = 0, stratify: bool = True, *,
                    name: str = "val_fraction"):
    """Split rows into a training and a validation set.

    ``round(val_fraction * n)`` rows (rounding halves up) go to validation.
    With ``stratify`` and class labels (as :func:`infer_task` reads ``y``),
    each class gives its share to validation (largest remainders get the
    leftover rows, preferring classes that keep a training row); regression
    targets are split at random whatever ``stratify`` says. Both sides keep
    the rows' original relative order. The same seed gives the same split.

    Parameters
    ----------
    X : array_like, shape (n_samples, ...)
    y : array_like, shape (n_samples,) or (n_samples, k)
    val_fraction : float
        Strictly between 0 and 1.
    seed : int
    stratify : bool
    name : str, default "val_fraction"
        What a refusal calls the fraction (the caller's own name for it).

    Returns
    -------
    X_train, y_train, X_val, y_val : ndarray
        NumPy arrays with the dtypes of ``X`` and ``y``.

    Raises
    ------
    ValueError
        ``val_fraction`` outside (0, 1), mismatched rows, or a split that
        would leave either side empty.
    TypeError
        ``val_fraction`` not a real number, ``seed`` not an integer.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise TypeError(
            f"{name} must be a number, got {type(val_fraction).__name__} {val_fraction!r}"
        )
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {val_fraction}")
    seed = check_int("seed", seed, 0)
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError("X and y must have a first (sample) dimension")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    train_idx, val_idx = split_indices(y, val_fraction, np.random.default_rng(seed), stratify,
                                       name)
    return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


def split_indices(y, val_fraction: float, rng: np.random.Generator, stratify: bool = True,
                  name: str = "val_fraction"):
    """Row indices of a train/validation split (see :func:`train_val_split`).

    Parameters
    ----------
    y : ndarray, shape (n_samples,) or (n_samples, k)
        Targets; class labels (or one-hot rows) are split per class.
    val_fraction : float in (0, 1)
    rng : numpy.random.Generator
    stratify : bool
    name : str
        What a refusal calls the fraction.

    Returns
    -------
    train_idx, val_idx : int64 ndarrays, each in increasing order
    """
    n = y.shape[0]
    n_val = int(math.floor(n * float(val_fraction) + 0.5))
    if n_val < 1 or n_val > n - 1:
        raise ValueError(
            f"{name}={val_fraction} of {n} samples gives {n_val} validation and "
            f"{n - n_val} training samples; each side needs at least one"
        )
    strata = _stratum_ids(y) if stratify else None
    if strata is None:
        val_idx = rng.permutation(n)[:n_val]
    else:
        val_idx = _stratified_val(strata, n_val, rng)
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _stratified_val(strata: np.ndarray, n_val: int, rng: np.random.Generator) -> np.ndarray:
    n = strata.shape[0]
    ids, counts = np.unique(strata, return_counts=True)
    # Exact integer quotas: class c gets floor(n_c * n_val / n) rows, and the
    # rows left over go one each to the largest remainders.
    base = counts * n_val // n
    remainder = counts * n_val % n
    left = n_val - int(base.sum())
    tiebreak = rng.random(ids.shape[0])
    # Sort key: classes that would keep a training row first, then larger
    # remainder, then a seeded random tiebreak (lexsort's last key is primary).
    empties_train = base + 1 >= counts
    rank = np.lexsort((tiebreak, -remainder, empties_train))
    take = base.copy()
    take[rank[:left]] += 1
    chosen = []
    for cls, k in zip(ids, take):
        members = np.flatnonzero(strata == cls)
        chosen.append(members[rng.permutation(members.shape[0])[:k]])
    return np.concatenate(chosen)
