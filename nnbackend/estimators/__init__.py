"""scikit-learn's :class:`MLPClassifier` and :class:`MLPRegressor` on nnbackend.

Estimators with scikit-learn's names, defaults and fitted attributes, so that
swapping the import just works (pipelines, grid searches, ``clone``,
pickling), trained by nnbackend's epochs on any backend: the data goes to the
device once per fit, each epoch runs on it (the reference loop, or a
backend's executor that takes the optimizer), and one device-to-host
transfer per epoch brings back its few scalars (loss, the penalty, the
validation score's parts), which the host-side rules of scikit-learn's
``_fit_stochastic`` then read: ``tol`` and ``n_iter_no_change``, the
``'adaptive'`` learning rate, early stopping on the validation score.

scikit-learn is imported here (the ``sklearn`` extra); ``import nnbackend``
does not import this module until ``nnbackend.MLPClassifier`` is asked for.

Differences from scikit-learn's MLP, each small:

- ``solver='lbfgs'`` (and its ``max_fun``) is not offered (nnbackend trains by
  gradient steps), nor are ``sample_weight``, sparse ``X`` and
  ``MLPRegressor(loss='poisson')``;
- ``alpha`` adds ``alpha / batch_size · W`` to each step's gradient (the
  plan's batch size: scikit-learn divides by the rows of each batch, which
  differ for the epoch's last, smaller batch), and ``loss_`` adds the
  penalty of the weights at the epoch's end, once per batch;
- Adam folds its epsilon into the bias correction as PyTorch does
  (``eps·sqrt(1 - β₂ᵗ)``), a difference of order ``epsilon``;
- the arithmetic is in ``dtype`` (float32 by default) whatever ``X``'s dtype.

With L2 (``alpha > 0``) or a learning-rate schedule the optimizer is a
wrapped one (:func:`nnbackend.optim.l2_penalty`, :func:`~nnbackend.optim.scheduled`).
Every executor runs it: the fused GPU executors (``cupy-fused``,
``cupy-batch``, ``torch-graphs``) carry the penalty and the schedule's
factor in their own update, and the others (``jax-scan``, ``jax-batch``,
``dask-chunks``, the reference loop) call the optimizer's ``update``.
``fit_executor_`` says which ran and why.
"""

from ._mlp import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
