"""The update the generated kernels run: a built-in optimizer, with the L2
penalty and learning-rate factor of a fit's wrappers where they can carry them.

A fit with ``alpha > 0`` or an ``lr_schedule`` (and every scikit-learn
estimator, whose ``alpha`` defaults to 1e-4) hands the executors an
optimizer wrapped by :func:`nnbackend.optim.l2_penalty` and
:func:`nnbackend.optim.scheduled`. The kernels carry:

- the L2 penalty's gradient ``g + coef·p`` on the penalized parameters
  (scikit-learn's: the weights), added before the optimizer sees ``g``, as
  the reference does;
- the learning-rate factor of :func:`~nnbackend.optim.scheduled`, on the
  gradients (``on="grads"``, sgd's and momentum's default) or on the step
  (``on="updates"``, Adam's: ``p + f·(q - p)``): ``'adaptive'``'s constant
  ``scale`` and ``'invscaling'``'s :func:`~nnbackend.optim.inverse_scaling`,
  which changes once per epoch only, so one figure serves a whole launch.
  It goes to the kernels in ``h3``; Adam's epsilon, which ``h3`` otherwise
  carries, then becomes a constant of the source.

Anything else (a schedule function of the caller's own, wrappers nested
another way) is declined with the reason, and the fit takes the reference
loop.
"""

from __future__ import annotations

from .flat import hyper

__all__ = ["KERNEL_OPTIMIZERS", "KernelUpdate", "kernel_update"]

KERNEL_OPTIMIZERS = ("sgd", "momentum", "adam")


class KernelUpdate:
    """The update of one fit as the kernels take it.

    Attributes
    ----------
    name : {'sgd', 'momentum', 'adam'}
        The built-in optimizer.
    opt : Optimizer
        That optimizer (its ``hyper`` are the kernels' ``lr, h1, h2, h3``).
    l2 : float
        The penalty's coefficient (``g + l2·p``); 0 for none.
    penalized : str or None
        A C expression of the flat index ``p`` that is true for the
        penalized parameters; None without a penalty.
    scaled : bool
        Whether :meth:`factor` (``h3``) scales the update: a ``scheduled``
        wrapper is there, and its state is a ``ScheduledState``.
    on : {'grads', 'updates'} or None
        What the factor multiplies (None where nothing is scaled).
    """

    def __init__(self, opt, l2=0.0, penalized=None, schedule=None, scale=1.0, on=None):
        self.name, self.opt = opt.name, opt
        self.l2, self.penalized = float(l2), penalized
        self.schedule, self.scale, self.on = schedule, float(scale), on
        self.scaled = on is not None

    def __str__(self):
        # Written into the kernels' sources: nothing that changes from fit to fit
        # but the penalty (which the source holds anyway), so NVRTC's cache serves.
        parts = [self.name]
        if self.penalized is not None:
            parts.append(f"L2 {self.l2!r}")
        if self.scaled:
            parts.append(f"{'gradients' if self.on == 'grads' else 'steps'} times h3")
        return " + ".join(parts)

    @property
    def constant(self) -> bool:
        """Whether :meth:`factor` is the same at every step of the fit."""
        return self.schedule is None

    def factor(self, count) -> float:
        """The gradients' factor at step ``count`` (1 without a ``scheduled`` wrapper)."""
        if not self.scaled:
            return 1.0
        return self.scale if self.schedule is None else self.scale * self.schedule(count)

    def hyper(self, count, n_steps):
        """``(lr, h1, h2, h3)`` for a launch of ``n_steps`` steps from step ``count``.

        Raises RuntimeError where the factor is not the same over them (an
        ``'invscaling'`` epoch that does not start on an epoch boundary).
        """
        lr, h1, h2, h3 = hyper(self.opt)
        if not self.scaled:
            return lr, h1, h2, h3
        first = self.factor(count)
        if not self.constant and self.factor(count + n_steps - 1) != first:
            raise RuntimeError(f"the learning-rate factor changes within the {n_steps} steps "
                               f"from step {count}: the kernels take one factor a launch")
        return lr, h1, h2, first

    def count(self, state) -> int:
        """The steps the schedule has counted (0 without one)."""
        return int(state.count) if self.scaled else 0

    def inner(self, state):
        """The built-in optimizer's own state inside ``state``."""
        return state.inner[0] if self.scaled else state

    def outer(self, state, inner, n_steps):
        """``state`` after ``n_steps`` steps whose built-in state is now ``inner``."""
        if not self.scaled:
            return inner
        return state._replace(count=int(state.count) + n_steps, inner=[inner])


