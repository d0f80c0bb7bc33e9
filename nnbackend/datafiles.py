"""Data files: features and labels read from ``.npz`` and ``.csv`` files (host only).

Every problem with a file raises a ``ValueError`` that names the file. The
names are also importable from :mod:`nnbackend.datasets`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import operator
import os
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np

from .checks import check_path
from .tasks import encode_labels, is_number, read_number

__all__ = ["load_data_file", "load_features_file", "read_data_file", "read_labelled_file",
           "data_file_columns", "parse_delimiter", "SNIFFED_DELIMITERS", "DELIMITER_NAMES"]

# What the refusal of a header-less file says to do.
_NO_HEADER_HINT = ("give the file a header row of column names, or say it has none "
                   "(header=False; on the command line --no-header)")

# The delimiters csv.Sniffer chooses among, and the one taken where it cannot
# tell (a single column, rows of unequal width): every error about the
# file's columns then says so and names --delimiter.
SNIFFED_DELIMITERS = ",;\t|"
ASSUMED_DELIMITER = ","
# Names a delimiter may be given by (a tab is awkward to type in a shell).
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|",
                   "space": " "}
_SHOWN = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space"}
# The start of the file the Sniffer reads (its quote search is quadratic in
# the worst case: a bounded sample keeps it quick on any file).
_SNIFF_CHARS = 16384


def parse_delimiter(text):
    """The delimiter ``text`` names: one character, or one of the names in
    ``DELIMITER_NAMES`` (comma, semicolon, tab or ``\\t``, pipe, space).

    Raises ``ValueError`` for anything else, and for a character that cannot
    separate numbers: a quote, a line break, a letter or digit, ``.``, ``-``
    or ``+``.
    """
    value = DELIMITER_NAMES.get(text.lower(), text) if isinstance(text, str) else text
    if (not isinstance(value, str) or len(value) != 1 or value in "\"'\r\n.-+"
            or value.isalnum()):
        raise ValueError(f"a delimiter is one character other than a quote, a letter, a "
                         f"digit, '.', '-' or '+' (or: comma, semicolon, tab, pipe, space); "
                         f"got {text!r}")
    return value


def _shown(delimiter):
    name = _SHOWN.get(delimiter)
    return f"{name} ({delimiter!r})" if name else repr(delimiter)


def _data_path(path):
    """``(path, lower-case extension)`` of an existing data file, or a ValueError."""
    path = check_path("the data file's path", path)
    if not os.path.exists(path):
        raise ValueError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a data file")
    return path, os.path.splitext(path)[1].lower()


def load_data_file(path, target: str | int | None = None, return_classes: bool = False,
                   header: bool = True, delimiter: str | None = None):
    """Features and labels from a ``.npz`` or ``.csv`` file.

    ``.npz``: arrays ``X`` (2-D, numeric) and ``y`` (1-D or 2-D, same rows;
    numeric or strings), read with ``allow_pickle=False``. ``target``, if
    given, names the label array instead of ``y``.

    ``.csv``: a header row of column names, then one sample per row.
    ``target`` (required) names the label column; every other column is a
    numeric feature. Blank lines are skipped; a row of empty cells
    (``,,``) is refused by its line, as any missing value is (in a file of
    one column such a row is a blank line, and skipped). A first row of
    numbers alone is refused as a header (it is data: reading it as names
    would drop a sample); with ``header=False`` every row is data and
    ``target`` is the label column's index (0-based; -1 the last). Fields
    may be quoted (``"Smith, J"``; a quote inside one is doubled). The
    delimiter is detected with :class:`csv.Sniffer` among comma, semicolon,
    tab and pipe (``SNIFFED_DELIMITERS``), or given as ``delimiter``; where
    it cannot be detected a comma is taken, and an error about the file's
    columns says so. Numbers take a decimal point (``1.5``, not ``1,5``);
    digit groups (``1_000``) and non-ASCII digits are no numbers.

    Labels: numeric labels stay numbers (from a csv: int64 if all whole,
    else float64; from an npz: int64 for integer/bool arrays, float64 for
    float arrays and for unsigned ones past int64's range). String labels
    become int64 class ids in the sorted order of the distinct strings. A
    csv label column of numbers with a missing value among them (``NA``,
    ``N/A``, ``null``, ``None``, ``?``, ``-``...: pandas' spellings) is
    refused by line, not read as text; so is a NaN or infinite label
    anywhere.

    Parameters
    ----------
    path : str or os.PathLike
    target : str or int, optional
    return_classes : bool
        Also return the class names of string labels (None for numeric ones).
    header : bool
        Whether a ``.csv`` starts with a row of column names.
    delimiter : str, optional
        The ``.csv``'s delimiter: one character, or a name of
        ``DELIMITER_NAMES`` (``"tab"``, ``"semicolon"``...). Default:
        detected. Ignored for other files.

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
        columns, bad shapes, non-numeric or non-finite values, a bad
        ``delimiter``.
    """
    X, y, classes, _ = read_data_file(path, target, header, delimiter)
    return (X, y, classes) if return_classes else (X, y)


def read_data_file(path, target: str | int | None = None, header: bool = True,
                   delimiter: str | None = None):
    """:func:`load_data_file` with the feature names too.

    Returns
    -------
    X, y, classes
        As :func:`load_data_file` with ``return_classes=True``.
    feature_names : list of str or None
        The feature columns' names from a ``.csv`` header (in ``X``'s column
        order); None for ``.npz`` files and header-less ``.csv`` files.
    """
    path, ext = _data_path(path)
    if ext == ".npz":
        X, y, classes = _load_npz(path, "y" if target is None else str(target))
        return X, y, classes, None
    if ext == ".csv":
        table = _csv_table(path, header, delimiter)
        if target is None:
            what = (f"its columns are {table.names}" if table.names
                    else "give the label column's index")
            with table.about_columns():
                raise ValueError(f"reading {path} needs a target (label) column; {what}")
        return _load_csv(table, target)
    raise ValueError(f"unsupported file type {ext or '(none)'!r} for {path}; use .npz or .csv")


def read_labelled_file(path, target: str | int | None, header: bool = True,
                       feature_names=None, delimiter: str | None = None):
    """Features and labels as the file writes them, to score a model against.

    ``.csv``: the features as :func:`load_features_file` takes them
    (columns matched by name to ``feature_names`` where both are known; a
    header of numbers is taken where it names them and ``target``) and
    the ``target`` column's cells as text (stripped), for the caller to
    compare with the model's classes or targets. ``.npz``: ``X`` and the
    label array ``target`` (default ``y``) as stored, text labels as text.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)
    labels : ndarray of str (a ``.csv``), or of numbers or str (an ``.npz``)

    Raises ``ValueError`` naming the file for every problem, as
    :func:`load_data_file` does (a ``.csv`` without the target column
    included).
    """
    path, ext = _data_path(path)
    if ext == ".npz":
        X, y, classes = _load_npz(path, "y" if target is None else str(target))
        return X, (y if classes is None else np.asarray(classes)[y])
    if ext != ".csv":
        raise ValueError(f"unsupported file type {ext or '(none)'!r} for {path}; "
                         f"use .npz or .csv")
    table = _csv_table(path, header, delimiter, feature_names, target)
    if target is None:
        with table.about_columns():
            raise ValueError(f"{path}: name the label column"
                             + (f"; its columns are {table.names}" if table.names else ""))
    if table.names is not None and feature_names is not None:
        with table.about_columns():
            t = table.names[_target_index(path, target, table.names, len(table.names))]
            _check_names(path, [n for n in table.names if n != t], [str(n) for n in feature_names])
    X, labels, _, columns = _load_csv(table, target, raw_labels=True)
    if table.names is not None and feature_names is not None:
        X = X[:, [columns.index(str(n)) for n in feature_names]]
    return X, labels


def data_file_columns(path, header: bool = True, delimiter: str | None = None):
    """The column names of a ``.csv`` with a header (its first row only is
    parsed), the array names of an ``.npz``; None for any other file, a
    header-less ``.csv``, or a file that cannot be read (its loader says why)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return list(archive.files)
        if ext == ".csv" and header:
            with open(path, newline="", encoding="utf-8-sig") as f:
                sample = f.read(_SNIFF_CHARS + 1)  # what _csv_table sniffs, and one more
            options, _ = _dialect(sample, delimiter)
            for row in csv.reader(io.StringIO(sample, newline=""), **options):
                if not _is_blank(row):
                    # A first row of empty cells names nothing (_csv_table refuses it).
                    return [c.strip() for c in row] if any(c.strip() for c in row) else None
    except (OSError, ValueError, EOFError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile):
        pass
    return None


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
            how = "np.savez(path, X=X)" if key is None else f"np.savez(path, X=X, {key}=y)"
            raise ValueError(
                f"{path} lacks array(s) {missing}; it holds {sorted(archive.files)} "
                f"(save with {how})"
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
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # a column of labels, as a column of numbers is taken
        if y.ndim != 1:
            raise ValueError(f"string labels {key} in {path} must be 1-D; got shape {y.shape}")
        names = y.astype(str)
        classes = sorted(set(names.tolist()))
        y = encode_labels(names, classes)
    elif y.dtype.kind in "biu":
        # uint64 past int64's range would wrap to negative ids: such labels
        # stay float64, as a csv's whole numbers past 2**53 do.
        big = y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max
        y = y.astype(np.float64 if big else np.int64)
    elif y.dtype.kind == "f":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise ValueError(f"{key} in {path} contains NaN or infinity")
    else:
        raise ValueError(f"{key} in {path} must be numbers or strings; got dtype {y.dtype}")
    return X, y, classes


def load_features_file(path, drop: str | None = None, header: bool = True,
                       feature_names=None, delimiter: str | None = None):
    """Features alone, for prediction: array ``X`` of an ``.npz``, the array
    of a ``.npy``, or the columns of a ``.csv``.

    Parameters
    ----------
    path : str or os.PathLike
    drop : str, optional
        A label column of a ``.csv``, skipped if present.
    header : bool
        Whether a ``.csv`` starts with a row of column names (a first row of
        numbers alone is refused as a header, as in :func:`load_data_file`,
        unless its cells are exactly ``feature_names``, in their order, with
        the ``drop`` column or without: the header of a model trained on
        features named ``1``, ``2``..., read as such with a warning).
    feature_names : list of str, optional
        The names the model was trained on (its ``feature_names_in_``): the
        columns of a ``.csv`` with a header are then taken by name, in this
        order, whatever their order in the file; a missing or unknown column
        is refused with the names. Without it, or for files without names,
        columns are taken in the file's order.
    delimiter : str, optional
        The ``.csv``'s delimiter, as in :func:`load_data_file` (default:
        detected).

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)

    Raises ``ValueError`` naming the file for every problem, as
    :func:`load_data_file` does.
    """
    path, ext = _data_path(path)
    if ext == ".npz":
        return _load_npz(path, None)[0]
    if ext == ".npy":
        return _load_npy(path)
    if ext != ".csv":
        raise ValueError(f"unsupported file type {ext or '(none)'!r} for {path}; "
                         f"use .npz, .npy or .csv")
    table = _csv_table(path, header, delimiter, feature_names, drop)
    names = table.names
    if names is None:
        return _load_csv(table, None)[0]
    if drop is not None and drop not in names:
        drop = None
    if feature_names is not None:
        # Names first: a column the model does not know is named, not parsed.
        with table.about_columns():
            _check_names(path, [n for n in names if n != drop], [str(n) for n in feature_names])
    X, _, _, columns = _load_csv(table, drop, features_only=True)
    if feature_names is None:
        return X
    return X[:, [columns.index(str(n)) for n in feature_names]]


def _check_names(path, columns, feature_names):
    """Refuse columns that are not exactly the model's features (in any order)."""
    _check_distinct(path, columns)
    missing = [n for n in feature_names if n not in columns]
    unknown = [n for n in columns if n not in feature_names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"lacks the column(s) {missing}")
        if unknown:
            parts.append(f"has column(s) {unknown} the model was not trained on")
        raise ValueError(f"{path} {' and '.join(parts)}; the model's features are "
                         f"{feature_names}")


def npy_problem(path):
    """Why ``path`` is no ``.npy`` file (a phrase), or None where it starts
    as one (NumPy's own error for a text file or an ``.npz`` speaks of pickles)."""
    try:
        with open(path, "rb") as f:
            start = f.read(6)
    except OSError as exc:  # a directory, no permission
        return str(exc.strerror or exc)
    if start == b"\x93NUMPY":
        return None
    if not start:
        return "the file is empty"
    if start.startswith(b"PK"):
        return "it is an .npz archive (named arrays in a zip), not a .npy file: name it .npz"
    return "it is not a .npy file (it lacks NumPy's header; write one with np.save)"


def _load_npy(path):
    """The 2-D numeric array of a ``.npy`` file, as float64."""
    problem = npy_problem(path)
    if problem is not None:
        raise ValueError(f"could not read {path} as .npy: {problem}")
    try:
        X = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"could not read {path} as .npy: {exc}") from None
    if not isinstance(X, np.ndarray) or X.ndim != 2 or 0 in X.shape:
        shape = getattr(X, "shape", None)
        raise ValueError(f"{path} must hold a non-empty 2-D array (n_samples, n_features); "
                         f"got shape {shape}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{path} must hold numbers; got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"{path} contains NaN or infinity")
    return X


@dataclass(frozen=True)
class _Table:
    """A csv file's rows: ``names`` (None without a header), ``body``
    (``[(line number, cells)]``), and how its delimiter was chosen."""

    path: str
    names: list | None
    body: list
    delimiter: str
    how: str  # "given", "detected" or "assumed"

    def note(self):
        """What an error about the file's columns adds: the delimiter read."""
        shown = _shown(self.delimiter)
        if self.how == "given":
            return f"(delimiter: {shown}, as given)"
        if self.how == "detected":
            return (f"(delimiter: {shown}, as detected; if the file has another, name it: "
                    f"--delimiter on the command line, delimiter= in Python)")
        return (f"(delimiter: {shown}, assumed: none could be detected; name the file's "
                f"delimiter: --delimiter on the command line, e.g. --delimiter ';', or "
                f"delimiter= in Python)")

    @contextlib.contextmanager
    def about_columns(self):
        """Errors raised inside end with :meth:`note`."""
        try:
            yield
        except ValueError as exc:
            raise ValueError(f"{exc} {self.note()}") from None


def _dialect(text, delimiter):
    """``(csv.reader keyword arguments, how)`` for a file that starts with
    ``text``: the ``delimiter`` given, else the one csv.Sniffer detects in
    its first ``_SNIFF_CHARS`` characters, else a comma."""
    options = {"quotechar": '"', "doublequote": True, "skipinitialspace": True}
    if delimiter is not None:
        return {**options, "delimiter": parse_delimiter(delimiter)}, "given"
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # a cut line would look ragged
    sniffed = _sniff(sample)
    if sniffed is None:
        # A row of another width (an error the rows' check names by line)
        # defeats the Sniffer: the header line alone may still tell.
        first = next((line for line in sample.splitlines() if line.strip()), "")
        sniffed = _sniff(first)
    if sniffed is None:
        return {**options, "delimiter": ASSUMED_DELIMITER}, "assumed"
    if sniffed.quotechar in ("'", '"'):
        options["quotechar"] = sniffed.quotechar
    return {**options, "delimiter": sniffed.delimiter}, "detected"


def _sniff(sample):
    """csv.Sniffer's dialect of ``sample`` among ``SNIFFED_DELIMITERS``, or None."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=SNIFFED_DELIMITERS)
    except csv.Error:
        return None


def _csv_table(path, header=True, delimiter=None, feature_names=None, label=None):
    """The rows of a csv file (blank lines skipped; a row of empty cells is
    refused). A first row of numbers alone is refused as a header, unless it
    is exactly ``feature_names`` (the model's, in their order, with the
    ``label`` column's name or without: a warning says so). Rows of empty
    cells at the file's end are dropped."""
    try:
        # utf-8-sig drops the byte-order mark spreadsheet programs write.
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
        options, how = _dialect(text, delimiter)
        reader = csv.reader(io.StringIO(text, newline=""), **options)
        rows = [(reader.line_num, row) for row in reader if not _is_blank(row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"could not read {path} as csv: {exc}") from None
    if not rows:
        raise ValueError(f"{path} is empty")
    while len(rows) > 1 and not any(c.strip() for c in rows[-1][1]):
        rows.pop()  # the ",," rows a spreadsheet leaves at the end: no sample
    for line, row in rows:
        # ",," among the samples is one whose every value is missing: skipping
        # it would shift every later prediction onto the wrong row.
        if not any(c.strip() for c in row):
            raise ValueError(f"{path} line {line}: every cell is empty (missing values?)")
    if not header:
        return _Table(path, None, rows, options["delimiter"], how)
    names = [c.strip() for c in rows[0][1]]
    if all(is_number(c) for c in names):
        if not _are_names(names, feature_names, label):
            shown = names if len(names) <= 4 else [*names[:4], "..."]
            also = ("" if feature_names is None else
                    " (a header of numbers is taken where it names the model's features, "
                    "in their order)")
            raise ValueError(f"{path}: its first row {shown} holds numbers, not column names"
                             f"{also}; {_NO_HEADER_HINT}")
        warnings.warn(f"{path}: its first row {names} is read as the header: it names the "
                      "model's features, in their order (if it is data, say the file has "
                      "no header)", UserWarning, stacklevel=3)
    body = rows[1:]
    if not body:
        raise ValueError(f"{path} has a header but no data rows")
    return _Table(path, names, body, options["delimiter"], how)


def _is_blank(row):
    """A line without cells: empty or whitespace alone (csv gives one blank
    cell for the latter; a one-column file's empty cell reads the same)."""
    return not row or (len(row) == 1 and not row[0].strip())


def _are_names(cells, feature_names, label):
    """Whether a first row of numbers is the header of a model's features
    named by numbers ("1", "2"...): its cells, spelled exactly as the names,
    are those features in the model's order (the label column's name may be
    among them). In another order it could as well be a sample, whose
    columns matched by name would be read swapped."""
    if feature_names is None:
        return False
    features = [str(n) for n in feature_names]
    if label is not None and str(label) not in features:
        cells = [c for c in cells if c != str(label)]
    return cells == features


def _target_index(path, target, header, width):
    """The label column's index: by name with a header, else an index."""
    if header is not None:
        if target not in header:
            raise ValueError(f"{path} has no column {target!r}; its columns are {header}")
        if header.count(target) > 1:
            raise ValueError(f"{path} has more than one column named {target!r}")
        return header.index(target)
    try:
        if isinstance(target, bool):  # True is no column number
            raise TypeError
        # A float is refused, not cut to an index (2.7 is no column); "2" reads as 2.
        t = int(target) if isinstance(target, str) else operator.index(target)
    except (TypeError, ValueError):
        raise ValueError(f"{path} has no header, so the target is a column index (0-based, "
                         f"-1 the last); got {target!r}") from None
    if not -width <= t < width:
        raise ValueError(f"{path} has {width} columns; target column {t} is out of range")
    return t % width


def _load_csv(table, target, features_only=False, raw_labels=False):
    """X, y, class names and feature names of a csv table; ``target`` None
    reads features only (y None); ``raw_labels``: y is the label cells' text."""
    with table.about_columns():
        X, labels, column, feature_names = _parse_table(table, target, features_only)
    if labels is None:
        return X, None, None, feature_names
    if raw_labels:
        return X, np.array([text for _, text in labels]), None, feature_names
    # Outside about_columns: a missing label is no sign of a wrong delimiter.
    y, classes = _parse_labels(table.path, column, labels)
    return X, y, classes, feature_names


def _parse_table(table, target, features_only):
    """X, the label cells ``[(line, text)]`` (None without a target), the
    label column as errors name it, and the feature names."""
    path, names, body = table.path, table.names, table.body
    width = len(names) if names is not None else len(body[0][1])
    t = None if target is None else _target_index(path, target, names, width)
    feature_cols = [j for j in range(width) if j != t]
    if not feature_cols:
        raise ValueError(f"{path} has no feature columns besides {target!r}")
    if names is not None:
        # A model's features are matched by name later: two alike could never be.
        _check_distinct(path, [names[j] for j in feature_cols])
    label = (lambda j: repr(names[j])) if names is not None else (lambda j: str(j))

    X = np.empty((len(body), len(feature_cols)), dtype=np.float64)
    labels = []
    for i, (line, row) in enumerate(body):
        if len(row) != width:
            what = "the header has" if names is not None else "the first row has"
            raise ValueError(f"{path} line {line} has {len(row)} cells but {what} {width}")
        for k, j in enumerate(feature_cols):
            cell = row[j].strip()
            value = read_number(cell)
            if value is None or not math.isfinite(value):
                raise ValueError(f"{path} line {line}, column {label(j)}: {cell!r} is not a "
                                 f"finite number{_decimal_comma_hint(cell)}")
            X[i, k] = value
        if t is None or features_only:
            continue
        cell = row[t].strip()
        if not cell:
            raise ValueError(f"{path} line {line}: the target column {label(t)} is empty")
        labels.append((line, cell))
    feature_names = None if names is None else [names[j] for j in feature_cols]
    if t is None or features_only:
        return X, None, None, feature_names
    return X, labels, label(t), feature_names


def _decimal_comma_hint(cell):
    """A hint for ``1,5``: numbers are read with a decimal point."""
    if "," in cell and is_number(cell.replace(",", ".", 1)):
        return "; numbers take a decimal point (1.5, not 1,5)"
    return ""


def _check_distinct(path, columns):
    """Refuse two columns of one name."""
    if len(set(columns)) != len(columns):
        twice = sorted({n for n in columns if columns.count(n) > 1})
        raise ValueError(f"{path} has more than one column named {twice[0]!r}")


# Whole numbers past this are not all representable in float64, and past
# 2**63 they overflow int64: such labels stay float64 (a regression target).
_EXACT_WHOLE = 2.0 ** 53


# What float() reads as NaN or infinity (any case, signed): a missing label.
_NOT_FINITE = {"nan", "inf", "infinity"}


# What pandas reads as a missing value (read_csv's defaults, lower-cased;
# NaN's own spellings and '' are refused before), and '?' and '-': in a
# column of numbers they are gaps, not a class.
_MISSING = {"#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "1.#ind", "1.#qnan", "<na>",
            "n/a", "na", "null", "none", "?", "-"}


def _missing_label(path, line, target, text):
    # Wherever it is in the column: "nan" is a missing value, not a class.
    raise ValueError(f"{path} line {line}, column {target}: {text!r} is not finite "
                     f"(a missing label?); drop the row or give it a value")


def _parse_labels(path, target, labels):
    values, numeric, missing = [], True, []
    for line, text in labels:
        if numeric:
            value = read_number(text)
            if value is None:
                if text.lower() in _MISSING:
                    missing.append((line, text))  # a gap in numbers, or a class among words
                    continue
                numeric = False  # one non-number makes the whole column categorical
            else:
                if math.isfinite(value):
                    values.append(value)
                    continue
                _missing_label(path, line, target, text)
        # A text column: no float() for each row, only a look for NaN's spellings.
        if text.strip().lstrip("+-").lower() in _NOT_FINITE:
            _missing_label(path, line, target, text)
    if numeric and missing:
        # Numbers with "NA" among them: as classes, "NA" would be one the
        # model could predict, and prices would be a softmax of one class each.
        (line, text), n = missing[0], len(missing)
        rows = "the row"
        if n > 1:
            shown = ", ".join(str(k) for k, _ in missing[:4]) + (", ..." if n > 4 else "")
            rows = f"the {n} rows that lack one (lines {shown})"
        raise ValueError(f"{path} line {line}, column {target}: {text!r} is a missing label; "
                         f"drop or fill {rows}")
    if not numeric:
        names = [text for _, text in labels]
        classes = sorted(set(names))
        return encode_labels(np.array(names), classes), classes
    y = np.array(values, dtype=np.float64)
    if np.all(y == np.round(y)) and np.all(np.abs(y) < _EXACT_WHOLE):
        return y.astype(np.int64), None
    return y, None
