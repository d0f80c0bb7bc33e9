"""Training: ``fit`` in small parts, below the :class:`~nnbackend.MLP` front end.

- :mod:`.options` -- the fit's options, checked once (:class:`FitOptions`);
- :mod:`.state` -- what a later fit resumes (:class:`TrainState`), shared
  with checkpoints;
- :mod:`.callbacks` -- progress, early stopping, the divergence guard and
  the user's callback, each acting after an epoch;
- :mod:`.progress` -- the progress display (a tqdm bar or plain lines),
  shared with the command line (:class:`EpochProgress`);
- :mod:`.loop` -- the loop itself (:func:`train`) over data already on the
  device, and :func:`epoch_stepper` for benchmarks.

The epoch itself (reference loop or a backend's executor) is
:mod:`nnbackend.engine`'s.
"""

from .callbacks import DivergenceWarning
from .history import History
from .loop import Network, epoch_stepper, train
from .options import FitOptions
from .progress import EpochProgress
from .state import TrainState

__all__ = ["DivergenceWarning", "EpochProgress", "FitOptions", "History", "Network", "TrainState",
           "epoch_stepper", "train"]
