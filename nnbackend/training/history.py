"""What a fit recorded, epoch by epoch."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """What a fit recorded, one entry per epoch run.

    Attributes
    ----------
    loss : list of float
        Training loss as the epoch's batches saw it before their updates
        (summed over the epoch's samples, divided by ``n_samples`` under
        ``reduction="mean"``), as Keras reports it.
    accuracy : list of float
        Training accuracy, counted the same way (sigmoid and softmax outputs
        only; empty otherwise).
    val_loss : list of float
        Loss on the validation data after each epoch (empty without
        validation data).
    val_accuracy : list of float
        Accuracy on the validation data after each epoch, for sigmoid and
        softmax outputs only: empty without validation data, and empty for
        an identity output (regression) even with it.
    mode, batch_size, n_samples
        The plan that was run (``batch_size`` after ``mode`` resolved it;
        ``n_samples`` counts the training rows).
    epochs : int
        Epochs run in this fit (fewer than asked after early stopping or
        divergence).
    best_epoch : int or None
        With early stopping, the best epoch (whose weights were kept under
        ``restore_best_weights``), 1-based in this fit. A resumed fit whose
        best came before it numbers it 0 or less (0: the earlier fit's last
        epoch; on the validation loss, its weights are those this fit started
        from).
    stopped_early : bool
    diverged : str or None
        Why training stopped: the divergence guard's message when an
        epoch's loss or its parameters became NaN or infinite (the message
        says which); None when training stayed finite.
    executor : str
        The executor that ran the epochs (``"cupy-fused"``, ``"jax-scan"``,
        ...), or ``"reference"`` for the reference loop.
    lr_drops : list of int
        With ``lr_schedule='adaptive'``, the epochs after which the learning
        rate was divided by 5.
    executor_reason : str
        Why, starting with that name: asked for, or the first of the
        backend's executors that supports the fit (with how it runs and the
        refusals of those before it), or, for the reference loop under
        ``executor="auto"``, each executor's refusal.
    backend : str
        Where the fit ran: ``"NAME:cpu"`` or ``"NAME:gpu"`` ("" where the
        loop is run without a model).
    backend_choice : dict or None
        Under ``backend="auto"``: the backend chosen and the predicted
        seconds of every candidate, as :func:`nnbackend.explain_backend`
        gives them, and ``choice_seconds``, what choosing took (importing
        and probing the candidates' libraries). None for a named backend.
    blas_threads : int or None
        The BLAS threads the fit ran with, where its backend sets them
        (NumPy's, from the profile); None where left as they were.
    precision : str
        The precision the fit's float32 matmuls ran at: ``"highest"`` (full
        float32: every CPU backend, float64, and the CuPy kernels, which
        compute in float32 FMAs whatever was asked), ``"tf32"`` (tensor
        cores, ``precision="tf32"`` or the library's own TF32 switch), or
        the library's name for another setting (``"bfloat16"``).
    not_resumable : str or None
        Why ``fit(resume=True)`` cannot go on from this fit (an Optimizer
        object, a divergence, best weights restored from an earlier epoch
        than the optimizer state's), or None where it can.
    window : int
        Epochs run between two reads of their figures to the host. 1 where
        a callback, early stopping, a progress bar or the adaptive rate reads
        every epoch. Else up to 8 (``WINDOW_EPOCHS``), or up to 64
        (``WINDOW_EPOCHS_IN_ONE_CALL``) where the executor runs a window's
        epochs in one call and there is no validation data; never more than
        the fit's epochs, and fewer where what the window keeps (each
        epoch's parameters, or in one call each epoch's row order) would
        pass ``WINDOW_BYTES`` (see :mod:`nnbackend.training.loop`). The
        figures are judged epoch by epoch all the same; only when the host
        waits for the device changes.
    """

    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    mode: str = "minibatch"
    batch_size: int = 0
    n_samples: int = 0
    epochs: int = 0
    best_epoch: int | None = None
    stopped_early: bool = False
    diverged: str | None = None
    executor: str = "reference"
    executor_reason: str = ""
    lr_drops: list = field(default_factory=list)
    backend: str = ""
    backend_choice: dict | None = None
    blas_threads: int | None = None
    not_resumable: str | None = None
    window: int = 1
    precision: str = "highest"

    def last(self) -> dict:
        """The last epoch's figures, by name.

        Returns
        -------
        dict of str to float
            The last entry of each of ``loss``, ``accuracy``, ``val_loss``
            and ``val_accuracy`` that has any (empty ones left out).
        """
        names = ("loss", "accuracy", "val_loss", "val_accuracy")
        return {n: getattr(self, n)[-1] for n in names if getattr(self, n)}
