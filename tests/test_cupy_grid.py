"""The fused epoch kernel over the whole grid (``grid.py``) against the one-block kernel.

Each element is computed by one thread in the same order whichever block
runs it, so the grid-wide kernel gives the one-block kernel's results bit
for bit. Without a GPU both are built for the host (the grid's blocks as
threads, one at a time, the grid barrier handing over); with CuPy on a GPU,
the CUDA builds are compared the same way.
"""


import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends.cupy import fused as F
from nnbackend.backends.cupy import grid as G
from nnbackend.data import host_rng, make_plan
from nnbackend.optim import get_optimizer

from test_cupy_batch import _cupy_gpu
from test_cupy_fused import NETWORKS, _problem
from conftest import needs_cxx



def _epochs(am, model, X, Y, multiclass, opt, batch_size, launcher, epochs=2):
    n, dtype = X.shape[0], str(X.dtype)
    plan = make_plan("minibatch", n, batch_size)
    layout = F.Layout(model.layer_sizes, plan.batch_size, dtype, params_in="global",
                      acts_in="global")
    epoch = F.make_epoch(am, model.spec, opt, plan, X, Y, multiclass, model.layer_sizes, dtype,
                         launcher, layout=layout)
    params = [am.asarray(p) for p in model.flat_params]
    state, rng, figures = opt.init(params), host_rng(0), []
    for _ in range(epochs):
        params, state, loss, hits = epoch(params, state, plan.order(rng))
        figures.append((float(loss), None if hits is None else float(hits)))
    return [np.asarray(p.get() if hasattr(p, "get") else p) for p in params], figures


@needs_cxx
@pytest.mark.parametrize("n_blocks", [1, 3, 7])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("hidden, output, loss, k", NETWORKS)
def test_grid_kernel_equals_the_one_block_kernel(hidden, output, loss, k, optimizer, n_blocks):
    model, X, Y, multiclass = _problem(hidden, output, loss, k, "float64", n=37)
    opt = get_optimizer(optimizer, 0.05)
    one = _epochs(np, model, X, Y, multiclass, opt, 8, F.host_launcher)
    grid = _epochs(np, model, X, Y, multiclass, opt, 8, G.host_grid_launcher(n_blocks))
    assert grid[1] == one[1]
    for a, b in zip(grid[0], one[0]):
        assert a.tobytes() == b.tobytes()


@needs_cxx
@pytest.mark.parametrize("batch_size", [1, 16])
def test_grid_kernel_float32_sgd_steps(batch_size):
    model, X, Y, multiclass = _problem("sigmoid", "sigmoid", "mse", 1, "float32", n=33)
    opt = get_optimizer("sgd", 0.1)
    one = _epochs(np, model, X, Y, multiclass, opt, batch_size, F.host_launcher)
    grid = _epochs(np, model, X, Y, multiclass, opt, batch_size, G.host_grid_launcher(5))
    assert grid[1] == one[1]
    for a, b in zip(grid[0], one[0]):
        assert a.tobytes() == b.tobytes()


@needs_cxx
def test_grid_kernel_needs_its_barrier():
    model, X, Y, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float64", n=37)
    opt = get_optimizer("sgd", 0.1)
    one = _epochs(np, model, X, Y, multiclass, opt, 8, F.host_launcher)
    broken = G.host_grid_launcher(3, transform=lambda s: G.grid_source(s, grid_barrier=False))
    grid = _epochs(np, model, X, Y, multiclass, opt, 8, broken)
    assert grid[1] != one[1]


def test_grid_source_takes_only_the_global_work_region():
    model, _, _, multiclass = _problem("tanh", "sigmoid", "bce", 1, "float64", n=37)
    shared = F.Layout(model.layer_sizes, 8, "float64")
    source = F.kernel_source(shared, model.spec, "sgd", "float64", multiclass)
    with pytest.raises(ValueError, match="work in global memory"):
        G.grid_source(source)


@pytest.mark.skipif(_cupy_gpu() is not None, reason=f"needs CuPy on a GPU: {_cupy_gpu()}")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes, batch_size", [([784, 256, 256, 10], 1), ([32, 64, 3], 64)])
def test_cuda_grid_kernel_equals_the_one_block_kernel(dtype, sizes, batch_size):
    import cupy

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], size=300)
    Y = np.eye(sizes[-1], dtype=dtype)[labels]
    model = nb.MLP(sizes, backend="numpy", hidden_activation="relu", output_activation="softmax",
                   loss="cross_entropy", dtype=dtype, seed=0)
    opt = get_optimizer("sgd", 0.05)
    Xd, Yd = cupy.asarray(X), cupy.asarray(Y)
    one = _epochs(cupy, model, Xd, Yd, True, opt, batch_size, F.cuda_launcher)
    grid = _epochs(cupy, model, Xd, Yd, True, opt, batch_size, G.cuda_grid_launcher())
    assert grid[1] == one[1]
    for a, b in zip(grid[0], one[0]):
        assert a.tobytes() == b.tobytes()
