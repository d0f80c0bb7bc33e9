"""The cost model: a fit's predicted seconds on one candidate, and its fitting.

A fit costs, on a candidate (a backend and device) running one descent mode:

``setup``
    Once per fit: moving the data there and checking it, and (mini-batch and
    sgd) the starting loss's forward pass:
    ``setup_s + setup_byte_s·bytes + setup_madd_s·N·M``.
``compile``
    Once per fit, for executors that compile (JAX's scan, CuPy's kernels):
    ``compile_s + compile_layer_s·layers``.
``epoch``
    Per epoch: ``launch_s·launches + param_s·steps·P·u + madd_s·N·M·d +
    act_s·N·A·d + epoch_s``, where a launch is a step or a chunk of one
    (batch mode: the chunks of the full batch), P the parameters, M the
    multiply-adds and A the activations of one row, u the optimizer's update
    cost relative to SGD's and d 2 for float64, else 1.

The terms are fitted per candidate and mode to timed fits (``nnbackend bench
--calibrate``) by least squares on relative errors with every term >= 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["EPOCH_TERMS", "SETUP_TERMS", "COMPILE_TERMS", "Terms", "Workload", "epoch_features",
           "fit_nonnegative", "predict"]

# An optimizer's update against SGD's, per parameter (a custom one: as Adam).
UPDATE_COST = {"sgd": 1.0, "momentum": 2.0, "adam": 4.0}
# Per-row arithmetic against float32's.
DTYPE_COST = {"float32": 1.0, "float64": 2.0}

EPOCH_TERMS = ("launch_s", "param_s", "madd_s", "act_s", "epoch_s")
SETUP_TERMS = ("setup_s", "setup_byte_s", "setup_madd_s")
COMPILE_TERMS = ("compile_s", "compile_layer_s")


@dataclass(frozen=True)
class Workload:
    """What a fit asks of a candidate: the network, the data's size and the plan."""

    layer_sizes: tuple
    n_samples: int
    mode: str  # batch | minibatch | sgd
    batch_size: int  # rows per step, resolved (batch: N, sgd: 1)
    epochs: int
    dtype: str = "float32"
    optimizer: str = "sgd"  # a built-in optimizer's name, or anything else for a custom one

    @property
    def madds(self) -> int:
        """Multiply-adds of one row's forward pass: sum of fan_in·fan_out."""
        return sum(a * b for a, b in zip(self.layer_sizes[:-1], self.layer_sizes[1:]))

    @property
    def n_params(self) -> int:
        return self.madds + sum(self.layer_sizes[1:])

    @property
    def activations(self) -> int:
        """Activations of one row: the units of every layer after the input."""
        return sum(self.layer_sizes[1:])

    @property
    def data_bytes(self) -> int:
        """Bytes of ``X`` and the targets in the fit's dtype."""
        itemsize = 8 if self.dtype == "float64" else 4
        return self.n_samples * (self.layer_sizes[0] + self.layer_sizes[-1]) * itemsize

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return -(-self.n_samples // max(1, self.batch_size))

    def largest_product(self, chunk_rows: int) -> int:
        """Multiply-adds of the step's largest matrix product (its widest layer)."""
        rows = min(self.batch_size, chunk_rows)
        return rows * max(a * b for a, b in zip(self.layer_sizes[:-1], self.layer_sizes[1:]))


@dataclass(frozen=True)
class Terms:
    """One candidate's fitted cost terms for one mode (seconds; see the module)."""

    executor: str = "reference"
    launch_s: float = 0.0
    param_s: float = 0.0
    madd_s: float = 0.0
    act_s: float = 0.0
    epoch_s: float = 0.0
    setup_s: float = 0.0
    setup_byte_s: float = 0.0
    setup_madd_s: float = 0.0
    compile_s: float = 0.0
    compile_layer_s: float = 0.0
    points: int = 0  # timed fits behind the terms (0: the shipped default's)
    rel_error: float | None = None  # their root-mean-square relative error

    @classmethod
    def from_dict(cls, d: dict) -> "Terms":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown cost terms {sorted(unknown)}")
        values = {}
        for k, v in d.items():
            if k == "executor":
                if not isinstance(v, str):
                    raise ValueError(f"executor must be a name, got {v!r}")
            elif k == "rel_error":
                if v is not None and not (isinstance(v, (int, float)) and v >= 0):
                    raise ValueError(f"rel_error must be a number >= 0, got {v!r}")
            elif k == "points":
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ValueError(f"points must be an int >= 0, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or not math.isfinite(v) or v < 0:
                raise ValueError(f"cost term {k} must be a finite number >= 0, got {v!r}")
            values[k] = v
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def _chunks(work: Workload, chunk_rows: int) -> int:
    """Launches per epoch: each step, and each chunk of a step larger than a chunk."""
    per_step = -(-min(work.batch_size, work.n_samples) // max(1, chunk_rows))
    return work.steps * per_step


def epoch_features(work: Workload, chunk_rows: int) -> list:
    """The per-epoch features, in :data:`EPOCH_TERMS` order."""
    d = DTYPE_COST.get(work.dtype, 2.0)
    u = UPDATE_COST.get(work.optimizer, UPDATE_COST["adam"])
    n = work.n_samples
    return [float(_chunks(work, chunk_rows)), work.steps * work.n_params * u,
            n * work.madds * d, n * work.activations * d, 1.0]


def setup_features(work: Workload) -> list:
    """The once-per-fit setup features, in :data:`SETUP_TERMS` order."""
    forward = 0 if work.mode == "batch" else work.n_samples * work.madds
    return [1.0, float(work.data_bytes), float(forward)]


def compile_features(work: Workload) -> list:
    return [1.0, float(len(work.layer_sizes) - 1)]


def _dot(terms: Terms, names, features) -> float:
    return sum(getattr(terms, k) * x for k, x in zip(names, features))


def predict(terms: Terms, work: Workload, chunk_rows: int, speedup: float = 1.0) -> dict:
    """The fit's predicted seconds: ``{"setup_s", "compile_s", "epoch_s", "total_s"}``
    (``epoch_s`` is one epoch; the total counts ``work.epochs`` of them).
    ``speedup`` divides the multiply-adds' term (more BLAS threads than measured with)."""
    features = epoch_features(work, chunk_rows)
    features[EPOCH_TERMS.index("madd_s")] /= speedup
    epoch = _dot(terms, EPOCH_TERMS, features)
    setup = _dot(terms, SETUP_TERMS, setup_features(work))
    compiled = _dot(terms, COMPILE_TERMS, compile_features(work))
    return {"setup_s": setup, "compile_s": compiled, "epoch_s": epoch,
            "total_s": setup + compiled + work.epochs * epoch}


def fit_nonnegative(features, times) -> tuple[list, float]:
    """Coefficients >= 0 that best predict ``times`` from ``features`` (rows of
    numbers) in relative error, and that error's root mean square.

    Every subset of the columns is solved by least squares on rows divided
    by their time, among the solutions with no negative coefficient (the
    columns are few: five at most); of those within ``1.1 x`` the best error
    plus 2 %, the one with the fewest columns wins (few points of a busy
    machine fit noise as well as cost with every column). A column left out
    gets 0.
    """
    A = np.asarray(features, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != t.shape[0] or A.shape[0] == 0:
        raise ValueError("need as many feature rows as times, and at least one")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(t)) and np.all(t > 0)):
        raise ValueError("times must be finite and > 0, features finite")
    W = A / t[:, None]  # each row divided by its time: the residuals are relative
    ones = np.ones_like(t)
    scale = np.where(np.abs(W).max(axis=0) > 0, np.abs(W).max(axis=0), 1.0)
    found = [(float(np.sqrt(np.mean(ones ** 2))), 0, np.zeros(A.shape[1]))]
    for k in range(1, A.shape[1] + 1):
        for cols in itertools.combinations(range(A.shape[1]), k):
            cols = list(cols)
            sol, *_ = np.linalg.lstsq(W[:, cols] / scale[cols], ones, rcond=None)
            sol = sol / scale[cols]
            if np.any(sol < 0) or not np.all(np.isfinite(sol)):
                continue
            full = np.zeros(A.shape[1])
            full[cols] = sol
            found.append((float(np.sqrt(np.mean((W[:, cols] @ sol - 1.0) ** 2))), k, full))
    best_err = min(err for err, _, _ in found)
    err, _, coef = min((f for f in found if f[0] <= 1.1 * best_err + 0.02),
                       key=lambda f: (f[1], f[0]))
    return [float(v) for v in coef], err
