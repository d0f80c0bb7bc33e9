"""The optimizer a fit runs: the named one, its learning-rate schedule and
the L2 penalty on the weights, as scikit-learn's MLP has them.

- ``alpha`` adds ``alpha/2·‖W‖²`` to each batch's loss, over the batch's
  rows under ``reduction="mean"`` (scikit-learn's ``alpha``), as it is
  under ``"sum"``; biases are not penalised. Its gradient ``alpha/n·W`` is
  added before the optimizer sees the gradients (:func:`~nnbackend.optim.l2_penalty`).
- ``lr_schedule``: ``'constant'``; ``'invscaling'``, ``lr / (t + 1) ** power_t``
  with ``t`` the samples seen before the epoch; ``'adaptive'``, the rate
  divided by 5 each time more than 10 epochs in a row have not brought the
  monitored loss ``1e-4`` below its best (scikit-learn's ``n_iter_no_change``
  and ``tol``), while it stays above ``1e-6``; or a function
  ``factor(count)`` of the steps taken.

With neither (``alpha=0``, ``'constant'``) the optimizer is the named one,
and every executor runs it. The CuPy kernels and ``torch-graphs`` carry the
penalty, ``'invscaling'`` and ``'adaptive'``; a schedule function of the
caller's own they decline, and the fit says why in ``History.executor_reason``.
"""

from __future__ import annotations

import math

from ..optim import Optimizer, inverse_scaling, l2_penalty, scheduled

__all__ = ["AdaptiveRate", "fit_optimizer"]


def fit_optimizer(options, plan, n_layers: int, reduction: str, lr_scale: float = 1.0,
                  samples_before: int = 0) -> Optimizer:
    """``options.optimizer`` with ``options``' schedule and L2 penalty.

    Parameters
    ----------
    options : FitOptions
    plan : BatchPlan
        The epoch's plan: its batch size scales the penalty, its steps per
        epoch count the samples seen for ``'invscaling'``.
    n_layers : int
        Weight matrices in the network (``[W0, b0, W1, b1, ...]``).
    reduction : {'mean', 'sum'}
    lr_scale : float
        The factor ``'adaptive'`` has reached (1 until the first plateau).
    samples_before : int
        The samples earlier fits saw, which ``'invscaling'`` goes on from.
    """
    opt = options.optimizer
    schedule = options.lr_schedule
    if schedule == "invscaling":
        steps_per_epoch = -(-plan.n_samples // plan.batch_size)
        schedule = inverse_scaling(options.power_t, plan.n_samples, steps_per_epoch,
                                   samples_before)
    elif not callable(schedule):  # 'constant' or 'adaptive': a constant factor
        schedule = None
    # 'adaptive' is wrapped from the start, so its state keeps one structure
    # when a plateau rebuilds the optimizer with a smaller factor.
    if schedule is not None or lr_scale != 1.0 or options.lr_schedule == "adaptive":
        opt = scheduled(opt, schedule, scale=lr_scale)
    coef = options.alpha / plan.batch_size if reduction == "mean" else options.alpha
    return l2_penalty(opt, coef, [True, False] * n_layers)


class AdaptiveRate:
    """scikit-learn's ``learning_rate='adaptive'``: the rate's factor, divided by
    5 once more than ``patience`` epochs in a row have not brought the
    monitored loss ``tol`` below its best, while ``lr × factor`` stays above
    ``1e-6`` (scikit-learn then stops; here early stopping is ``patience``'s).

    The monitored loss is the validation loss where there is one, else the
    training loss (as early stopping's). ``plateau`` is an earlier fit's
    :attr:`plateau`, gone on from where this fit monitors the same loss (one
    that names none, from a checkpoint of before the monitor was kept, is
    taken as it is).
    """

    def __init__(self, lr: float, patience: int = 10, tol: float = 1e-4, scale: float = 1.0,
                 plateau=None):
        self.lr, self.patience, self.tol, self.scale = lr, patience, tol, scale
        best, self.waited, *monitor = plateau if plateau is not None else (None, 0)
        self.best = math.inf if best is None else float(best)
        self.monitor, self._carried_monitor = None, monitor[0] if monitor else None

    @property
    def plateau(self) -> tuple:
        """``(best, waited, monitor)`` for a resumed fit to go on from (best None:
        none yet; monitor ``"val_loss"`` or ``"loss"``, None before an epoch)."""
        return (None if math.isinf(self.best) else self.best, self.waited, self.monitor)

    def after_epoch(self, figures) -> bool:
        """True when the rate has just been divided (the optimizer must be rebuilt)."""
        if self.monitor is None:
            self.monitor = "val_loss" if "val_loss" in figures else "loss"
            if self._carried_monitor not in (None, self.monitor):
                self.best, self.waited = math.inf, 0  # another loss's best says nothing
        monitored = figures[self.monitor]
        if monitored > self.best - self.tol:
            self.waited += 1
        else:
            self.waited = 0
        self.best = min(self.best, monitored)
        if self.waited <= self.patience or self.lr * self.scale <= 1e-6:
            return False
        self.scale /= 5.0
        self.waited = 0
        return True
