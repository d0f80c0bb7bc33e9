"""Optimizers as pairs of pure functions over lists of arrays.

Each optimizer is an :class:`Optimizer` ``(init, update)``:

* ``init(params) -> state``
* ``update(grads, state, params) -> (new_params, new_state)``

``params`` and ``grads`` are flat lists of arrays of one namespace (the model
flattens its ``[(W, b), ...]``). Nothing is mutated: every step returns new
arrays and a new state, so the same functions run eagerly on NumPy, CuPy or
PyTorch and trace under ``jax.jit``. No array library is imported here; the
step count and bias corrections are host-side Python numbers on the
reference loop (device scalars inside a compiled epoch or a CUDA graph), so
no step reads a device value.

A backend's namespace may offer the built-in updates fused (one kernel per
parameter, or one multi-tensor kernel per operation for all parameters) in
``xp.nnbackend_fused`` under ``"sgd_update"``, ``"momentum_update"`` and
``"adam_update"``; :func:`on_namespace` binds an optimizer to them once per
fit. They compute the formulas below in the same order (see each factory's
``_fused_*`` for the signature), so the results are the same.

Wrappers add what scikit-learn's MLP has on top of a plain optimizer:
:func:`l2_penalty` (its ``alpha``) and :func:`scheduled` with
:func:`inverse_scaling` (its ``learning_rate``; ``'adaptive'`` is
``scheduled(..., scale=...)`` rebuilt with a smaller scale by the host
between epochs, see :mod:`nnbackend.estimators`). They are optimizers like
the others, pure and on the device: their scalars are host numbers, so no
step reads a device value. A wrapped optimizer has no ``name``; its
``update`` says what it wraps (:func:`wrapped_parts`). The CuPy kernels
(``cupy-fused``, ``cupy-batch``) read that and carry the penalty and the
``'invscaling'`` and ``'adaptive'`` factors
(:mod:`nnbackend.backends.cupy.kernel_update`); ``torch-graphs`` captures
them too (the step count a device scalar). A schedule function of the
caller's own they decline, and the epochs run through the reference loop. The executors that
call ``update`` themselves (``jax-scan``, ``jax-batch``, ``dask-chunks``)
run every wrapper, jax's where it can trace the schedule function (it
declines one that needs a Python number of the count).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable, NamedTuple

from array_api_compat import array_namespace

from .checks import check_fraction, check_positive

__all__ = [
    "Optimizer", "sgd", "momentum", "adam", "get_optimizer", "OPTIMIZERS",
    "state_fields", "state_from_fields", "on_namespace",
    "l2_penalty", "scheduled", "ScheduledState", "inverse_scaling", "update_key",
    "wrapped_parts",
]


class Optimizer(NamedTuple):
    """An optimizer: ``init(params) -> state``, ``update(grads, state, params) -> (params, state)``.

    Both are pure functions: ``update`` returns new arrays and a new state,
    never changing its inputs, so it works on immutable arrays (JAX) and
    inside ``jax.jit``. ``params`` and ``grads`` are flat lists
    ``[W0, b0, W1, b1, ...]`` of the backend's arrays, each ``W`` of shape
    (fan_in, fan_out) and each ``b`` of shape (fan_out,); the state holds
    arrays of the same shapes (or none).

    ``name`` and ``hyper`` (its hyperparameters by name) describe the built-in
    optimizers, so that an executor that re-implements them (the CuPy
    kernels) can run the same update without calling ``update``, and
    :func:`on_namespace` can swap in a fused form. The wrappers
    (:func:`l2_penalty`, :func:`scheduled`) leave them None too, but the
    CuPy kernels read what they wrap through :func:`wrapped_parts` and
    re-implement them as well. An optimizer of the caller's own functions
    is declined by the CuPy kernels and by torch's CUDA graphs, so its
    steps always compute its ``update``: called at each step, or traced
    once into a compiled epoch (the JAX executors).

    Attributes
    ----------
    init : callable
        ``init(params) -> state``.
    update : callable
        ``update(grads, state, params) -> (params, state)``: one step.
    name : str or None
        ``'sgd'``, ``'momentum'`` or ``'adam'`` for the built-in ones.
    hyper : dict or None
        Their hyperparameters, e.g. ``{"lr": 0.1}``.
    """

    init: Callable[[list], Any]
    update: Callable[[list, Any, list], tuple[list, Any]]
    name: str | None = None
    hyper: dict | None = None


def sgd(lr: float) -> Optimizer:
    """Plain gradient descent: ``p ← p - lr·g``.

    Parameters
    ----------
    lr : float
        The learning rate, finite and > 0.

    Returns
    -------
    Optimizer
        Its state is empty; ``update`` takes and returns the flat lists of
        parameters (``W`` of shape (fan_in, fan_out), ``b`` of (fan_out,)).
    """
    lr = check_positive("lr", lr)

    def init(params):
        return ()

    def update(grads, state, params):
        return [p - lr * g for p, g in zip(params, grads)], state

    return Optimizer(init, update, "sgd", {"lr": lr})


class MomentumState(NamedTuple):
    velocity: list


def momentum(lr: float, beta: float = 0.9, nesterov: bool = False) -> Optimizer:
    """Heavy-ball momentum, as ``torch.optim.SGD(momentum=beta, nesterov=...)``.

    ``v ← beta·v + g``; ``p ← p - lr·v``, or ``p ← p - lr·(g + beta·v)`` with
    Nesterov's look-ahead.

    Parameters
    ----------
    lr : float
        The learning rate, finite and > 0.
    beta : float, default 0.9
        The momentum, in [0, 1].
    nesterov : bool, default False

    Returns
    -------
    Optimizer
        Its state is one velocity per parameter, of the parameter's shape.
    """
    lr = check_positive("lr", lr)
    beta = check_fraction("beta", beta, one=True)  # 1: a velocity that never decays

    def init(params):
        return MomentumState([array_namespace(p).zeros_like(p) for p in params])

    def update(grads, state, params):
        velocity = [beta * v + g for v, g in zip(state.velocity, grads)]
        if nesterov:
            steps = [g + beta * v for g, v in zip(grads, velocity)]
        else:
            steps = velocity
        return [p - lr * s for p, s in zip(params, steps)], MomentumState(velocity)

    return Optimizer(init, update, "momentum", {"lr": lr, "beta": beta, "nesterov": bool(nesterov)})


class AdamState(NamedTuple):
    count: int  # steps taken, a host integer
    mu: list  # first moment estimates
    nu: list  # second moment estimates


def adam(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba, 2015) with bias correction, as ``torch.optim.Adam``.

    Parameters
    ----------
    lr : float
        The learning rate, finite and > 0.
    b1, b2 : float, default 0.9 and 0.999
        The decay rates of the first and second moment estimates, in [0, 1).
    eps : float, default 1e-8
        Added to the second moment's square root, > 0.

    Returns
    -------
    Optimizer
        Its state is the step count and two moment estimates per parameter,
        each of the parameter's shape.
    """
    lr = check_positive("lr", lr)
    b1 = check_fraction("b1", b1)
    b2 = check_fraction("b2", b2)
    eps = check_positive("eps", eps)

    def init(params):
        zeros = [array_namespace(p).zeros_like(p) for p in params]
        return AdamState(0, zeros, [array_namespace(p).zeros_like(p) for p in params])

    def update(grads, state, params):
        count = state.count + 1
        mu = [b1 * m + (1 - b1) * g for m, g in zip(state.mu, grads)]
        nu = [b2 * v + (1 - b2) * (g * g) for v, g in zip(state.nu, grads)]
        # Inline rather than a call to _adam_scalars (the same formula): this
        # runs on every step, and NumPy's steps are microseconds.
        if isinstance(count, int):  # the host loop's count
            root = (1 - b2**count) ** 0.5
            step = lr * root / (1 - b1**count)
            eps_hat = eps * root
        else:
            step, eps_hat = _adam_scalars(count, lr, b1, b2, eps, like=params[0])
        xp = array_namespace(params[0])
        new_params = [p - step * m / (xp.sqrt(v) + eps_hat) for p, m, v in zip(params, mu, nu)]
        return new_params, AdamState(count, mu, nu)

    return Optimizer(init, update, "adam", {"lr": lr, "b1": b1, "b2": b2, "eps": eps})


