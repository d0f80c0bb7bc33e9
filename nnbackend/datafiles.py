"""Data files: features and labels read from ``.npz`` and ``.csv`` files (host only).

Every problem with a file raises a ``ValueError`` that names the file. The
names are also importable from :mod:`nnbackend.datasets`.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile

import numpy as np

from .tasks import encode_labels

__all__ = ["load_data_file", "load_features_file"]


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
