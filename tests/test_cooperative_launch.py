"""The cooperative launches' glue on the CPU, with a stand-in CuPy: the grid
capped at the blocks the device holds, the launch made cooperative, the
arguments typed and in order, and the reasons given where it cannot run."""

import contextlib
import sys
import types

import numpy as np
import pytest

from nnbackend.backends.cupy import batch as B
from nnbackend.backends.cupy import fused as F
from nnbackend.backends.cupy import grid as G
from nnbackend.network import NetSpec

SMS, PER_SM = 4, 2


@pytest.fixture
def fake_cupy(monkeypatch):
    """NumPy dressed as CuPy: kernels record their launches; 4 SMs of 2 blocks."""
    launches, attributes = [], {"CooperativeLaunch": 1, "MultiProcessorCount": SMS}

    class Function:
        ptr = 1234

        def __call__(self, grid, block, args, **kw):
            launches.append((grid, block, args, kw))

    class RawKernel:
        def __init__(self, source, name, options=()):
            self.source, self.name, self.kernel = source, name, Function()

    class Device(contextlib.nullcontext):
        def __init__(self, *a):
            super().__init__()
            self.attributes = attributes

    driver = types.ModuleType("cupy.cuda.driver")
    driver.occupancyMaxActiveBlocksPerMultiprocessor = lambda ptr, threads, shared: PER_SM
    cuda = types.ModuleType("cupy.cuda")
    cuda.driver, cuda.Device = driver, Device
    fake = types.ModuleType("cupy")
    fake.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    fake.cuda, fake.RawKernel = cuda, RawKernel
    for name, module in (("cupy", fake), ("cupy.cuda", cuda), ("cupy.cuda.driver", driver)):
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(launches=launches, attributes=attributes, Device=Device)


def _batch_source():
    layout = B.BatchLayout([4, 6, 1], "float32", 32)
    return B.kernel_source(layout, NetSpec("tanh", "sigmoid", "mse", "mean"), "adam", "float32",
                           False), layout


def test_the_persistent_batch_kernel_launches_cooperatively_on_the_blocks_asked(fake_cupy):
    source, layout = _batch_source()
    run, why = B.cuda_persistent(source, layout, "float32", SMS * PER_SM)
    assert why is None
    arrays = [np.zeros(3, np.float32) for _ in range(10)]
    X, Y, p0, a, b, last, partials, s1, s2, out = arrays
    barrier = np.zeros(2, np.uint32)
    run(X, Y, 301, p0, a, b, last, partials, s1, s2, 7, 5, 0.01, 0.9, 0.999, 1e-8, out, barrier)
    (grid, block, args, kw), = fake_cupy.launches
    assert grid == (SMS * PER_SM,) and block == (layout.threads,)
    assert kw == {"shared_mem": layout.shared_bytes(), "enable_cooperative_groups": True}
    assert args[:2] == (X, Y) and args[-2:] == (out, barrier) and len(args) == 18
    typed = {2: (np.int64, 301), 10: (np.int64, 7), 11: (np.int64, 5), 12: (np.float64, 0.01)}
    for i, (kind, value) in typed.items():
        assert type(args[i]) is kind and args[i] == value


def test_more_blocks_than_the_device_holds_take_two_launches_an_epoch(fake_cupy):
    source, layout = _batch_source()
    run, why = B.cuda_persistent(source, layout, "float32", SMS * PER_SM + 1)
    assert run is None and why == "9 blocks, more than the 8 this device holds at once (2 an SM)"
    assert B.resident_blocks(source, layout, "float32", fake_cupy.Device()) == SMS * PER_SM
    fake_cupy.attributes["CooperativeLaunch"] = 0
    assert B.cuda_persistent(source, layout, "float32", 2) == (
        None, "this device has no cooperative launch")
    assert B.resident_blocks(source, layout, "float32", fake_cupy.Device()) == 0


def test_the_grid_fused_kernel_takes_every_resident_block(fake_cupy):
    spec = NetSpec("relu", "softmax", "cross_entropy", "mean")
    layout = F.Layout([8, 16, 3], 1, "float32", params_in="global", acts_in="global")
    source = F.kernel_source(layout, spec, "sgd", "float32", True)
    for n_blocks, expected in ((None, SMS * PER_SM), (3, 3)):
        fake_cupy.launches.clear()
        launch = G.cuda_grid_launcher(n_blocks)(source, layout, "float32")
        assert launch.blocks == expected
        arrays = [np.zeros(2, np.float32) for _ in range(8)]
        X, Y, order, params, s1, s2, out, work = arrays
        launch(X, Y, order, 10, params, s1, s2, 0, 0.1, 0.0, 0.0, 0.0, out, work)
        (grid, block, args, kw), = fake_cupy.launches
        assert grid == (expected,) and block == (layout.threads(),)
        assert kw == {"enable_cooperative_groups": True}
        assert args[-2] is work and args[-1].dtype == np.uint32 and args[-1].shape == (2,)