def _adam_scalars(count, lr, b1, b2, eps, like):
    """Adam's step size and epsilon at step ``count``, bias corrections folded in.

    Host floats (or, when a compiled epoch or a CUDA graph carries the count
    on the device, 0-D arrays): folded into the step size, the corrections
    keep the per-step work on the device to one pass per array.

    An integer count on the device (a compiled JAX epoch's) reads the host
    loop's own values, rounded to ``like``'s dtype, from a table made on the
    host (:func:`_adam_table`): the same bits as the reference loop's, with
    or without JAX's x64 (computed on the device, they took float32 or
    float64 arithmetic by that global switch, and a float32 fit's bits
    depended on an earlier float64 fit). Past a table that stops short of
    the corrections' end (``b2`` very near 1), ``-expm1(count · log b)`` in
    ``like``'s dtype, ``log b`` taken on the host in float64, keeps that
    dtype's own precision (a few units in the last place). A float64 count
    (the CUDA graphs') takes the host's formula, for float64 fits to equal
    the host loop's to the last bits. Both come back in the dtype of
    ``like`` (a parameter), as :func:`_in_dtype_of` says why.
    """
    if isinstance(count, numbers.Real):  # a host number (NumPy's scalars too)
        root = (1 - b2**count) ** 0.5
        step, eps_hat = lr * root / (1 - b1**count), eps * root
    else:
        xp = array_namespace(count)
        if count.dtype == xp.float64:
            root = (1 - b2**count) ** 0.5
            first = 1 - b1**count
        else:
            return _adam_device_scalars(xp, count, lr, b1, b2, eps, like)
        step, eps_hat = lr * root / first, eps * root
    return _in_dtype_of(step, like), _in_dtype_of(eps_hat, like)


