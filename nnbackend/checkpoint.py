"""Checkpoints: a model (and its optimizer state) in one ``.npz`` file.

Layout: ``format`` (the string ``"nnbackend-mlp"``), ``format_version``,
``header`` (JSON: architecture, dtype, seed, metadata, and the scalar part of
the training state), ``param_<i>`` (``W0, b0, W1, ...``) and
``opt_<field>_<i>`` (the optimizer's per-parameter arrays). Everything is a
plain array: files are read with ``allow_pickle=False``, so loading never
runs code from the file.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from .optim import OPTIMIZERS
from .training import TrainState

__all__ = ["FORMAT", "FORMAT_VERSION", "save", "load"]

FORMAT = "nnbackend-mlp"
FORMAT_VERSION = 1


def save(model, path):
    """Write ``model`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = os.fspath(path)
    to_host = model.backend.to_host
    header = {"config": model.config(), "metadata": model.metadata, "train_state": None}
    arrays = {f"param_{i}": to_host(p) for i, p in enumerate(model.flat_params)}
    state = model.train_state
    if state is not None:
        header["train_state"] = {
            "optimizer": state.optimizer,
            "state_scalars": state.state_scalars,
            "state_fields": {k: len(v) for k, v in state.state_arrays.items()},
            "rng": state.rng,
            "epochs_done": state.epochs_done,
        }
        for name, values in state.state_arrays.items():
            for i, a in enumerate(values):
                arrays[f"opt_{name}_{i}"] = to_host(a)
    arrays["format"] = np.asarray(FORMAT)
    arrays["format_version"] = np.asarray(FORMAT_VERSION)
    arrays["header"] = np.asarray(json.dumps(header))

    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nnbackend-", suffix=".npz.tmp", dir=directory)
    except OSError as exc:
        raise ValueError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ValueError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
        raise


def _bad(path, why):
    return ValueError(f"{path} is not a usable nnbackend checkpoint: {why}")


def load(cls, path, backend=None, device=None):
    """Read a checkpoint written by :func:`save` into a new ``cls`` model."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such checkpoint file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            names = set(f.files)
            if "format" not in names or str(f["format"]) != FORMAT:
                raise _bad(path, "it was not written by nnbackend (no 'format' marker)")
            version = int(f["format_version"])
            if version != FORMAT_VERSION:
                raise _bad(path, f"format version {version}; this nnbackend reads version {FORMAT_VERSION}")
            header = json.loads(str(f["header"]))
            config = header["config"]
            n_params = 2 * (len(config["layer_sizes"]) - 1)
            flat = [f[f"param_{i}"] for i in range(n_params)]
            train = header.get("train_state")
            opt_arrays = {}
            if train is not None:
                # Every key now, so a header missing one is refused here.
                train = {k: train[k] for k in ("optimizer", "state_scalars", "state_fields",
                                               "rng", "epochs_done")}
                train["epochs_done"] = int(train["epochs_done"])
                for name, count in train["state_fields"].items():
                    opt_arrays[name] = [f[f"opt_{name}_{i}"] for i in range(count)]
    except ValueError as exc:
        if str(exc).startswith(path):
            raise
        raise _bad(path, exc) from None
    except Exception as exc:
        # A damaged zip fails in many ways (BadZipFile, zlib.error, a CRC
        # mismatch, struct.error, NotImplementedError for bogus flag bits...):
        # all of them mean the same thing to the user.
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None

    for a in flat + [a for v in opt_arrays.values() for a in v]:
        # np.load hands back a member that is not a .npy array as raw bytes.
        if not isinstance(a, np.ndarray):
            raise _bad(path, "a member that should be an array is not a .npy array")
        if a.dtype.kind != "f":
            raise _bad(path, f"an array holds dtype {a.dtype}, expected floats")
    params = [(flat[i], flat[i + 1]) for i in range(0, n_params, 2)]
    try:
        model = cls(backend=backend, device=device, params=params, **config)
    except (TypeError, ValueError) as exc:
        raise _bad(path, exc) from None
    model.metadata = header.get("metadata") or {}
    if train is not None:
        if train["optimizer"] not in OPTIMIZERS:
            raise _bad(path, f"unknown optimizer {train['optimizer']!r}")
        shapes = [tuple(p.shape) for p in flat]
        for name, values in opt_arrays.items():
            if [tuple(a.shape) for a in values] != shapes:
                raise _bad(path, f"optimizer state {name!r} does not match the parameters")
        b = model.backend
        model.train_state = TrainState(
            optimizer=train["optimizer"],
            state_scalars=train["state_scalars"],
            state_arrays={k: [b.asarray(a, dtype=model.array_dtype) for a in v]
                          for k, v in opt_arrays.items()},
            rng=train["rng"],
            epochs_done=int(train["epochs_done"]),
        )
    return model
