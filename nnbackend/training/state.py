"""What a fit leaves for the next one to resume, typed; checkpoints store it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..optim import state_fields, state_from_fields

__all__ = ["TrainState"]


@dataclass
class TrainState:
    """The optimizer state, shuffling stream and epoch count after a fit.

    ``fit(resume=True)`` continues from it, so 3 + 3 resumed epochs equal 6
    in one go; :mod:`nnbackend.checkpoint` writes and reads it.

    Attributes
    ----------
    optimizer : str
        The named optimizer that made the state (``"sgd"``, ``"momentum"``, ``"adam"``).
    state_scalars : dict
        The optimizer state's host numbers by field (Adam's ``count``).
    state_arrays : dict
        The optimizer state's per-parameter arrays by field (lists of
        arrays of the backend, shaped like the parameters).
    rng : dict
        The host generator's ``bit_generator.state``: the next epoch's order.
    epochs_done : int
        Epochs trained so far, over all resumed fits.
    lr_scale : float
        The factor ``lr_schedule='adaptive'`` had brought the learning rate
        to (1 otherwise).
    split_seed : int or None
        The seed the first fit of the chain drew its ``validation_split``
        from: a resumed fit draws the same rows from it (None: the model's seed).
    plateau : tuple or None
        ``lr_schedule='adaptive'``'s best monitored loss (None: none yet) and
        the epochs it has waited since, which a resumed 'adaptive' fit goes on
        counting from (None: the fit was not adaptive).
    stopping : tuple or None
        Early stopping's count, which a resumed fit with ``patience`` goes on
        from: ``(monitor, best loss, epochs waited, best epoch)``, the monitor
        ``"val_loss"`` or ``"loss"`` and the best epoch counted over all
        resumed fits (None: the fit had no ``patience``).
    steps_done : int or None
        Optimizer steps taken so far, over all resumed fits, which a schedule
        function of the caller's goes on counting from (None: not recorded).
    samples_seen : int or None
        Rows trained on so far (epochs × rows, over all resumed fits), which
        ``'invscaling'`` goes on from (None: not recorded).
    """

    optimizer: str
    state_scalars: dict = field(default_factory=dict)
    state_arrays: dict = field(default_factory=dict)
    rng: dict = field(default_factory=dict)
    epochs_done: int = 0
    lr_scale: float = 1.0
    split_seed: int | None = None
    plateau: tuple | None = None
    stopping: tuple | None = None
    steps_done: int | None = None
    samples_seen: int | None = None

    @classmethod
    def capture(cls, optimizer: str, opt_state, rng, epochs_done: int,
                lr_scale: float = 1.0, split_seed: int | None = None,
                plateau: tuple | None = None, stopping: tuple | None = None,
                steps_done: int | None = None,
                samples_seen: int | None = None) -> "TrainState":
        """The state to resume from after a fit's last epoch."""
        scalars, arrays = state_fields(opt_state)
        # A compiled epoch leaves scalars (Adam's count) as device scalars.
        scalars = {k: v if isinstance(v, (int, float)) else int(v) for k, v in scalars.items()}
        return cls(optimizer, scalars, arrays, rng.bit_generator.state, epochs_done,
                   float(lr_scale), None if split_seed is None else int(split_seed), plateau,
                   None if stopping is None else (
                       str(stopping[0]), float(stopping[1]), int(stopping[2]), int(stopping[3])),
                   None if steps_done is None else int(steps_done),
                   None if samples_seen is None else int(samples_seen))

    def optimizer_state(self, template):
        """The optimizer state, rebuilt like ``template`` (the optimizer's ``init``)."""
        return state_from_fields(template, self.state_scalars, self.state_arrays)