def _adam_device_scalars(xp, count, lr, b1, b2, eps, like):
    """:func:`_adam_scalars` of an integer count on the device: the table's entry."""
    steps, eps_hats, complete = _adam_table(lr, b1, b2, eps)
    at = xp.minimum(count, len(steps)) - 1  # counts start at 1; the table's last entry holds
    step = xp.asarray(steps, dtype=like.dtype)[at]
    eps_hat = xp.asarray(eps_hats, dtype=like.dtype)[at]
    if complete:
        return step, eps_hat
    t = xp.astype(count, like.dtype)  # the parameters' dtype, x64 or not
    root = xp.sqrt(-xp.expm1(t * math.log(b2))) if b2 > 0 else 1.0  # (0**count: 0)
    first = -xp.expm1(t * math.log(b1)) if b1 > 0 else 1.0
    later = count > len(steps)
    return (xp.where(later, _in_dtype_of(lr * root / first, like), step),
            xp.where(later, _in_dtype_of(eps * root, like), eps_hat))


# The most steps an Adam table holds (see _adam_table): 2**16 reach the end of
# the corrections for b2 up to about 0.99936 (0.999 by default: 41,600 steps).
_ADAM_TABLE_STEPS = 1 << 16


@functools.lru_cache(maxsize=32)
def _adam_table(lr, b1, b2, eps):
    """The host loop's ``(step, eps_hat)`` at counts 1, 2, ..., as Python floats, and
    whether they reach the end of the bias corrections.

    They end where ``b1**count`` and ``b2**count`` are both below 2**-60:
    from there on ``1 - b**count`` is exactly 1 in float64 (so ``step`` is
    ``lr`` and ``eps_hat`` is ``eps``, the table's last entry, at every later
    count), and ``-expm1`` on the device is exactly 1 too. Made once per
    setting (about 20 ms for 41,600 steps), at the compilation of an epoch.
    """
    steps, eps_hats = [], []
    for count in range(1, _ADAM_TABLE_STEPS + 1):
        root = (1 - b2**count) ** 0.5  # the host loop's formula (adam's update)
        steps.append(lr * root / (1 - b1**count))
        eps_hats.append(eps * root)
        if b1**count < 2.0**-60 and b2**count < 2.0**-60:
            return steps, eps_hats, True
    return steps, eps_hats, False


