"""Fused optimizer updates against the generic ones in ``nnbackend.optim``.

The CuPy kernels' formulas run here with NumPy (their twin, the same
function body) and as their C body compiled for the host; the torch
foreach updates run on torch's CPU. All must give the generic update's
results, optimizer state included. A CUDA build is checked by the GPU run.
"""

import ctypes
import shutil
import subprocess
import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.backends.cupy import optim_kernels as ok
from nnbackend.optim import get_optimizer, on_namespace

CASES = [
    ("sgd", {}),
    ("momentum", {"beta": 0.8}),
    ("momentum", {"beta": 0.8, "nesterov": True}),
    ("adam", {}),
    ("adam", {"b1": 0.5, "b2": 0.9, "eps": 1e-6}),
]
IDS = ["sgd", "momentum", "nesterov", "adam", "adam-betas"]


def _problem(dtype, xp=np, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (3,), (3, 2), (2,)]
    params = [xp.asarray(rng.normal(size=s).astype(dtype)) for s in shapes]
    grads = [[xp.asarray(rng.normal(size=s).astype(dtype)) for s in shapes] for _ in range(steps)]
    return params, grads


def _run(opt, params, grads):
    state = opt.init(params)
    for g in grads:
        params, state = opt.update(g, state, params)
    return params, state


def _flat(params, state):
    arrays = list(params)
    for value in state:
        arrays += value if isinstance(value, list) else []
    return [np.asarray(a) for a in arrays]


def _twin_kernels(run):
    """``nnbackend_fused`` entries running ``run(name, arrays, scalars)`` per parameter,
    with the signatures of ``optim_kernels.fused_updates``."""

    def sgd_update(params, grads, lr):
        return [run("sgd", (p, g), (lr,))[0] for p, g in zip(params, grads)]

    def momentum_update(params, grads, velocity, lr, beta, nesterov):
        out = [run("nesterov" if nesterov else "momentum", (p, g, v), (lr, beta))
               for p, g, v in zip(params, grads, velocity)]
        return [o[0] for o in out], [o[1] for o in out]

    def adam_update(params, grads, mu, nu, b1, b2, step, eps_hat):
        out = [run("adam", (p, g, m, v), (b1, 1 - b1, b2, 1 - b2, step, eps_hat))
               for p, g, m, v in zip(params, grads, mu, nu)]
        return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]

    return {"sgd_update": sgd_update, "momentum_update": momentum_update,
            "adam_update": adam_update}


def _numpy_twin(name, arrays, scalars):
    formula, _, _, outputs, fixed = ok.FORMULAS[name]
    # Scalars rounded to the arrays' dtype, as the CuPy launcher passes them.
    scalars = [arrays[0].dtype.type(s) for s in scalars]
    values = formula(ok.NumpyOps, *arrays, *scalars, **fixed)
    return [values[o] for o in outputs]


