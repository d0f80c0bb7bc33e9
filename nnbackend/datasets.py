"""Toy and file datasets, task inference and a train/validation split.

Everything here runs on the host with NumPy: datasets are made or read once,
then ``fit`` moves them to the backend's device (see ``data.py``).

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

Every generated set draws from ``np.random.default_rng(seed)`` alone, so a
seed gives the same arrays on every machine and backend.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import zipfile

import numpy as np

__all__ = [
    "DATASETS",
    "DatasetUnavailableError",
    "make_dataset",
    "load_data_file",
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


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


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
        Seed of the NumPy Generator every random draw comes from. The same
        seed gives identical arrays; ``xor``/``and`` without ``n_samples``
        and ``digits`` without ``n_samples`` ignore it.
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
    seed = _check_int("seed", seed, 0)
    if n_samples is not None:
        n_samples = _check_int("n_samples", n_samples, 1)
        if n_samples < _MIN_N[name]:
            raise ValueError(
                f"n_samples must be >= {_MIN_N[name]} for {name!r} "
                f"(one sample of each class), got {n_samples}"
            )
    if n_features is not None:
        n_features = _check_int("n_features", n_features, 1)
        if name != "synthetic" and n_features != _N_FEATURES[name]:
            raise ValueError(
                f"dataset {name!r} has {_N_FEATURES[name]} features; "
                f"n_features={n_features} applies to 'synthetic' only"
            )
    rng = np.random.default_rng(seed)
    if name in ("xor", "and"):
        return _corners(name, n_samples, rng)
    if name == "digits":
        return _digits(n_samples, rng)
    n = _DEFAULT_N[name] if n_samples is None else n_samples
    if name == "moons":
        return _moons(n, rng)
    if name == "spirals":
        return _spirals(n, rng)
    return _synthetic(n, 32 if n_features is None else n_features, rng)


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


# -- files ---------------------------------------------------------------------------


def _data_path(path):
    """``(path, lower-case extension)`` of an existing data file, or a ValueError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a data file")
    return path, os.path.splitext(path)[1].lower()


def load_data_file(path, target: str | None = None, return_classes: bool = False):
    """Features and labels from a ``.npz`` or ``.csv`` file.

    ``.npz``: arrays ``X`` (2-D, numeric) and ``y`` (1-D or 2-D, same rows;
    numeric or strings), read with ``allow_pickle=False``. ``target``, if
    given, names the label array instead of ``y``.

    ``.csv``: a header row of column names, then one sample per row.
    ``target`` (required) names the label column; every other column is a
    numeric feature. Blank lines are skipped.

    Labels: numeric labels stay numbers (from a csv: int64 if all whole,
    else float64; from an npz: int64 for integer/bool arrays, float64 for
    float arrays). String labels become int64 class ids in the sorted order
    of the distinct strings.

    Parameters
    ----------
    path : str or os.PathLike
    target : str, optional
    return_classes : bool
        Also return the class names of string labels (None for numeric ones).

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)
    y : ndarray of int64 or float64, shape (n_samples,) or (n_samples, k)
    classes : list of str or None
        Only if ``return_classes``; ``classes[i]`` is the label of id ``i``.

    Raises
    ------
    ValueError
        For every problem with the file, its name included: missing file,
        unknown extension, unreadable or empty file, missing arrays or
        columns, bad shapes, non-numeric or non-finite values.
    """
    path, ext = _data_path(path)
    if ext == ".npz":
        X, y, classes = _load_npz(path, "y" if target is None else target)
    elif ext == ".csv":
        if target is None:
            raise ValueError(f"reading {path} needs a target (label) column; its columns are "
                             f"{_csv_rows(path)[0]}")
        X, y, classes = _load_csv(path, target)
    else:
        raise ValueError(f"unsupported file type {ext or '(none)'!r} for {path}; use .npz or .csv")
    return (X, y, classes) if return_classes else (X, y)