def _factor(schedule, count, like=None):
    """``schedule(count)``, refused where it is a host number that is not finite and >= 0.

    A fit checks ``schedule(0)`` before it starts; a later factor that goes
    negative would climb the loss, and a NaN would stop the fit with no word of
    why. A factor computed on the device (a traced or device count) is not read
    back: that would cost a host synchronisation per step.
    """
    # Ours (inverse_scaling) takes a parameter, to compute in its dtype.
    factor = schedule(count, like=like) if getattr(schedule, "takes_like", False) \
        else schedule(count)
    if isinstance(factor, numbers.Real) and not (math.isfinite(factor) and factor >= 0):
        raise ValueError(f"lr_schedule({count}) returned {factor!r}; the learning rate's "
                         f"factor must be a finite number >= 0 at every step")
    return factor


def _in_dtype_of(value, array):
    """``value``, a factor the update computed from a step count, in ``array``'s dtype.

    A Python number is weakly typed: the array's dtype wins, and float32
    parameters take it rounded to float32. A count carried on the device (a
    CUDA graph's, a compiled epoch's) is a 0-D array, often float64; on
    NumPy the factors computed from it are NumPy scalars, and so is what a
    schedule of the caller's returns (``np.exp(-t / 100)``). Under NumPy 2's
    promotion (CuPy's, the standard's) neither is weak: multiplied into
    float32 gradients, a float64 factor would make the update run in
    float64, and its results differ from the host loop's in the last
    float32 bits. So a host number goes on as a Python float (``float()``
    of a host scalar reads no device) and a device scalar is cast to the
    array's dtype: either way the factor is the one the host loop rounds.
    """
    if isinstance(value, numbers.Real):
        return value if type(value) in (int, float) else float(value)
    if value.dtype == array.dtype:
        return value
    return array_namespace(array).astype(value, array.dtype)


OPTIMIZERS = {"sgd": sgd, "momentum": momentum, "adam": adam}


# -- fused updates -------------------------------------------------------------------
# Each takes the namespace's fused kernel and the optimizer's hyperparameters
# and returns an ``update`` with the generic one's signature and results. The
# kernel receives whole lists (one multi-tensor launch per operation, or one
# launch per parameter) and returns new lists; nothing is mutated.

def _fused_sgd(kernel, lr):
    # kernel(params, grads, lr) -> new params
    def update(grads, state, params):
        return kernel(params, grads, lr), state

    return update


def _fused_momentum(kernel, lr, beta, nesterov):
    # kernel(params, grads, velocity, lr, beta, nesterov) -> (new params, new velocity)
    def update(grads, state, params):
        new_params, velocity = kernel(params, grads, state.velocity, lr, beta, nesterov)
        return new_params, MomentumState(velocity)

    return update


def _fused_adam(kernel, lr, b1, b2, eps):
    # kernel(params, grads, mu, nu, b1, b2, step, eps_hat) -> (new params, mu, nu)
    def update(grads, state, params):
        count = state.count + 1
        step, eps_hat = _adam_scalars(count, lr, b1, b2, eps, like=params[0])
        new_params, mu, nu = kernel(params, grads, state.mu, state.nu, b1, b2, step, eps_hat)
        return new_params, AdamState(count, mu, nu)

    return update


_FUSED = {"sgd": _fused_sgd, "momentum": _fused_momentum, "adam": _fused_adam}


def on_namespace(opt: Optimizer, xp) -> Optimizer:
    """``opt`` with its update fused where the namespace ``xp`` offers a fused kernel for it.

    Called once per fit (the training loop does); a custom optimizer, or a
    namespace without ``xp.nnbackend_fused[NAME + "_update"]``, gets ``opt``
    back unchanged; :func:`l2_penalty` and :func:`scheduled` come back
    rewrapped around the optimizer they wrap, bound. ``init``, ``name`` and
    ``hyper`` stay the same, and so does the state's layout, so checkpoints
    and the fused executors (which judge an optimizer by its name) see no
    difference.
    """
    rebind = getattr(opt.update, "rebind", None)
    if rebind is not None:  # a wrapper (l2_penalty, scheduled): bind the optimizer it wraps
        return rebind(xp)
    make = _FUSED.get(opt.name) if opt.hyper is not None else None
    if make is None:
        return opt
    kernel = (getattr(xp, "nnbackend_fused", None) or {}).get(f"{opt.name}_update")
    if kernel is None:
        return opt
    return opt._replace(update=make(kernel, **opt.hyper))