def _check_same(name, options, kernels, dtype, xp=np):
    opt = get_optimizer(name, 0.05, **options)
    fused = on_namespace(opt, types.SimpleNamespace(nnbackend_fused=kernels))
    assert fused.update is not opt.update and fused.name == opt.name
    params, grads = _problem(dtype, xp)
    ref_params, ref_state = _run(opt, params, grads)
    got_params, got_state = _run(fused, params, grads)
    assert type(got_state) is type(ref_state)
    if name == "adam":
        assert got_state.count == ref_state.count == len(grads)
        assert isinstance(got_state.count, int)
    for a, b in zip(_flat(got_params, got_state), _flat(ref_params, ref_state)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_cupy_formulas_run_with_numpy_equal_the_generic_update(name, options, dtype):
    _check_same(name, options, _twin_kernels(_numpy_twin), dtype)


def _host_kernel(name, dtype, tmp_path):
    """The ElementwiseKernel's body compiled as C++ for the host, looping over elements."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler on this machine")
    in_params, out_params, body = ok.render(name)
    ctype = {"float64": "double", "float32": "float"}[dtype]
    _, arrays, scalars, outputs, _ = ok.FORMULAS[name]
    ops = "\n".join(f"static inline T nnb_{op}(T a, T b) {{ return a {sym} b; }}"
                    for op, sym in (("add", "+"), ("sub", "-"), ("mul", "*"), ("div", "/")))
    args = ([f"const T* a_{a}" for a in arrays] + [f"T {s}" for s in scalars]
            + [f"T* a_{o}" for o in outputs])
    src = "\n".join([
        "#include <cmath>", f"typedef {ctype} T;", ops,
        "static inline T nnb_sqrt(T a) { return std::sqrt(a); }",
        f'extern "C" void run(long n, {", ".join(args)}) {{',
        "  for (long i = 0; i < n; ++i) {",
        *[f"    const T {a} = a_{a}[i];" for a in arrays],
        *[f"    T {o};" for o in outputs],
        "    " + body.replace("\n", "\n    "),
        *[f"    a_{o}[i] = {o};" for o in outputs],
        "  }", "}",
    ])
    path = tmp_path / f"{name}_{dtype}.cpp"
    path.write_text(src)
    lib = tmp_path / f"{name}_{dtype}.so"
    # No contraction into FMAs: the CUDA build's _rn intrinsics forbid it too.
    subprocess.run([compiler, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib),
                    str(path)], check=True, capture_output=True)
    fn = ctypes.CDLL(str(lib)).run
    scalar_type = ctypes.c_double if dtype == "float64" else ctypes.c_float

    def run(kernel_name, arrays_in, scalars_in):
        assert kernel_name == name
        arrays_in = [np.ascontiguousarray(a) for a in arrays_in]
        outs = [np.empty_like(arrays_in[0]) for _ in outputs]
        # Scalars rounded to the dtype first, as the CuPy launcher passes them.
        pointers = [a.ctypes.data_as(ctypes.c_void_p) for a in arrays_in]
        fn(ctypes.c_long(arrays_in[0].size), *pointers,
           *[scalar_type(float(np.dtype(dtype).type(s))) for s in scalars_in],
           *[o.ctypes.data_as(ctypes.c_void_p) for o in outs])
        return outs

    return run


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_cupy_kernel_bodies_built_for_the_host_equal_the_generic_update(name, options, dtype,
                                                                        tmp_path):
    kernel = "nesterov" if options.get("nesterov") else name
    run = _host_kernel(kernel, dtype, tmp_path)
    _check_same(name, options, _twin_kernels(run), dtype)


def test_cuda_source_uses_only_correctly_rounded_operations():
    for name in ok.FORMULAS:
        _, _, body = ok.render(name)
        # Every operation goes through an nnb_* helper (an __*_rn intrinsic on
        # CUDA), so no a*b+c is left for the compiler to contract.
        stripped = body
        for helper in ("nnb_add", "nnb_sub", "nnb_mul", "nnb_div", "nnb_sqrt"):
            stripped = stripped.replace(helper, "")
        assert not set("+-*/") & set(stripped.replace("T ", "")), body
    assert "__fmul_rn" in ok.CUDA_PREAMBLE and "__dsqrt_rn" in ok.CUDA_PREAMBLE


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_torch_foreach_updates_equal_the_generic_update(name, options, dtype):
    torch = pytest.importorskip("torch")
    backend = nb.get_backend("torch")
    kernels = backend.xp.nnbackend_fused
    opt = get_optimizer(name, 0.05, **options)
    assert on_namespace(opt, backend.xp).update is not opt.update
    # Equal on torch's CPU: the same operations in the same order, no alpha= FMAs.
    _check_same(name, options, kernels, dtype, xp=torch)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_numpy_fused_updates_equal_the_generic_update(name, options, dtype):
    kernels = nb.get_backend("numpy").xp.nnbackend_fused
    if kernels is None:
        pytest.skip("NumPy < 2.1 goes through array-api-compat: no fused forms")
    _check_same(name, options, kernels, dtype)
    # Special values take the same path: the bits still agree.
    params, grads = _problem(dtype, steps=2)
    grads[0][0][0, 0], grads[1][2][1, 1], grads[1][1][0] = np.inf, np.nan, -0.0
    opt = get_optimizer(name, 0.05, **options)
    fused = on_namespace(opt, types.SimpleNamespace(nnbackend_fused=kernels))
    kept = [p.copy() for p in params]
    for a, b in zip(_flat(*_run(fused, params, grads)), _flat(*_run(opt, params, grads))):
        assert a.tobytes() == b.tobytes()
    assert all(np.array_equal(p, k) for p, k in zip(params, kept))  # inputs untouched


def test_on_namespace_leaves_custom_optimizers_alone():
    opt = nb.adam(0.01)
    custom = nb.Optimizer(opt.init, opt.update)
    namespace = types.SimpleNamespace(nnbackend_fused=_twin_kernels(None))
    assert on_namespace(custom, namespace) is custom


@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_torch_fused_update_launch_count_does_not_grow_with_the_parameters(name, options):
    torch = pytest.importorskip("torch")
    from torch.overrides import TorchFunctionMode

    from nnbackend.backends.torch.foreach import OPTIMIZER_LAUNCHES

    class Count(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.calls.append(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    opt = on_namespace(get_optimizer(name, 0.05, **options), nb.get_backend("torch").xp)
    kernel = "nesterov" if options.get("nesterov") else name
    for n_arrays in (2, 8):
        params = [torch.ones(3, 2, dtype=torch.float64) for _ in range(n_arrays)]
        state = opt.init(params)
        with Count() as count:
            opt.update(params, state, params)
        ops = [c for c in count.calls if c.startswith("_foreach")]
        # Multi-tensor operations only: as many for 8 arrays as for 2.
        assert len(ops) == OPTIMIZER_LAUNCHES[kernel], count.calls
        assert len(count.calls) == len(ops), count.calls


@pytest.mark.parametrize("wrap", ["l2", "scheduled", "l2-of-scheduled"])
def test_wrapped_optimizers_run_the_namespaces_fused_update_inside(wrap):
    # The penalty and the schedules wrap the update; the update they wrap
    # must still be the namespace's fused one, with the generic results.
    from nnbackend.optim import l2_penalty, scheduled

    calls = []

    def run(name, arrays, scalars):
        calls.append(name)
        return _numpy_twin(name, arrays, scalars)

    namespace = types.SimpleNamespace(nnbackend_fused=_twin_kernels(run))
    base = get_optimizer("adam", 0.05)
    opt = {"l2": lambda: l2_penalty(base, 0.1),
           "scheduled": lambda: scheduled(base, lambda count: 1.0 / (1 + count), 0.5),
           "l2-of-scheduled": lambda: l2_penalty(scheduled(base, None, 0.5), 0.1)}[wrap]()
    bound = on_namespace(opt, namespace)
    params, grads = _problem("float64")
    ref_params, ref_state = _run(opt, params, grads)
    assert calls == []
    got_params, got_state = _run(bound, params, grads)
    assert calls and set(calls) == {"adam"}
    assert type(got_state) is type(ref_state)
    for a, b in zip(got_params, ref_params):
        np.testing.assert_array_equal(a, b)