def _load_npz(path, key):
    """X, y and class names from an npz; ``key`` None reads X alone (y None)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # np.load raises EOFError on an empty file, ValueError on other junk.
        raise ValueError(f"could not read {path} as .npz: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not an .npz archive (it holds a single array)")
    with archive:
        missing = [k for k in ("X", key) if k is not None and k not in archive.files]
        if missing:
            raise ValueError(
                f"{path} lacks array(s) {missing}; it holds {sorted(archive.files)} "
                f"(save with np.savez(path, X=X, {key}=y))"
            )
        try:
            X = archive["X"]
            y = None if key is None else archive[key]
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            # Object arrays land here: allow_pickle=False refuses them.
            raise ValueError(f"could not read arrays from {path}: {exc}") from None
    if X.ndim != 2:
        raise ValueError(f"X in {path} must be 2-D (n_samples, n_features); got shape {X.shape}")
    if y is not None and y.ndim not in (1, 2):
        raise ValueError(f"{key} in {path} must be 1-D or 2-D; got shape {y.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{path} has no samples (X has 0 rows)")
    if X.shape[1] == 0:
        raise ValueError(f"X in {path} has 0 features")
    if y is not None and y.shape[0] != X.shape[0]:
        raise ValueError(f"in {path}, X has {X.shape[0]} rows but {key} has {y.shape[0]}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X in {path} must be numeric; got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"X in {path} contains NaN or infinity")
    classes = None
    if y is None:
        return X, None, None
    if y.dtype.kind in "US":
        if y.ndim != 1:
            raise ValueError(f"string labels {key} in {path} must be 1-D; got shape {y.shape}")
        names = y.astype(str)
        classes = sorted(set(names.tolist()))
        y = encode_labels(names, classes)
    elif y.dtype.kind in "biu":
        y = y.astype(np.int64)
    elif y.dtype.kind == "f":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise ValueError(f"{key} in {path} contains NaN or infinity")
    else:
        raise ValueError(f"{key} in {path} must be numbers or strings; got dtype {y.dtype}")
    return X, y, classes


def load_features_file(path, drop: str | None = None):
    """Features alone, for prediction: array ``X`` of an ``.npz``, or every
    column of a ``.csv`` except ``drop`` (a label column, skipped if present).

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)

    Raises ``ValueError`` naming the file for every problem, as
    :func:`load_data_file` does.
    """
    path, ext = _data_path(path)
    if ext == ".npz":
        return _load_npz(path, None)[0]
    if ext == ".csv":
        header, _ = _csv_rows(path)
        return _load_csv(path, drop if drop in header else None)[0]
    raise ValueError(f"unsupported file type {ext or '(none)'!r} for {path}; use .npz or .csv")


def _csv_rows(path):
    """(header, [(line number, cells), ...]) of a csv file with a header row."""
    try:
        # utf-8-sig drops the byte-order mark spreadsheet programs write.
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"could not read {path} as csv: {exc}") from None
    if not rows:
        raise ValueError(f"{path} is empty")
    header = [c.strip() for c in rows[0][1]]
    body = rows[1:]
    if not body:
        raise ValueError(f"{path} has a header but no data rows")
    return header, body


def _load_csv(path, target):
    """X, y and class names from a csv; ``target`` None reads features only (y None)."""
    header, body = _csv_rows(path)
    if target is None:
        t = None
    elif target not in header:
        raise ValueError(f"{path} has no column {target!r}; its columns are {header}")
    elif header.count(target) > 1:
        raise ValueError(f"{path} has more than one column named {target!r}")
    else:
        t = header.index(target)
    feature_cols = [j for j in range(len(header)) if j != t]
    if not feature_cols:
        raise ValueError(f"{path} has no feature columns besides {target!r}")

    X = np.empty((len(body), len(feature_cols)), dtype=np.float64)
    labels = []
    for i, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise ValueError(
                f"{path} line {line} has {len(row)} cells but the header has {len(header)}"
            )
        for k, j in enumerate(feature_cols):
            cell = row[j].strip()
            try:
                value = float(cell)
            except ValueError:
                value = None
            if value is None or not math.isfinite(value):
                raise ValueError(
                    f"{path} line {line}, column {header[j]!r}: {cell!r} is not a finite number"
                )
            X[i, k] = value
        if t is None:
            continue
        label = row[t].strip()
        if not label:
            raise ValueError(f"{path} line {line}: the target column {target!r} is empty")
        labels.append((line, label))
    if t is None:
        return X, None, None
    y, classes = _parse_labels(path, target, labels)
    return X, y, classes


def _parse_labels(path, target, labels):
    values = []
    for line, text in labels:
        try:
            values.append(float(text))
        except ValueError:
            # One non-number makes the whole column categorical.
            names = [text for _, text in labels]
            classes = sorted(set(names))
            return encode_labels(np.array(names), classes), classes
        if not math.isfinite(values[-1]):
            raise ValueError(f"{path} line {line}, column {target!r}: {text!r} is not finite")
    y = np.array(values, dtype=np.float64)
    if np.all(y == np.round(y)):
        return y.astype(np.int64), None
    return y, None


# -- tasks ---------------------------------------------------------------------------


def _is_integral(a: np.ndarray) -> bool:
    if a.dtype.kind in "biuUS":
        return True
    return bool(np.all(a == np.round(a)))


def infer_task(y) -> dict:
    """The kind of learning problem labels ``y`` pose, and the head it needs.

    Rules, in order:

    * 2-D ``y`` with more than one column: multiclass if every row is one-hot
      (0/1 values summing to 1), else regression with one output per column.
    * Otherwise (1-D, or a single column, read as 1-D): floats with a
      non-whole value mean regression with one output. Whole numbers (or
      strings) are class labels: 2 distinct values mean binary, more mean
      multiclass with one output per class. One distinct value is an error.

    So integer-valued regression targets (counts, say) are read as classes;
    give such ``y`` as floats with a fractional value, or choose the loss by
    hand.

    Parameters
    ----------
    y : array_like, shape (n_samples,) or (n_samples, k)
        Host labels (NumPy array or list).

    Returns
    -------
    dict
        ``kind``: 'binary' | 'multiclass' | 'regression';
        ``n_outputs``: int, the network's output width;
        ``output_activation``: 'sigmoid' | 'softmax' | 'identity';
        ``loss``: 'bce' | 'cross_entropy' | 'mse';
        ``classes``: None for regression, else the sorted distinct labels as
        a list of Python scalars (for one-hot ``y``, the column indices).
        Unless ``classes == list(range(len(classes)))`` the caller must map
        ``y`` through :func:`encode_labels` before training.

    Raises
    ------
    ValueError
        Empty ``y``, wrong dimensions, NaN/infinity, or a single class.
    TypeError
        ``y`` neither numbers nor strings.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biufUS":
        raise TypeError(f"y must hold numbers or strings; got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}")
    if y.shape[0] == 0 or y.size == 0:
        raise ValueError("y is empty")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")

    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind in "US":
            raise ValueError(f"string labels must be 1-D; got shape {y.shape}")
        one_hot = bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))
        if not one_hot:
            return _task("regression", int(y.shape[1]))
        present = int(np.count_nonzero(y.any(axis=0)))
        if present < 2:
            raise ValueError("y has a single class: every one-hot row marks the same column")
        return _task("multiclass", int(y.shape[1]), list(range(y.shape[1])))

    flat = y.reshape(-1)
    if not _is_integral(flat):
        return _task("regression", 1)
    classes = np.unique(flat)
    if classes.shape[0] < 2:
        raise ValueError(
            f"y has a single class ({classes[0].item()!r}); a classifier needs two or more"
        )
    classes = [c.item() for c in classes]
    if flat.dtype.kind in "fb":
        # Whole-valued floats and bools are class ids: report them as ints.
        classes = [int(c) for c in classes]
    if len(classes) == 2:
        return _task("binary", 1, classes)
    return _task("multiclass", len(classes), classes)


