"""Checkpoints: a model (and its optimizer state) in one ``.npz`` file.

Layout: ``format`` (the string ``"nnbackend-mlp"``), ``format_version``,
``header`` (JSON: architecture, dtype, seed, metadata, and the scalar part of
the training state; from version 2 also the feature names, the
standardization statistics and the class labels), ``param_<i>`` (``W0, b0, W1, ...``) and
``opt_<field>_<i>`` (the optimizer's per-parameter arrays). Everything is a
plain array: files are read with ``allow_pickle=False``, so loading never
runs code from the file.

Versions: 1 holds no feature names, no scaling and no class labels; 2 adds
them (``classes``, the model's ``classes_`` as a JSON list, came later within
version 2: a reader that knows no ``classes`` key ignores it and predicts the
same outputs). A model with ``standardize`` off and none of them is still
written as version 1 (its config without the ``standardize`` key), which
every release reads. Any of them, or ``standardize`` on (even before a fit
has learned the statistics), makes it version 2, which a version-1 reader
refuses instead of predicting from unscaled inputs. A version-1 file loads
with ``standardize`` off. A file without
``classes`` whose metadata holds the command line's ``classes`` (written
before the key existed) gets its ``classes_`` from there.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import numpy as np

from .backends import get_backend, is_auto
from .checks import check_path, current_umask, replace_target
from .data import host_rng
from .scaling import StandardScaler
from .optim import OPTIMIZERS
from .training import TrainState

__all__ = ["FORMAT", "FORMAT_VERSION", "READS", "save", "load"]

FORMAT = "nnbackend-mlp"
FORMAT_VERSION = 2
READS = (1, 2)


def save(model, path):
    """Write ``model`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = check_path("the checkpoint path", path)
    to_host = model.backend.to_host
    config = model.config()
    extras = {
        "feature_names": model.feature_names_in_,
        "scaling": {"features": _scaler_dict(model.feature_scaler),
                    "targets": _scaler_dict(model.target_scaler)},
        "classes": None if model.classes_ is None else model.classes_.tolist(),
    }
    if config.get("standardize") or extras["feature_names"] is not None or any(
            extras["scaling"].values()) or extras["classes"] is not None:
        version = 2
    else:  # nothing a version-1 reader would miss
        version = 1
        config.pop("standardize", None)
        extras = {}
    header = {"config": config, "metadata": model.metadata, "train_state": None, **extras}
    why = getattr(model, "_not_resumable", None)
    if model.train_state is None and isinstance(why, str):
        header["not_resumable"] = why  # what a resume=True of the loaded model is told
    arrays = {f"param_{i}": to_host(p) for i, p in enumerate(model.flat_params)}
    state = model.train_state
    if state is not None:
        header["train_state"] = {
            "optimizer": state.optimizer,
            "state_scalars": state.state_scalars,
            "state_fields": {k: len(v) for k, v in state.state_arrays.items()},
            "rng": state.rng,
            "epochs_done": state.epochs_done,
            "lr_scale": state.lr_scale,
            "split_seed": state.split_seed,
            "plateau": None if state.plateau is None else list(state.plateau),
            "stopping": None if state.stopping is None else list(state.stopping),
            "steps_done": state.steps_done,
            "samples_seen": state.samples_seen,
        }
        for name, values in state.state_arrays.items():
            for i, a in enumerate(values):
                arrays[f"opt_{name}_{i}"] = to_host(a)
    arrays["format"] = np.asarray(FORMAT)
    arrays["format_version"] = np.asarray(version)
    try:
        arrays["header"] = np.asarray(json.dumps(header))
    except (TypeError, ValueError) as exc:  # model.metadata is the caller's dict
        raise ValueError(f"cannot write checkpoint {path}: model.metadata must hold JSON "
                         f"values (str, numbers, lists, dicts): {exc}") from None

    target = replace_target(path, "checkpoint")
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".nnbackend-", suffix=".npz.tmp", dir=directory)
    except OSError as exc:
        raise ValueError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    try:
        # mkstemp makes the file 0600; a checkpoint follows the umask as
        # every other file the user writes does.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ValueError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
        raise


def _scaler_dict(scaler):
    return None if scaler is None else scaler.to_dict()


def _bad(path, why):
    return ValueError(f"{path} is not a usable nnbackend checkpoint: {why}")


def load(cls, path, backend=None, device=None):
    """Read a checkpoint written by :func:`save` into a new ``cls`` model."""
    path = check_path("the checkpoint path", path)
    if os.path.isdir(path):
        raise ValueError(f"the checkpoint {path} is a directory; name the .npz file in it")
    if not os.path.isfile(path):
        raise ValueError(f"no such checkpoint file: {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise _bad(path, exc.strerror or exc) from None
    if magic != b"PK\x03\x04":
        # Not a zip: np.load would read it as a .npy or offer to unpickle it.
        raise _bad(path, "not an nnbackend checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            names = set(f.files)
            if "format" not in names or str(f["format"]) != FORMAT:
                raise _bad(path, "it was not written by nnbackend (no 'format' marker)")
            version = int(f["format_version"])
            if version not in READS:
                raise _bad(path, f"format version {version}; this nnbackend reads versions "
                                 f"{', '.join(map(str, READS))}")
            header = json.loads(str(f["header"]))
            config = header["config"]
            n_params = 2 * (len(config["layer_sizes"]) - 1)
            flat = [f[f"param_{i}"] for i in range(n_params)]
            train = header.get("train_state")
            opt_arrays = {}
            if train is not None:
                train = _train_fields(train, n_params)
                _check_rng(path, train["rng"])
                for name, count in train["state_fields"].items():
                    opt_arrays[name] = [f[f"opt_{name}_{i}"] for i in range(count)]
            for key in ("metadata", "scaling"):
                if not isinstance(header.get(key) or {}, dict):
                    raise ValueError(f"its {key} is not a JSON object")
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
    if not all(np.all(np.isfinite(a)) for v in opt_arrays.values() for a in v):
        raise _bad(path, "its optimizer state holds NaN or infinity")
    params = [(flat[i], flat[i + 1]) for i in range(0, n_params, 2)]
    if is_auto(backend) and device is not None:
        raise ValueError(f"device={device!r} is a device of a named backend; backend='auto' "
                         "picks the backend and device itself")
    if not is_auto(backend) and (backend is not None or device is not None):
        # An unknown backend or a device this machine lacks is the caller's
        # mistake, not the file's: said as get_backend says it.
        named = get_backend(backend, device)
        dtype = str(config.get("dtype"))
        if dtype in ("float32", "float64") and dtype not in named.float_dtypes():
            raise ValueError(f"{path} holds a {dtype} model, and backend {named.name!r} on "
                             f"device {named.device_spec()!r} has no {dtype} (it takes "
                             f"{', '.join(named.float_dtypes())}); load it on a device that "
                             f"has {dtype}")
    try:
        model = cls(backend=backend, device=device, params=params, **config)
    except (TypeError, ValueError) as exc:
        raise _bad(path, exc) from None
    model.metadata = header.get("metadata") or {}
    if isinstance(header.get("not_resumable"), str):
        model._not_resumable = header["not_resumable"]
    _load_extras(model, header, path)
    if train is not None:
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
            lr_scale=train["lr_scale"],
            split_seed=train["split_seed"],
            plateau=train["plateau"],
            stopping=train["stopping"],
            steps_done=train["steps_done"],
            samples_seen=train["samples_seen"],
        )
    return model


def _check_rng(path, state):
    """Refuse a shuffling stream's state that no generator takes: resume would
    otherwise fail deep inside NumPy."""
    try:
        host_rng(0).bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise _bad(path, f"its shuffling generator's state is not usable ({exc})") from None


def _load_extras(model, header, path):
    """Feature names, scalers and classes of a version-2 header (absent in version 1)."""
    names = header.get("feature_names")
    if names is not None:
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)
                and len(names) == model.layer_sizes[0]):
            raise _bad(path, f"feature_names must list {model.layer_sizes[0]} names")
        model.feature_names_in_ = names
    scaling = header.get("scaling") or {}
    for key, attr, width in (("features", "feature_scaler", model.layer_sizes[0]),
                             ("targets", "target_scaler", model.layer_sizes[-1])):
        if scaling.get(key) is None:
            continue
        try:
            scaler = StandardScaler.from_dict(scaling[key])
        except (TypeError, ValueError) as exc:
            raise _bad(path, f"scaling of the {key}: {exc}") from None
        if scaler.n_features_in_ != width:
            raise _bad(path, f"scaling of the {key} has {scaler.n_features_in_} columns, "
                             f"the network {width}")
        setattr(model, attr, scaler)
    classes = header.get("classes")
    if classes is not None:
        try:
            model.classes_ = classes
        except (TypeError, ValueError) as exc:
            raise _bad(path, exc) from None
        return
    # The command line's metadata from before the key existed: its labels.
    saved = model.metadata.get("classes")
    if isinstance(saved, list):
        try:
            model.classes_ = saved
        except (TypeError, ValueError):
            pass  # free-form metadata that does not fit the head: no classes


def _train_fields(raw, n_params: int) -> dict:
    """A checkpoint header's training state, checked and typed: :class:`TrainState`'s
    fields, ``state_fields`` giving each optimizer array field's count.

    Keys written since a feature came get the value of a file from before it
    (``lr_scale`` 1, the rest None). Raises ``ValueError`` saying what is wrong.
    """
    if not isinstance(raw, dict):
        raise ValueError("its training state is not a JSON object")
    missing = [k for k in ("optimizer", "state_scalars", "state_fields", "rng", "epochs_done")
               if k not in raw]
    if missing:
        raise ValueError(f"its training state lacks {', '.join(map(repr, missing))}")
    name = raw["optimizer"]
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"its training state names an unknown optimizer {name!r}")
    # The fields the optimizer's state has: host numbers, and lists of arrays.
    template = OPTIMIZERS[name](0.1).init([np.zeros(1)] * n_params)
    kinds = dict(zip(getattr(template, "_fields", ()), template))
    scalars, counts = raw["state_scalars"], raw["state_fields"]
    if not (isinstance(scalars, dict) and isinstance(counts, dict)
            and set(scalars) == {k for k, v in kinds.items() if not isinstance(v, list)}
            and counts == {k: n_params for k, v in kinds.items() if isinstance(v, list)}):
        raise ValueError(f"its {name} state ({scalars!r}, arrays {counts!r}) is not the "
                         f"optimizer's: {sorted(kinds)}, one array per parameter")
    for key, value in scalars.items():
        _whole(value, f"optimizer {key}")
    out = {"optimizer": name, "state_scalars": scalars, "state_fields": counts,
           "rng": raw["rng"], "epochs_done": _whole(raw["epochs_done"], "epochs_done")}
    scale = raw.get("lr_scale", 1.0)
    if not _number(scale) or not 0 < scale <= 1:
        raise ValueError(f"its lr_scale {scale!r} is not a factor in (0, 1] ('adaptive' "
                         "only ever lowers the rate)")
    out["lr_scale"] = float(scale)
    seed = raw.get("split_seed")
    out["split_seed"] = None if seed is None else _whole(seed, "split_seed")
    out["plateau"] = _plateau(raw.get("plateau"))
    out["stopping"] = _stopping(raw.get("stopping"), out["epochs_done"])
    steps = raw.get("steps_done")
    out["steps_done"] = None if steps is None else _whole(steps, "steps_done")
    if out["steps_done"] is not None and out["steps_done"] < out["epochs_done"]:
        raise ValueError(f"its steps_done {steps} is fewer than its {out['epochs_done']} "
                         "epochs done (an epoch takes at least one step)")
    seen = raw.get("samples_seen")
    out["samples_seen"] = None if seen is None else _whole(seen, "samples_seen")
    return out


def _number(value) -> bool:
    """A finite JSON number (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value, what: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ValueError(f"its {what} {value!r} is not a whole number >= 0")
    return value


def _plateau(plateau):
    """``'adaptive'``'s ``(best, waited, monitor)``: best None (no epoch yet) or a
    finite number; the monitor absent from files of before it was kept."""
    if plateau is None:
        return None
    if not (isinstance(plateau, list) and len(plateau) in (2, 3)
            and (plateau[0] is None or _number(plateau[0]))
            and (len(plateau) == 2 or plateau[2] in (None, "val_loss", "loss"))):
        raise ValueError(f"its 'adaptive' plateau {plateau!r} is not [best loss, epochs waited, "
                         "monitored loss]")
    return (None if plateau[0] is None else float(plateau[0]),
            _whole(plateau[1], "'adaptive' plateau's epochs waited"), *plateau[2:])


def _stopping(count, epochs_done: int):
    """Early stopping's ``(monitor, best loss, epochs waited, best epoch)``."""
    if count is None:
        return None
    if not (isinstance(count, list) and len(count) == 4 and count[0] in ("val_loss", "loss")
            and _number(count[1])):
        raise ValueError(f"its early stopping count {count!r} is not [monitor, best loss, "
                         "epochs waited, best epoch]")
    best_epoch = _whole(count[3], "early stopping's best epoch")
    if not 1 <= best_epoch <= epochs_done:
        raise ValueError(f"its early stopping's best epoch {best_epoch} is not one of its "
                         f"{epochs_done} epochs done")
    return count[0], float(count[1]), _whole(count[2], "early stopping's epochs waited"), best_epoch
