"""Tasks from labels: what problem ``y`` poses (binary, multiclass, regression),
the network head it needs, and labels as class ids (host only).

The names are also importable from :mod:`nnbackend.datasets`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["infer_task", "encode_labels"]


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
