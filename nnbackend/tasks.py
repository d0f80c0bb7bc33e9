"""Tasks from labels: what problem ``y`` poses (binary, multiclass, regression),
the network head it needs, and labels as class ids (host only).

The names are also importable from :mod:`nnbackend.datasets`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["infer_task", "encode_labels", "text_labels", "MANY_CLASSES", "MAX_CLASS_SHARE"]

# Whole-number labels with more distinct values than MANY_CLASSES, making up
# more than MAX_CLASS_SHARE of the rows, are read as a quantity (regression),
# not as class ids: 200 prices with 102 distinct values are not 102 classes
# (about 2 rows each), while 10 digits in 1797 rows, or 100 classes in
# 50000 rows, stay classes.
MANY_CLASSES = 20
MAX_CLASS_SHARE = 0.05


def _is_integral(a: np.ndarray) -> bool:
    if a.dtype.kind in "biuUS":
        return True
    return bool(np.all(a == np.round(a)))


def _not_a_regression_target(y):
    """Why text labels ``y`` are no regression target. Examples that are
    not numbers: a column of numbers with words among them (read as text
    because of them) is shown the words, and the row of the first."""
    flat = y.reshape(-1).astype(str)
    words = np.array([not is_number(text) for text in flat])
    examples = np.unique(flat[words] if words.any() else flat)[:3].tolist()
    where = ""
    if words.any() and not words.all():
        row = int(np.argmax(words)) // (y.shape[1] if y.ndim == 2 else 1)
        where = f"; the first that is not a number is in row {row}, counting from 0"
    return (f"task 'regression' needs numeric targets; these labels are text "
            f"(e.g. {examples}{where}): use a classification task")


def read_number(text):
    """The number ``text`` writes, or None: what ``float()`` reads, less the
    digit groups (``1_000``) and non-ASCII digits (``\uff11``) it also takes,
    which NumPy's ``loadtxt`` and pandas refuse (a code ``3_4`` is not 34)."""
    if "_" in text or not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def is_number(text):
    """Whether ``text`` reads as a number (:func:`read_number`; the data files' test too)."""
    return read_number(text) is not None


def infer_task(y, task: str | None = None) -> dict:
    """The kind of learning problem labels ``y`` pose, and the head it needs.

    Rules, in order:

    * 2-D ``y`` with more than one column: multiclass if every row is one-hot
      (0/1 values summing to 1), else regression with one output per column.
    * Otherwise (1-D, or a single column, read as 1-D): floats with a
      non-whole value mean regression with one output. Strings are class
      labels. Whole numbers are class labels too, unless they have more than
      ``MANY_CLASSES`` (20) distinct values making up more than
      ``MAX_CLASS_SHARE`` (5 %) of the rows: those are a quantity (prices,
      ages, counts) and mean regression. Classes: 2 distinct values mean
      binary, more mean multiclass with one output per class. One distinct
      value is an error.

    ``task`` overrides the rules where the labels allow it: whole numbers
    may be taken as classes or as a quantity, two classes as a multiclass
    task with two softmax outputs; strings cannot be a regression target,
    nor non-whole floats classes.

    Parameters
    ----------
    y : array_like, shape (n_samples,) or (n_samples, k)
        Host labels (NumPy array or list).
    task : {'binary', 'multiclass', 'regression'}, optional
        The task to build instead of the one the rules find.

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
        Empty ``y``, wrong dimensions, NaN/infinity, a single class, or a
        ``task`` the labels cannot be.
    TypeError
        ``y`` neither numbers nor strings.
    """
    if task not in (None, *_HEADS):
        raise ValueError(f"unknown task {task!r}; choose one of {list(_HEADS)}")
    found = _infer(np.asarray(y), task)
    if task is None or found["kind"] == task:
        return found
    if task == "multiclass" and found["kind"] == "binary":
        return _task("multiclass", 2, found["classes"])
    raise ValueError(f"the labels look like a {found['kind']} task, not {task!r}")


def _infer(y, task):
    """infer_task's rules; ``task`` only lets whole numbers be classes or a quantity."""
    if y.dtype.kind not in "biufUS":
        raise TypeError(f"y must hold numbers or strings; got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}")
    if y.shape[0] == 0 or y.size == 0:
        raise ValueError("y is empty")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity")

    if y.dtype.kind in "US" and task == "regression":
        raise ValueError(_not_a_regression_target(y))
    if task == "regression":
        return _task("regression", 1 if y.ndim == 1 else int(y.shape[1]))
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
    quantity = classes.shape[0] > MANY_CLASSES and classes.shape[0] > MAX_CLASS_SHARE * flat.shape[0]
    if flat.dtype.kind not in "US" and quantity and task is None:
        return _task("regression", 1)
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


def text_labels(y, name: str = "y"):
    """Host labels that name classes by text, as a 1-D array of ``str``; None
    for anything else (numbers: class ids, one-hot rows, targets).

    Parameters
    ----------
    y : array_like, shape (n_samples,) or (n_samples, 1)
        Host labels: a list, a NumPy array, a pandas Series... Text may be
        ``str`` or ``bytes`` (decoded as ASCII) or an object array of either.

    Returns
    -------
    ndarray of str, shape (n_samples,), or None

    Raises
    ------
    ValueError
        Text labels in more than one column.
    TypeError
        An object array mixing text with other things (numbers, None...).
    """
    try:
        a = np.asarray(y)
    except (ValueError, TypeError):
        return None  # ragged and the like: the numeric checks name it
    if a.dtype.kind == "O":
        values = a.reshape(-1).tolist()
        # isinstance, not type names: NumPy's str_ and bytes_ scalars are text too.
        others = {type(v).__name__ for v in values if not isinstance(v, (str, bytes))}
        if not any(isinstance(v, (str, bytes)) for v in values):
            return None  # objects but no text: refused as a dtype by the numeric checks
        if others:
            raise TypeError(f"{name} mixes text with {sorted(others)} "
                            "values; class labels must be all text or all numbers")
        a = np.asarray([v.decode("ascii") if isinstance(v, bytes) else str(v)
                        for v in values]).reshape(a.shape)
    if a.dtype.kind not in "US":
        return None
    if a.ndim == 2 and a.shape[1] == 1:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"text class labels must be 1-D (one label per row); {name} has "
                         f"shape {a.shape}")
    return a.astype(str)
