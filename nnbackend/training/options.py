"""A fit's options, checked once, before any data moves."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from ..backends.precision import check_precision
from ..checks import check_flag, check_int, check_number
from ..data import MODES
from ..network import DEFAULT_CHUNK_SIZE, check_chunk_size
from ..optim import OPTIMIZERS, Optimizer, get_optimizer

__all__ = ["FitOptions", "LR_SCHEDULES"]

# scikit-learn's names (MLPClassifier's learning_rate): see training.schedule.
LR_SCHEDULES = ("constant", "invscaling", "adaptive")


@dataclass(frozen=True)
class FitOptions:
    """What :meth:`nnbackend.MLP.fit` was asked for, checked (see its docstring).

    Build it with :meth:`check`, which refuses a wrong value by name. The
    optimizer is built here (``optimizer`` holds the :class:`Optimizer`;
    ``optimizer_name`` its name, None for an Optimizer object). ``seed``
    seeds the shuffling and the validation split, except with ``resume``:
    the resumed fit's generator state draws them, and ``seed`` is ignored.
    """

    # No defaults here: check() is the one builder and holds them, as MLP.fit does.
    mode: str
    batch_size: int | None
    epochs: int
    lr: Any
    optimizer: Optimizer
    optimizer_name: str | None
    shuffle: bool
    seed: int | None
    progress: bool
    chunk_size: int | str  # rows, or 'auto' (resolved per fit from the budget)
    validation_split: float | None
    patience: int | None
    min_delta: float
    restore_best_weights: bool
    callback: Callable | None
    resume: bool
    executor: str
    alpha: float
    lr_schedule: Any  # one of LR_SCHEDULES, or a callable (see training.schedule)
    power_t: float
    precision: str | None  # None, or one of backends.precision.PRECISIONS

    @classmethod
    def check(cls, mode="minibatch", batch_size=32, epochs=100, lr=0.1, optimizer="sgd",
              shuffle=True, seed=None, progress=False, chunk_size=DEFAULT_CHUNK_SIZE,
              optimizer_options=None, validation_split=None, has_validation_data=False,
              patience=None, min_delta=0.0, restore_best_weights=True, callback=None,
              resume=False, executor="auto", alpha=0.0, lr_schedule="constant",
              power_t=0.5, precision=None) -> "FitOptions":
        """The options, checked; raises ``TypeError``/``ValueError`` naming the first wrong one.

        Not everything is checked here. ``executor`` needs the fit's backend
        and plan: :func:`nnbackend.engine.choose_executor` refuses an unknown
        name, or one that cannot run the fit, with a ``ValueError`` when the
        fit sets up its epochs (after the data has moved to the device).
        ``lr`` is checked by the named optimizer's factory; with an
        :class:`Optimizer` object it is taken as given, as are that object
        and a callable ``lr_schedule``. ``callback`` is checked to be
        callable (or None), not called.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
        epochs = check_int("epochs", epochs)
        chunk_size = check_chunk_size(chunk_size)
        # Only minibatch uses batch_size, but a value that is wrong anywhere is a
        # mistake worth naming; None is fine where the mode fixes the size.
        if batch_size is not None or mode == "minibatch":
            check_int("batch_size", batch_size)
        if seed is not None:
            check_int("seed", seed, minimum=0)
        flags = {name: check_flag(name, value) for name, value in (
            ("shuffle", shuffle), ("progress", progress), ("resume", resume),
            ("restore_best_weights", restore_best_weights))}
        if patience is not None:
            patience = check_int("patience", patience)
        min_delta = check_number("min_delta", min_delta, 0)
        if validation_split is not None and has_validation_data:
            raise ValueError("give validation_split or validation_data, not both")
        opt = get_optimizer(optimizer, lr, **_optimizer_options(optimizer, optimizer_options))
        alpha = check_number("alpha", alpha, 0)
        power_t = check_number("power_t", power_t, 0)
        if not (callable(lr_schedule) or lr_schedule in LR_SCHEDULES):
            raise ValueError(f"unknown lr_schedule {lr_schedule!r}; choose one of "
                             f"{list(LR_SCHEDULES)} or give a function of the step count")
        if callable(lr_schedule):
            _check_schedule(lr_schedule)
        check_precision(precision)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be a function callback(epoch, figures) or None, "
                            f"got {type(callback).__name__} {callback!r}")
        if validation_split is not None:
            validation_split = check_number("validation_split", validation_split, 0, 1,
                                            low_open=True)
        return cls(mode=mode, batch_size=batch_size, epochs=epochs, lr=lr, optimizer=opt,
                   optimizer_name=None if isinstance(optimizer, Optimizer) else optimizer,
                   seed=seed, chunk_size=chunk_size, validation_split=validation_split,
                   patience=patience, min_delta=min_delta, callback=callback, executor=executor,
                   alpha=alpha, lr_schedule=lr_schedule, power_t=power_t, precision=precision,
                   **flags)


    def check_rates(self, finfo, dtype_name):
        """Refuse an ``lr`` that is 0 in the model's dtype (the fit would not
        move), an Adam ``eps`` that is 0 there at the first step, and an
        ``alpha`` past its largest number (the penalty would be infinite).
        ``finfo``: the namespace's ``finfo`` of that dtype."""
        tiny, largest = float(finfo.smallest_normal) * float(finfo.eps), float(finfo.max)
        if self.optimizer_name is not None and self.lr < tiny:
            raise ValueError(f"lr={self.lr!r} is 0 in {dtype_name}, the model's dtype: the "
                             f"fit would not move; its smallest rate is {tiny:.3g}")
        if self.optimizer.name == "adam":
            check_adam_eps(self.optimizer.hyper["eps"], self.optimizer.hyper["b2"], finfo,
                           dtype_name)
        if self.alpha > largest:
            raise ValueError(f"alpha={self.alpha!r} is past {dtype_name}'s largest number "
                             f"({largest:.3g}): the penalty would be infinite")