def wrapped_parts(opt):
    """What an optimizer wrapper is made of (:func:`nnbackend.optim.wrapped_parts`,
    read here from the same attribute: the backends sit below the optimizers)."""
    return getattr(opt.update, "parts", None)


def _penalized(mask, sizes):
    """The C condition on the flat index ``p`` for the parameters ``mask`` marks
    (``[W0, b0, W1, b1, ...]``; None: all of them); None for none."""
    if mask is None:
        return "true"
    ranges, offset = [], 0
    for l, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        for k, size in enumerate((fan_in * fan_out, fan_out)):
            if mask[2 * l + k]:
                if ranges and ranges[-1][1] == offset:
                    ranges[-1] = (ranges[-1][0], offset + size)
                else:
                    ranges.append((offset, offset + size))
            offset += size
    if not ranges:
        return None
    if ranges == [(0, offset)]:
        return "true"
    return " || ".join(f"(p >= {a} && p < {b})" for a, b in ranges)


def kernel_update(opt, plan, sizes):
    """``(KernelUpdate, None)`` for a fit's optimizer the kernels can run, else
    ``(None, why)``.

    Parameters
    ----------
    opt : Optimizer
        The fit's optimizer: built-in, or wrapped in :func:`~nnbackend.optim.l2_penalty`
        around :func:`~nnbackend.optim.scheduled` (either may be absent).
    plan : BatchPlan
        The epoch's plan: an ``'invscaling'`` schedule must count its steps.
    sizes : sequence of int
        The network's layer sizes (the penalty's parameters are located by them).
    """
    l2, mask, on, schedule, scale = 0.0, None, None, None, 1.0
    parts = wrapped_parts(opt)
    if parts is not None and parts[0] == "l2_penalty":
        _, opt, l2, mask = parts
        parts = wrapped_parts(opt)
    if parts is not None and parts[0] == "scheduled":
        _, opt, schedule, scale, on = parts
        key = getattr(schedule, "key", None) if schedule is not None else None
        if schedule is not None and (not key or key[0] != "inverse_scaling"):
            return None, ("a learning-rate schedule of the caller's own (the kernels take "
                          "'invscaling' and 'adaptive')")
        steps = -(-plan.n_samples // plan.batch_size)
        if key is not None and (key[2], key[3]) != (plan.n_samples, steps):
            return None, ("an 'invscaling' schedule counted for another plan than this "
                          "epoch's")
        parts = wrapped_parts(opt)
    if parts is not None:
        return None, ("optimizer wrappers nested in another order (the kernels take "
                      "l2_penalty around scheduled around a built-in optimizer)")
    if getattr(opt, "name", None) not in KERNEL_OPTIMIZERS or opt.hyper is None:
        return None, "a custom optimizer (only the built-in sgd, momentum and adam are fused)"
    penalized = None
    if l2 > 0:
        n_tensors = 2 * (len(sizes) - 1)
        if mask is not None and len(mask) != n_tensors:
            return None, f"an L2 mask of {len(mask)} entries for {n_tensors} parameters"
        penalized = _penalized(mask, sizes)
    return KernelUpdate(opt, l2 if penalized else 0.0, penalized, schedule, scale, on), None
