"""The networks the benchmark trains, by name, and how results are labelled.

Plain data, importing nothing heavy: the suite (``bench/cases/``), the
workloads and the report all read it.

``small``
    The original workload: 32 features → 64 sigmoid units → 1 sigmoid
    output, ½·squared error, plain SGD (lr 0.1), mini-batches of 64. Small
    enough that a GPU step is bound by kernel launches.
``small16``
    The small model at half the width: 16 features → 32 sigmoid units → 1,
    trained the same way (issue 15's model: there a step's fixed costs weigh
    most against NumPy's arithmetic). Timed by ``--models small16`` and in
    the ``--ratios`` pairs.
``mnist``
    MNIST-sized: 784 features → 1024 relu → 1024 relu → 10 softmax outputs,
    cross-entropy, Adam (lr 1e-3), mini-batches of 256, on synthetic data of
    MNIST's shape. Big enough that a GPU step is bound by its matmuls; timed
    in batch mode up to N = 1e6 and in mini-batch mode up to N = 6e4 (one
    MNIST epoch), never in sgd mode.
``mid``
    Between the two: 784 features → 256 relu → 256 relu → 10 softmax outputs,
    cross-entropy as ``mnist`` (the same synthetic data), but plain SGD (lr
    0.01) in sgd and mini-batch (64) mode, the steps the fused CuPy kernel
    takes with its parameters in global memory (issue 25: ≤ 30 µs a step on
    an H100/H200). Its steps are timed per step, never in batch mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Workload", "WORKLOADS", "MODEL_ORDER", "DEFAULT_MODELS", "DATA_OF", "workload",
           "model_key", "describe", "label_for"]


@dataclass(frozen=True)
class Workload:
    """One network and how it is trained in the benchmark.

    Attributes
    ----------
    name : str
        The model label recorded as ``extra_info["model"]``.
    layers : tuple of int
        Layer sizes, inputs first.
    hidden_activation, output_activation, loss, optimizer : str
        As :class:`nnbackend.MLP` and ``fit`` name them.
    lr : float
    batch_size : int
        Rows per step in mini-batch mode.
    modes : tuple of str
        The descent modes it is timed in.
    max_n : dict
        ``{mode: largest N}`` it is timed at (None: no limit of its own).
    """

    name: str
    layers: tuple
    hidden_activation: str
    output_activation: str
    loss: str
    optimizer: str
    lr: float
    batch_size: int
    modes: tuple = ("batch", "minibatch", "sgd")
    max_n: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]

    def sizes_for(self, mode, sizes):
        """The N of ``sizes`` this workload is timed at in ``mode`` (none if it skips the mode)."""
        if mode not in self.modes:
            return []
        cap = self.max_n.get(mode)
        return [n for n in sizes if cap is None or n <= cap]


WORKLOADS = {
    "small": Workload("small", (32, 64, 1), "sigmoid", "sigmoid", "mse", "sgd", 0.1, 64),
    "small16": Workload("small16", (16, 32, 1), "sigmoid", "sigmoid", "mse", "sgd", 0.1, 64),
    "mnist": Workload("mnist", (784, 1024, 1024, 10), "relu", "softmax", "cross_entropy", "adam",
                      1e-3, 256, modes=("batch", "minibatch"),
                      max_n={"batch": 1_000_000, "minibatch": 60_000}),
    "mid": Workload("mid", (784, 256, 256, 10), "relu", "softmax", "cross_entropy", "sgd",
                    0.01, 64, modes=("minibatch", "sgd")),
}
MODEL_ORDER = tuple(WORKLOADS)
DEFAULT_MODELS = ("small",)
#: The synthetic data set each model trains on (models of one input and
#: output shape share one draw).
DATA_OF = {"small": "small", "small16": "small16", "mnist": "mnist", "mid": "mnist"}

_LOSS_TEXT = {"mse": "½·squared error", "bce": "binary cross-entropy",
              "cross_entropy": "cross-entropy"}


def workload(name) -> Workload:
    """The workload called ``name``; ValueError naming the choices otherwise."""
    try:
        return WORKLOADS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown benchmark model {name!r}; choose from "
                         f"{', '.join(MODEL_ORDER)}") from None


def model_key(name):
    """Sort key: the declared order, then unknown names alphabetically."""
    return (MODEL_ORDER.index(name), "") if name in MODEL_ORDER else (len(MODEL_ORDER), str(name))


def describe(name) -> str:
    """One line about the model, for the report (the bare name when unknown)."""
    w = WORKLOADS.get(name)
    if w is None:
        return str(name)
    arrows = " → ".join(str(s) for s in w.layers)
    return (f"MLP {arrows} ({w.hidden_activation} hidden, {w.output_activation} output), "
            f"{_LOSS_TEXT.get(w.loss, w.loss)}, {w.optimizer} lr {w.lr:g}, mini-batches of "
            f"{w.batch_size}, float32")


def label_for(implementation, device_kind, backend=None, executor="auto"):
    """The label a result is reported under: what ran and on which kind of device.

    ``nnbackend-<backend>-<kind>`` (``-<executor>`` appended when not the
    default ``auto``) for nnbackend, ``<implementation>-<kind>`` for the
    peers; ``numpy-seed`` runs on the CPU only and keeps its bare name. The
    kind is the device type as the library spells it (``cpu``, ``cuda`` for
    torch and CuPy, ``gpu`` for JAX), so ``nnbackend-torch-cpu`` and
    ``nnbackend-torch-cuda`` are two curves, never one.
    """
    if implementation == "nnbackend":
        label = f"nnbackend-{backend}-{device_kind}"
        return label if executor == "auto" else f"{label}-{executor}"
    if implementation.startswith("numpy-seed"):  # numpy-seed, -bare, -record
        return implementation
    return f"{implementation}-{device_kind}"
