"""``backend="auto"``: the candidate predicted fastest for a fit, from a profile.

- :mod:`.cost` -- the cost model (setup, compile and per-epoch terms) and its fitting;
- :mod:`.profile` -- the measured profile (``nnbackend bench --calibrate``
  writes it to the cache directory) over the default shipped with the package;
- :mod:`.choose` -- the choice for one fit, and the BLAS threads of a NumPy fit.

:func:`explain_backend` gives the choice as data; a fit's
``History.backend_choice`` holds the same. The candidates themselves (names,
devices) are :mod:`nnbackend.backends.auto`'s: nothing here names a backend.
"""

from __future__ import annotations

from ..training import FitOptions
from .choose import (
    blas_threads_for,
    choose,
    data_decides,
    decided_by_data,
    note_used,
    workload_of,
)
from .cost import Terms, Workload, predict
from .profile import (
    CACHE_ENV_VAR,
    Profile,
    ProfileWarning,
    active_profile,
    cache_dir,
    default_profile,
    load_profile,
    machine_fingerprint,
    profile_path,
    read_profile,
    set_profile,
)

__all__ = ["CACHE_ENV_VAR", "Profile", "ProfileWarning", "Terms", "Workload", "active_profile",
           "blas_threads_for", "cache_dir", "choose", "data_decides", "decided_by_data",
           "default_profile", "explain_backend", "load_profile", "machine_fingerprint",
           "note_used", "predict", "profile_path", "read_profile", "set_profile", "workload_of"]


def explain_backend(model_or_layer_sizes, X=None, y=None, *, n_samples=None, mode="minibatch",
                    batch_size=32, epochs=100, optimizer="sgd", dtype=None, executor="auto",
                    chunk_size="auto", shuffle=True, alpha=0.0, lr_schedule="constant",
                    hidden_activation="sigmoid", output_activation="sigmoid", loss="mse",
                    reduction="mean", profile=None) -> dict:
    """What ``backend="auto"`` would pick for a fit, and why, as data.

    Parameters
    ----------
    model_or_layer_sizes : MLP or sequence of int
        The network: a model (its layer sizes, activations, loss and dtype), or
        layer sizes (with ``hidden_activation`` ... ``reduction`` and ``dtype``).
    X, y : optional
        The data the fit would get: host data gives ``n_samples``; an array of
        a backend decides the backend itself.
    n_samples : int, optional
        Rows, where ``X`` is not given.
    mode, batch_size, epochs, optimizer, executor, chunk_size, shuffle, alpha, lr_schedule
        As :meth:`nnbackend.MLP.fit` takes them.
    profile : Profile, optional
        The profile to price with (default: the measured one, else the shipped default).

    Returns
    -------
    dict
        ``chosen`` (``"NAME:cpu"`` or ``"NAME:gpu"``), ``backend``, ``device``,
        ``executor``, ``reason`` (one line), ``profile`` (the file, or
        ``"default"``), ``workload`` and ``candidates``: per candidate its
        ``executor``, ``predicted_s`` (setup, compile and every epoch, and
        the library's first fit in this process) with ``setup_s``,
        ``compile_s``, ``epoch_s`` and ``first_use_s``, or ``skipped`` and why.
        A fit's ``History.backend_choice`` holds the same.
    """
    from ..network import checked_network

    spec = getattr(model_or_layer_sizes, "spec", None)
    if spec is not None:  # a model
        sizes, dtype = model_or_layer_sizes.layer_sizes, dtype or model_or_layer_sizes.dtype
    else:
        sizes, spec = checked_network(model_or_layer_sizes, hidden_activation,
                                      output_activation, loss, reduction)
    decided = data_decides(X, y)
    if decided is not None:
        return decided_by_data(*decided)
    if X is not None:
        n_samples = len(X) if isinstance(X, (list, tuple)) else int(X.shape[0])
    if n_samples is None or int(n_samples) < 1:
        raise ValueError("explain_backend needs the data's rows: give X or n_samples >= 1")
    options = FitOptions.check(mode=mode, batch_size=batch_size, epochs=epochs, optimizer=optimizer,
                               executor=executor, chunk_size=chunk_size, shuffle=shuffle,
                               alpha=alpha, lr_schedule=lr_schedule)
    return choose(sizes, spec, int(n_samples), options, dtype or "float32", profile)[1]
