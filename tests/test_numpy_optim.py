"""NumPy's flat Adam update (nnbackend/backends/numpy_optim.py): the generic
update's bits, whatever layout its inputs come in, and nothing passed in is
written to. tests/test_fused_optim.py runs NumPy's updates against the
generic ones over several steps, as the training loop calls them."""

import numpy as np
import pytest

from nnbackend.backends import numpy_optim as no
from nnbackend.optim import get_optimizer

CASES = [("adam", {}), ("adam", {"b1": 0.5, "b2": 0.9, "eps": 1e-6})]
IDS = ["adam", "adam-betas"]
SHAPES = [(5, 4), (4,), (4, 3), (3,)]


def _arrays(rng, dtype, shapes=SHAPES):
    return [rng.normal(size=s).astype(dtype) for s in shapes]


def _fused(opt):
    """``opt`` with the NumPy flat kernel of its name, as optim.on_namespace binds it."""
    from nnbackend.optim import _FUSED

    return opt._replace(update=_FUSED[opt.name](no.FUSED_UPDATES[f"{opt.name}_update"],
                                                **opt.hyper))


def _state_arrays(state):
    return [a for value in state if isinstance(value, list) for a in value]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_each_step_equals_the_generic_update_and_writes_nothing_it_was_given(name, options,
                                                                             dtype):
    rng = np.random.default_rng(0)
    opt = get_optimizer(name, 0.05, **options)
    fused = _fused(opt)
    params = _arrays(rng, dtype)
    state_ref, state_got = opt.init(params), fused.init(params)
    ref, got = params, params
    for _ in range(4):
        grads = _arrays(rng, dtype)
        given = [a.copy() for a in got + grads + _state_arrays(state_got)]
        ref, state_ref = opt.update(grads, state_ref, ref)
        new_got, new_state = fused.update(grads, state_got, got)
        for a, b in zip(got + grads + _state_arrays(state_got), given):
            assert a.tobytes() == b.tobytes()
        got, state_got = new_got, new_state
        for a, b in zip(got + _state_arrays(state_got), ref + _state_arrays(state_ref)):
            assert a.tobytes() == b.tobytes() and a.shape == b.shape and a.dtype == b.dtype


def test_a_steps_results_are_views_of_one_flat_array_the_next_step_takes_whole():
    rng = np.random.default_rng(1)
    params, grads = _arrays(rng, "float32"), _arrays(rng, "float32")
    mu, nu = [0 * p for p in params], [0 * p for p in params]
    new_params, new_mu, _ = no.adam_update(params, grads, mu, nu, 0.9, 0.999, 0.01, 1e-8)
    assert new_mu[0].base is not new_params[0].base
    base = new_params[0].base
    assert base is not None and base.ndim == 1 and base.size == sum(p.size for p in params)
    assert all(p.base is base for p in new_params)
    assert no._flat(new_params) is base  # no copy
    # The same views in another order, or some of them, are concatenated anew.
    reordered = new_params[::-1]
    assert no._flat(reordered) is not base
    np.testing.assert_array_equal(no._flat(reordered),
                                  np.concatenate([p.ravel() for p in reordered]))
    assert no._flat(new_params[:2]) is not base


def test_reordered_or_foreign_views_still_give_the_generic_results():
    rng = np.random.default_rng(2)
    opt = get_optimizer("adam", 0.01)
    fused = _fused(opt)
    params = _arrays(rng, "float64")
    grads = _arrays(rng, "float64")
    p1, s1 = fused.update(grads, fused.init(params), params)
    # Reversed lists: the views of one flat array, not in its order.
    rev = lambda xs: xs[::-1]  # noqa: E731
    state = type(s1)(s1.count, rev(s1.mu), rev(s1.nu))
    got, got_state = fused.update(rev(grads), state, rev(p1))
    want, want_state = opt.update(rev(grads), state, rev(p1))
    for a, b in zip(got + got_state.mu + got_state.nu, want + want_state.mu + want_state.nu):
        assert a.tobytes() == b.tobytes()


def test_mixed_dtypes_take_the_generic_formulas():
    rng = np.random.default_rng(3)
    params = _arrays(rng, "float32")
    grads = _arrays(rng, "float64")
    for name, options in CASES:
        opt = get_optimizer(name, 0.05, **options)
        fused = _fused(opt)
        ref = opt.update(grads, opt.init(params), params)
        got = fused.update(grads, fused.init(params), params)
        for a, b in zip(ref[0] + _state_arrays(ref[1]), got[0] + _state_arrays(got[1])):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_the_layout_table_stays_bounded():
    rng = np.random.default_rng(4)
    params, grads = _arrays(rng, "float32"), _arrays(rng, "float32")
    kept = []
    mu, nu = [0 * p for p in params], [0 * p for p in params]
    for _ in range(no._MAX_LAYOUTS):
        params, mu, nu = no.adam_update(params, grads, mu, nu, 0.9, 0.999, 0.01, 1e-8)
        kept.append((params, mu, nu))  # alive: the table must still evict
    assert len(no._LAYOUTS) <= no._MAX_LAYOUTS
    # The latest step's views are still found whole.
    assert no._flat(params) is params[0].base
