"""What runs after each epoch: progress, the user's callback, early stopping,
and the divergence guard that stops a run whose numbers stopped being finite.

Each callback's ``on_epoch_end(epoch, figures, params, epoch_start)`` gets
the 1-based epoch, its figures (:meth:`History.last`), the parameters after
the epoch and those it started from; it returns True to stop training.
``on_train_end()`` runs once when the loop ends, however it ends.
"""

from __future__ import annotations

import math
import warnings

from .progress import EpochProgress

__all__ = ["Callback", "DivergenceGuard", "DivergenceWarning", "EarlyStopping", "Progress",
           "UserCallback"]


class DivergenceWarning(RuntimeWarning):
    """Training stopped because the loss or the parameters stopped being
    finite, or it ended with a loss orders of magnitude above its start."""

# How many times its start a fit's last loss may be before the fit warns:
# two orders of magnitude is no noisy epoch; it is a learning rate too large.
GROWTH_LIMIT = 100.0


class Callback:
    """Acts after each epoch; see the module docstring."""

    def on_epoch_end(self, epoch, figures, params, epoch_start) -> bool:
        return False

    def on_train_end(self) -> None:
        """The loop has ended (done, stopped, diverged or raised)."""


class Progress(Callback):
    """Each epoch's figures on stderr: a tqdm bar (rate, time left, figures)
    on a terminal or in a notebook, else one plain line per epoch (see
    :class:`~.progress.EpochProgress`)."""

    def __init__(self, epochs: int, stream=None):
        self.progress = EpochProgress(epochs, stream)

    def on_epoch_end(self, epoch, figures, params, epoch_start) -> bool:
        self.progress.update(epoch, figures)
        return False

    def on_train_end(self) -> None:
        self.progress.close()


class UserCallback(Callback):
    """``callback(epoch, figures)``, the user's function. One with a
    ``with_params`` attribute (a model's wrapper of it) is called as
    ``function.with_params(epoch, figures, params)``: the epoch's parameters
    in hand while the user's function runs."""

    def __init__(self, function):
        self.function = function

    def on_epoch_end(self, epoch, figures, params, epoch_start) -> bool:
        figures = dict(figures)  # its own: early stopping and the schedule read the fit's
        with_params = getattr(self.function, "with_params", None)
        if with_params is not None:
            with_params(epoch, figures, params)
        else:
            self.function(epoch, figures)
        return False


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without the monitored loss improving by
    more than ``min_delta``; :attr:`best_params` holds the best epoch's weights.

    The monitored loss is the validation loss where there is one, else the
    training loss. Training loss is measured before each step, so the
    weights that earned epoch e's training loss are those of epoch e's start
    (exactly so in batch mode); validation loss is measured after it.

    ``carried`` is an earlier fit's :attr:`count`, which a resumed fit goes on
    from where it monitors the same loss. Its best epoch is numbered from
    this fit's first (0 or less: an earlier fit's), and its weights are
    ``initial_params`` where they are those (the validation loss of the epoch
    just before), else unknown (:attr:`best_params` None). Where ``restore``
    needs weights the earlier fit did not keep, the count starts again.
    """

    def __init__(self, patience: int, min_delta: float, initial_params, carried=None,
                 restore: bool = False):
        self.patience, self.min_delta, self.restore = patience, min_delta, restore
        self.best_params, self.best_loss, self.best_epoch, self.waited = (
            initial_params, math.inf, None, 0)
        self.monitor, self._carried = None, carried

    @property
    def count(self) -> tuple | None:
        """``(monitor, best loss, epochs waited, best epoch)`` for a resumed fit
        (None before an epoch): the monitor ``"val_loss"`` or ``"loss"``, the
        best epoch numbered from this fit's first."""
        if self.best_epoch is None:
            return None
        return (self.monitor, self.best_loss, self.waited, self.best_epoch)

    def _go_on_from(self, carried):
        monitor, best_loss, waited, best_epoch = carried
        if monitor != self.monitor:  # another loss: its best says nothing of this one
            return
        known = monitor == "val_loss" and best_epoch == 0
        if self.restore and not known:
            return
        self.best_params = self.best_params if known else None
        self.best_loss, self.waited, self.best_epoch = best_loss, waited, best_epoch

    def on_epoch_end(self, epoch, figures, params, epoch_start) -> bool:
        on_validation = "val_loss" in figures
        if self.monitor is None:
            self.monitor = "val_loss" if on_validation else "loss"
            if self._carried is not None:
                self._go_on_from(self._carried)
        monitored = figures[self.monitor]
        if monitored < self.best_loss - self.min_delta:
            self.best_params = params if on_validation else epoch_start
            self.best_loss, self.best_epoch, self.waited = monitored, epoch, 0
            return False
        self.waited += 1
        return self.waited >= self.patience


class DivergenceGuard:
    """Stops training when the loss or the parameters are no longer finite,
    and says which parameters to keep.

    Updates make new arrays, so earlier parameter lists stay valid as they
    are: keeping them costs references, not copies.
    """

    def __init__(self, lr, alpha=0.0):
        self.lr = lr  # None: an optimizer of the caller's own, whose rate is unknown here
        self.alpha = alpha  # the L2 penalty's, which a large value makes diverge too
        self.previous = None  # the start of the epoch before the current one

    @property
    def _rate(self):
        rate = "the optimizer's learning rate" if self.lr is None else f"lr={self.lr!r}"
        return f"{rate}, or alpha={self.alpha!r}," if self.alpha > 0 else rate

    def check(self, epoch, loss_value, params_finite, epoch_start):
        """``(message, params to keep)`` if epoch ``epoch`` diverged, else None.

        ``epoch_start`` gave this epoch's first loss; if the epoch's loss was
        not finite, the epoch before's start is the last sure finite point.
        """
        if math.isfinite(loss_value) and params_finite:
            self.previous = epoch_start
            return None
        # A finite loss was earned by weights no later than ``epoch_start``
        # (exactly them in batch mode); a non-finite one may have been
        # (batch mode: was) earned by ``epoch_start`` itself, so the start of
        # the epoch before, whose loss was finite, is the last sure point.
        loss_finite = math.isfinite(loss_value)
        keep_from = epoch if loss_finite or epoch == 1 else epoch - 1
        keep = epoch_start if keep_from == epoch else self.previous
        what = ("the loss became NaN or infinite" if not loss_finite
                else "the parameters overflowed to NaN or infinity")
        # A first epoch's loss includes the starting weights' own (all of it in
        # batch mode): it may overflow before any step, with no rate to blame.
        cause = (f"{self._rate} may be too large, or the loss overflows at the starting "
                 "weights: targets or features too large for the dtype" if epoch == 1
                 and not loss_finite else f"{self._rate} may be too large")
        message = (
            f"training diverged at epoch {epoch}: {what} ({cause}); stopped and kept the "
            f"parameters from before epoch {keep_from}"
        )
        # The user's call: check <- _loop <- train <- MLP.fit <- the caller.
        warnings.warn(message, DivergenceWarning, stacklevel=5)
        return message, keep

    def check_growth(self, first_loss, last_loss) -> bool:
        """Warn (and return True) when a fit that stayed finite ends with a loss
        more than :data:`GROWTH_LIMIT` times the loss it started from."""
        if not (first_loss > 0 and last_loss > GROWTH_LIMIT * first_loss):
            return False
        warnings.warn(
            f"training ended with a loss of {last_loss:.3g}, {last_loss / first_loss:.3g} times "
            f"the {first_loss:.3g} it started from: it is diverging while staying finite "
            f"({self._rate} may be too large)", DivergenceWarning, stacklevel=5)
        return True