# The network head and loss of each kind of task.
_HEADS = {
    "binary": ("sigmoid", "bce"),
    "multiclass": ("softmax", "cross_entropy"),
    "regression": ("identity", "mse"),
}


def _task(kind, n_outputs, classes=None):
    activation, loss = _HEADS[kind]
    return {
        "kind": kind,
        "n_outputs": n_outputs,
        "output_activation": activation,
        "loss": loss,
        "classes": classes,
    }


def encode_labels(y, classes) -> np.ndarray:
    """Labels as class ids: ``ids[i] == classes.index(y[i])``.

    Parameters
    ----------
    y : array_like, shape (n_samples,) or (n_samples, 1)
        Labels (numbers or strings), each one of ``classes``.
    classes : sequence
        The distinct labels, in the order that defines the ids (typically
        ``infer_task(y)["classes"]``).

    Returns
    -------
    ndarray of int64, shape (n_samples,)

    Raises
    ------
    ValueError
        A label not in ``classes``, duplicate classes, or a 2-D ``y`` with
        more than one column.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"labels to encode must be 1-D; got shape {y.shape}")
    classes = np.asarray(list(classes))
    if classes.ndim != 1 or classes.shape[0] == 0:
        raise ValueError("classes must be a non-empty sequence of labels")
    if np.unique(classes).shape[0] != classes.shape[0]:
        raise ValueError(f"classes has duplicates: {classes.tolist()}")
    if (y.dtype.kind in "US") != (classes.dtype.kind in "US"):
        raise ValueError(
            f"labels of dtype {y.dtype} cannot match classes of dtype {classes.dtype}"
        )
    order = np.argsort(classes, kind="stable")
    ranked = classes[order]
    pos = np.clip(np.searchsorted(ranked, y), 0, ranked.shape[0] - 1)
    found = ranked[pos] == y
    if not np.all(found):
        unknown = np.unique(y[~found])[:5].tolist()
        raise ValueError(f"labels {unknown} are not among the classes {classes.tolist()}")
    return order[pos].astype(np.int64)


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


def train_val_split(X, y, val_fraction: float, seed: int = 0, stratify: bool = True):
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
            f"val_fraction must be a number, got {type(val_fraction).__name__} {val_fraction!r}"
        )
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction}")
    seed = _check_int("seed", seed, 0)
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError("X and y must have a first (sample) dimension")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    train_idx, val_idx = split_indices(y, val_fraction, np.random.default_rng(seed), stratify)
    return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


def split_indices(y, val_fraction: float, rng: np.random.Generator, stratify: bool = True):
    """Row indices of a train/validation split (see :func:`train_val_split`).

    Parameters
    ----------
    y : ndarray, shape (n_samples,) or (n_samples, k)
        Targets; class labels (or one-hot rows) are split per class.
    val_fraction : float in (0, 1)
    rng : numpy.random.Generator
    stratify : bool

    Returns
    -------
    train_idx, val_idx : int64 ndarrays, each in increasing order
    """
    n = y.shape[0]
    n_val = int(math.floor(n * float(val_fraction) + 0.5))
    if n_val < 1 or n_val > n - 1:
        raise ValueError(
            f"val_fraction={val_fraction} of {n} samples gives {n_val} validation and "
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