def get_optimizer(optimizer, lr: float, **options) -> Optimizer:
    """An :class:`Optimizer` from a name in :data:`OPTIMIZERS` (built with ``lr``
    and ``options``) or an :class:`Optimizer` given as is."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    try:
        factory = OPTIMIZERS[optimizer]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}"
        ) from None
    return factory(lr, **options)


def state_fields(state):
    """A state's fields split into ``(scalars, array_lists)`` dicts, for checkpoints.

    The built-in optimizers' states are NamedTuples whose fields are host
    numbers or lists of arrays (one per parameter); ``()`` for stateless
    ones. A wrapper's state holds another state, not arrays: pass the
    wrapped one (``state.inner[0]`` of a :class:`ScheduledState`), as the
    training loop does; the wrapper's own count follows from the epochs.

    Raises ``TypeError`` for a state that holds another state.
    """
    scalars, array_lists = {}, {}
    for name, value in zip(getattr(state, "_fields", ()), state):
        if isinstance(value, list) and any(isinstance(v, tuple) for v in value):
            raise TypeError(
                f"state_fields: field {name!r} of {type(state).__name__} holds an optimizer "
                "state, not arrays; pass the wrapped state (state.inner[0])")
        (array_lists if isinstance(value, list) else scalars)[name] = value
    return scalars, array_lists


def state_from_fields(template, scalars, array_lists):
    """Rebuild a state like ``template`` (from ``init``) out of :func:`state_fields`' parts.

    Raises ``ValueError`` when the parts do not fit the template's fields or shapes.
    """
    names = getattr(template, "_fields", ())
    if set(names) != set(scalars) | set(array_lists):
        raise ValueError(
            f"optimizer state has fields {sorted(set(scalars) | set(array_lists))}, "
            f"expected {sorted(names)}"
        )
    values = {}
    for name, current in zip(names, template):
        if isinstance(current, list):
            arrays = array_lists.get(name)
            if arrays is None or len(arrays) != len(current) or any(
                tuple(a.shape) != tuple(c.shape) for a, c in zip(arrays, current)
            ):
                raise ValueError(f"optimizer state field {name!r} does not match the parameters")
            values[name] = list(arrays)
        else:
            values[name] = scalars[name]
    return type(template)(**values) if names else template


# -- wrappers: L2 penalty and learning-rate schedules ------------------------------

def l2_penalty(opt: Optimizer, coef: float, mask=None) -> Optimizer:
    """``opt`` run on the gradients of the loss plus ``coef/2·‖p‖²``: ``g ← g + coef·p``.

    Parameters
    ----------
    opt : Optimizer
        The optimizer that takes the penalized gradients.
    coef : float
        The penalty's coefficient per step, ``>= 0``. scikit-learn's MLP adds
        ``alpha/2·‖W‖²`` over the batch's ``n`` rows to a mean loss, so its
        gradient is ``mean_grad + (alpha / n)·W``: pass ``alpha / batch_size``.
    mask : sequence of bool, optional
        Which parameters (of the flat list ``[W0, b0, W1, b1, ...]``) are
        penalized; default all. scikit-learn penalizes the weights alone:
        ``[True, False] * n_layers``.

    Returns
    -------
    Optimizer
        ``opt`` itself where ``coef == 0`` (no penalty, nothing to wrap).
        Else a wrapper with the same ``init`` and state as ``opt``; no
        ``name``, and :func:`wrapped_parts` says what it wraps (for the CuPy
        kernels).

    Raises
    ------
    TypeError
        ``coef`` is not a number.
    ValueError
        ``coef`` is negative, NaN or infinite.
    """
    coef = _nonnegative("coef", coef)
    if coef == 0:
        return opt
    keep = None if mask is None else [bool(m) for m in mask]

    def update(grads, state, params):
        which = keep if keep is not None else [True] * len(params)
        grads = [g + coef * p if m else g for g, p, m in zip(grads, params, which)]
        return opt.update(grads, state, params)

    update.rebind = lambda xp: l2_penalty(on_namespace(opt, xp), coef, mask)
    # What it is made of, for executors that re-implement it (wrapped_parts).
    update.parts = ("l2_penalty", opt, coef, None if keep is None else tuple(keep))
    inner = update_key(opt)
    update.key = None if inner is None else ("l2_penalty", coef, None if keep is None
                                             else tuple(keep), inner)
    return Optimizer(opt.init, update)


class ScheduledState(NamedTuple):
    count: int  # steps taken, a host integer (a compiled epoch adds its steps on the host)
    inner: list  # [the wrapped optimizer's state]: a list, so executors carry it as arrays


def inverse_scaling(power_t: float, n_samples: int, steps_per_epoch: int,
                    samples_before: int = 0, first_epoch_initial: bool = False) -> Callable:
    """scikit-learn's ``learning_rate='invscaling'`` as a schedule of the step count.

    ``lr_t = lr / (t + 1) ** power_t``, ``t`` the samples seen before the
    current epoch (scikit-learn updates it once per epoch): ``samples_before``
    (seen in earlier fits) and ``n_samples`` for each of this fit's epochs
    before. Returns ``factor(count) -> lr_t / lr`` for :func:`scheduled`,
    ``count`` a host int, or a device scalar in a compiled epoch.

    The caller starts the count at ``factor.start`` (:func:`scheduled`'s
    ``init`` starts it at 0: replace the state's count, as the training loop
    and the estimators do): the whole epochs of ``n_samples`` in
    ``samples_before``, in this fit's steps. So the samples before are a
    value of the state, which a compiled epoch takes at run time, and one
    compilation serves every resumed fit on the same rows: only the rest
    (``samples_before`` modulo ``n_samples``) is in ``factor.key``.
    ``first_epoch_initial`` runs the fit's first epoch at ``lr`` itself, as
    scikit-learn's warm start does (its optimizer is new); its whole epochs
    are then in the key too.
    """
    power_t = _nonnegative("power_t", power_t)
    if int(samples_before) < 0:
        raise ValueError(f"samples_before must be >= 0; got {samples_before!r}")
    whole, rest = divmod(int(samples_before), int(n_samples))
    # (With no samples before, the first epoch is at lr anyway: one key for both.)
    first_epoch_initial = bool(first_epoch_initial) and samples_before > 0

    def factor(count, like=None):
        # Samples counted in floats: a traced count is int32 (JAX without x64),
        # whose products wrap past 2**31; a host int's are exact either way.
        epoch = count // steps_per_epoch
        if like is not None and not isinstance(epoch, numbers.Real):
            xp = array_namespace(epoch)
            if xp.isdtype(epoch.dtype, "integral"):
                # In the parameters' dtype, as Adam's (see _adam_scalars): an
                # integer times a Python float takes JAX's default float, which
                # x64 (an earlier float64 fit) would change.
                epoch = xp.astype(epoch, like.dtype)
        seen = epoch * float(n_samples) + float(rest)
        if first_epoch_initial and isinstance(count, numbers.Real):
            seen = 0.0 if epoch == whole else seen
        elif first_epoch_initial:  # 0 in this fit's first epoch (no `if` on a device scalar)
            # (A bool array times a float: the standard has no arithmetic on bools.)
            seen = seen * array_namespace(seen).astype(epoch != whole, seen.dtype)
        return (seen + 1.0) ** (-power_t)

    factor.takes_like = True
    factor.start = whole * int(steps_per_epoch)
    factor.key = ("inverse_scaling", power_t, int(n_samples), int(steps_per_epoch), rest,
                  whole if first_epoch_initial else None)
    return factor


def scheduled(opt: Optimizer, schedule: Callable | None = None, scale: float = 1.0,
              on: str | None = None) -> Optimizer:
    """``opt`` with its learning rate multiplied by ``scale · schedule(count)`` at each step.

    Parameters
    ----------
    opt : Optimizer
        Built with the initial learning rate.
    schedule : callable, optional
        ``schedule(count) -> factor``, ``count`` the steps taken before this
        one (e.g. :func:`inverse_scaling`); None is a constant 1.
    scale : float
        A constant factor: scikit-learn's ``'adaptive'`` divides the
        learning rate by 5 on a plateau, which the caller does by rebuilding
        the optimizer with ``scale / 5`` and keeping its state.
    on : {'grads', 'updates'}, optional
        Where the factor goes. ``'grads'`` (the default for sgd and
        momentum) multiplies the gradients: for momentum that puts the
        learning rate inside the velocity, as scikit-learn's SGD does
        (``v ← μ·v - lr_t·g``). ``'updates'`` (the default otherwise, Adam)
        multiplies the step ``p_new - p``.

    Returns
    -------
    Optimizer
        State :class:`ScheduledState`; no ``name`` (see :func:`l2_penalty`).
    """
    scale = check_positive("scale", scale)
    on = on or ("grads" if opt.name in ("sgd", "momentum") else "updates")
    if on not in ("grads", "updates"):
        raise ValueError(f"on must be 'grads' or 'updates'; got {on!r}")

    def init(params):
        return ScheduledState(0, [opt.init(params)])

    def update(grads, state, params):
        f = scale if schedule is None else _in_dtype_of(
            scale * _factor(schedule, state.count, params[0]), params[0])
        if on == "grads":
            new_params, inner = opt.update([f * g for g in grads], state.inner[0], params)
        else:
            stepped, inner = opt.update(grads, state.inner[0], params)
            new_params = [p + f * (q - p) for p, q in zip(params, stepped)]
        return new_params, ScheduledState(state.count + 1, [inner])

    update.rebind = lambda xp: scheduled(on_namespace(opt, xp), schedule, scale, on)
    update.parts = ("scheduled", opt, schedule, scale, on)
    inner = update_key(opt)
    how = None if schedule is None else getattr(schedule, "key", None)
    update.key = (None if inner is None or (schedule is not None and how is None)
                  else ("scheduled", how, scale, on, inner))
    return Optimizer(init, update)


def wrapped_parts(opt: Optimizer):
    """What a wrapper made ``opt`` of, or None for any other optimizer.

    Returns
    -------
    tuple or None
        ``("l2_penalty", inner, coef, mask)`` for :func:`l2_penalty`'s
        (``mask`` a tuple of bools, or None for every parameter),
        ``("scheduled", inner, schedule, scale, on)`` for :func:`scheduled`'s;
        None for a built-in optimizer or one of the caller's own. An
        executor that re-implements the built-in updates (a fused kernel)
        reads the wrappers' settings from it.
    """
    return getattr(opt.update, "parts", None)


def update_key(opt: Optimizer):
    """What identifies ``opt``'s update, for caches of compiled epochs; None if unknown.

    Two optimizers with the same key make the same updates, so an epoch
    compiled around one (JAX's executors) can serve the other: a built-in
    gives its name and hyperparameters, :func:`l2_penalty` and
    :func:`scheduled` their own settings and the key of what they wrap (a
    schedule function counts where it carries a ``key``, as
    :func:`inverse_scaling`'s does); anything else gives None and is
    compiled afresh each fit.

    Parameters
    ----------
    opt : Optimizer

    Returns
    -------
    tuple or None
        A hashable description of the update.
    """
    if opt.name is not None and opt.hyper is not None:
        return opt.name, tuple(sorted(opt.hyper.items()))
    return getattr(opt.update, "key", None)


def _nonnegative(name, value):
    """``value`` as a float if it is a finite number ``>= 0``. Else a refusal
    naming it: ``TypeError`` where ``float(value)`` fails, ``ValueError``
    where the number is negative, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number; got {value!r}") from None
    if not (number >= 0 and number != float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return number
