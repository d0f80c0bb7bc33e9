"""PyTorch: the optimizers' updates as multi-tensor (``torch._foreach_*``) operations.

An eager update launches a dozen kernels per parameter array for Adam; the
foreach operations take every parameter at once, so on CUDA each is one
multi-tensor launch (a few for very many tensors) whatever the number of
arrays: 2 for sgd, 4 for momentum (6 with Nesterov), 12 for Adam, where the
eager forms cost that many per parameter. On the CPU they loop over the
tensors in C++.

The operations and their order are those of the generic updates in
``nnbackend.optim``, with no ``alpha=`` other than 1 (``a + alpha·b`` in one
pass may round as a fused multiply-add; with alpha 1 the product is exact):
the results are the same, and nothing is updated in place.

A scalar may be a 0-D tensor on the device (the step count a CUDA graph
carries): no operation may then read it on the host, since a graph capture
refuses a host sync.
"""

from __future__ import annotations

__all__ = ["fused_updates", "OPTIMIZER_LAUNCHES"]

# Multi-tensor operations per update (the launches on CUDA for up to
# torch's per-launch tensor limit), by fused entry.
OPTIMIZER_LAUNCHES = {"sgd": 2, "momentum": 4, "nesterov": 6, "adam": 12}


def fused_updates(torch):
    """The fused updates for ``xp.nnbackend_fused`` (see ``nnbackend.optim.on_namespace``)."""
    F = torch

    def scalar(x, like):
        # A device scalar (the count carried by a CUDA graph) in the
        # parameters' dtype, as the eager operation would cast it.
        return x.to(like[0].dtype) if isinstance(x, torch.Tensor) else x

    # The foreach operations return tuples; the optimizers' states hold lists.
    def sgd_update(params, grads, lr):
        return list(F._foreach_sub(params, F._foreach_mul(grads, lr)))

    def momentum_update(params, grads, velocity, lr, beta, nesterov):
        velocity = F._foreach_add(F._foreach_mul(velocity, beta), grads)
        direction = F._foreach_add(grads, F._foreach_mul(velocity, beta)) if nesterov else velocity
        return list(F._foreach_sub(params, F._foreach_mul(direction, lr))), list(velocity)

    def adam_update(params, grads, mu, nu, b1, b2, step, eps_hat):
        mu = F._foreach_add(F._foreach_mul(mu, b1), F._foreach_mul(grads, 1 - b1))
        squares = F._foreach_mul(grads, grads)
        nu = F._foreach_add(F._foreach_mul(nu, b2), F._foreach_mul(squares, 1 - b2))
        roots = F._foreach_sqrt(nu)
        if isinstance(eps_hat, torch.Tensor):
            # alpha=1 picks the overload that takes a tensor: without it torch
            # reads a 0-D tensor as a Python number (.item(), a host sync that
            # a CUDA graph's capture refuses; the GPU run of 2026-11-27).
            # Adding 1·b is exact, so the sum is the plain one.
            denom = F._foreach_add(roots, scalar(eps_hat, params), alpha=1)
        else:
            denom = F._foreach_add(roots, eps_hat)
        steps = F._foreach_div(F._foreach_mul(mu, scalar(step, params)), denom)
        return list(F._foreach_sub(params, steps)), list(mu), list(nu)

    return {"sgd_update": sgd_update, "momentum_update": momentum_update,
            "adam_update": adam_update}