def check_adam_eps(eps, b2, finfo, dtype_name, name="Adam's eps"):
    """Refuse an Adam ``eps`` that is 0 in the model's dtype at the first step.

    That step divides by ``sqrt(v) + eps·sqrt(1 - b2)``: with the second term
    0, a parameter whose gradient is 0 (a constant feature's) becomes 0/0.
    """
    tiny = float(finfo.smallest_normal) * float(finfo.eps)
    if eps * (1 - b2) ** 0.5 < tiny:
        raise ValueError(
            f"{name}={eps!r} is 0 in {dtype_name}, the model's dtype, at the first step: a "
            f"parameter with a zero gradient would become NaN; its smallest value is "
            f"{tiny / (1 - b2) ** 0.5:.3g}")

def _optimizer_options(optimizer, options):
    """``optimizer_options`` as a dict the named optimizer accepts, or a refusal naming it."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"optimizer_options must be a dict, got {type(options).__name__} {options!r}")
    factory = OPTIMIZERS.get(optimizer) if isinstance(optimizer, str) else None
    if factory is None:
        if options and isinstance(optimizer, Optimizer):
            raise ValueError("optimizer_options apply to a named optimizer; an Optimizer "
                             "object carries its own settings")
        return dict(options)
    accepted = [p for p in inspect.signature(factory).parameters if p != "lr"]
    unknown = sorted(set(options) - set(accepted), key=str)
    if unknown:
        raise ValueError(
            f"optimizer_options {unknown} are not options of optimizer {optimizer!r}; "
            f"it takes {accepted or 'none'} (lr is fit's own argument)"
        )
    return dict(options)


def _check_schedule(schedule):
    """Refuse a schedule function whose first factor is not a number >= 0, once,
    on the host: inside the fit its mistake would surface deep in an update
    (a string), stop the fit (NaN) or climb the loss (a negative factor)."""
    try:
        factor = float(schedule(0))
    except Exception as exc:  # any failure of the caller's function, named as theirs
        raise ValueError(f"lr_schedule must be a function factor(count) of the steps taken, "
                         f"returning a number >= 0; lr_schedule(0) raised "
                         f"{type(exc).__name__}: {exc}") from None
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(f"lr_schedule(0) must be a finite number >= 0 (the learning rate's "
                         f"factor); got {factor!r}")
