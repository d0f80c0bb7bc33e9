"""What a fit leaves for the next one to resume, typed; checkpoints store it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..optim import OPTIMIZERS, state_fields, state_from_fields

__all__ = ["TrainState", "train_fields"]


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

    @classmethod
    def capture(cls, optimizer: str, opt_state, rng, epochs_done: int,
                lr_scale: float = 1.0, split_seed: int | None = None,
                plateau: tuple | None = None, stopping: tuple | None = None,
                steps_done: int | None = None) -> "TrainState":
        """The state to resume from after a fit's last epoch."""
        scalars, arrays = state_fields(opt_state)
        # A compiled epoch leaves scalars (Adam's count) as device scalars.
        scalars = {k: v if isinstance(v, (int, float)) else int(v) for k, v in scalars.items()}
        return cls(optimizer, scalars, arrays, rng.bit_generator.state, epochs_done,
                   float(lr_scale), None if split_seed is None else int(split_seed), plateau,
                   None if stopping is None else (
                       str(stopping[0]), float(stopping[1]), int(stopping[2]), int(stopping[3])),
                   None if steps_done is None else int(steps_done))

    def optimizer_state(self, template):
        """The optimizer state, rebuilt like ``template`` (the optimizer's ``init``)."""
        return state_from_fields(template, self.state_scalars, self.state_arrays)


def train_fields(raw, n_params: int) -> dict:
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
        _whole(value, f"the optimizer's {key}")
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
    return out


def _number(value) -> bool:
    """A finite JSON number (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value, what: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ValueError(f"its {what} {value!r} is not a whole number >= 0")
    return value


def _plateau(plateau):
    """``'adaptive'``'s ``(best, waited)``: best None (no epoch yet) or a finite number."""
    if plateau is None:
        return None
    if not (isinstance(plateau, list) and len(plateau) == 2
            and (plateau[0] is None or _number(plateau[0]))):
        raise ValueError(f"its 'adaptive' plateau {plateau!r} is not [best loss, epochs waited]")
    return (None if plateau[0] is None else float(plateau[0]),
            _whole(plateau[1], "'adaptive' plateau's epochs waited"))


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
