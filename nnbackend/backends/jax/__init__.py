"""JAX: ``jax.numpy`` on a CPU or GPU device, with a compiled-epoch executor.

Devices ``cpu``, ``gpu``, ``gpu:N`` in any case (``cuda`` is read as ``gpu``). Float64
needs ``jax_enable_x64``, which is switched on when float64 is asked for.
The executors are, in order, the CuPy backend's own on a GPU (its kernels
run on JAX's arrays, crossed by DLPack: :mod:`..cupy.bridge`) where CuPy is
installed, then :mod:`.scan`, which compiles a mini-batch or sgd epoch into
one ``lax.scan``, and :mod:`.batch`, which compiles a full-batch epoch (its
chunks' exact gradient and the step) into one dispatch.

Precision: on a GPU, JAX computes float32 matmuls in TF32 by default (about
1e-4 relative error). The kernels' matmuls on ``jax.numpy`` arrays, in this
backend and in users' own JAX code alike, ask for full float32 precision
(``Precision.HIGHEST``) instead, through the fix registered below, unless
the user has chosen a precision (``jax_default_matmul_precision``, set in
``jax.config`` or by the ``jax.default_matmul_precision`` context manager),
or the fit has (``precision="tf32"``: :meth:`JaxBackend.matmul_precision`).
"""

from __future__ import annotations

import contextlib
import numbers

from ... import kernels
from ..base import (FLOAT_DTYPES, Backend, BackendUnavailableError, UnusableArrayError,
                    import_or_refuse)
from ..cupy import CupyBackend

__all__ = ["JaxBackend", "jax_numpy_fixes"]

#: The platforms JAX itself names; any other is a typo unless a plugin has it here.
_PLATFORMS = ("cpu", "gpu", "cuda", "rocm", "tpu")


def jax_numpy_fixes(jnp):
    """The kernels' fixes for ``jax.numpy`` (see ``kernels.register_namespace_fixes``).

    ``matmul`` at ``Precision.HIGHEST`` (full float32: no TF32, no bfloat16
    passes), or at the user's own default where one is set; read when each
    matmul is traced, so a ``jax.default_matmul_precision`` block around a
    ``jax.jit`` call rules inside it.
    """
    import jax

    highest = jax.lax.Precision.HIGHEST
    config = jax.config

    def matmul(x1, x2, /):
        chosen = getattr(config, "jax_default_matmul_precision", None)
        return jnp.matmul(x1, x2, precision=highest if chosen is None else None)

    return {"matmul": matmul}


# Registered by name, so that importing nnbackend imports no JAX: the fix is
# made when the kernels first meet jax.numpy.
kernels.register_namespace_fixes("jax.numpy", jax_numpy_fixes)


def _enable_x64():
    import jax

    if not jax.config.jax_enable_x64:
        # JAX decides float64 support process-wide; switching it on leaves
        # float32 arrays float32, and nnbackend always names its dtypes.
        jax.config.update("jax_enable_x64", True)


def _x64_for_a_while():
    """A context with ``jax_enable_x64`` on: ``jax.enable_x64(True)`` where it is a
    context (newer JAX), ``jax.experimental.enable_x64()`` before."""
    import jax

    try:
        from jax.experimental import enable_x64
    except ImportError:
        return jax.enable_x64(True)
    return enable_x64()


def _default_device(jax):
    """JAX's own default device: the one ``jax_default_device`` names (set in
    ``jax.config`` or by a ``jax.default_device`` block, where ``jnp`` makes
    its arrays), else ``jax.devices()[0]``."""
    chosen = getattr(jax.config, "jax_default_device", None)
    if isinstance(chosen, jax.Device):
        return chosen
    if isinstance(chosen, str) and chosen:  # a platform's name: its first device
        try:
            return jax.devices(chosen)[0]
        except RuntimeError:
            pass  # a platform this process lacks: jax's own arrays say so, not here
    return jax.devices()[0]


class JaxBackend(Backend):
    """``jax.numpy`` arrays on one JAX device."""

    #: The CuPy backend's executors, run on JAX's GPU arrays (not JAX's own).
    bridged_executor_names = CupyBackend.bridged_names
    executor_names = (*bridged_executor_names, "jax-scan", "jax-batch")
    install_hint = "pip install 'nnbackend[jax]'"

    @classmethod
    def open(cls, device):
        jax = import_or_refuse("jax", "jax", cls.install_hint)
        xp = jax.numpy
        if device is None:
            return xp, _default_device(jax)
        if isinstance(device, numbers.Integral) and not isinstance(device, bool):
            device = str(device)  # an index of jax.devices(), as torch reads one
        if not isinstance(device, str):
            if not isinstance(device, jax.Device):
                raise ValueError(f"backend 'jax': bad device {device!r}; give a jax.Device, "
                                 "an index of jax.devices(), or 'cpu', 'gpu', 'gpu:1', ...")
            return xp, device
        platform, _, index = device.strip().partition(":")
        if not platform:  # jax.devices("") would quietly give the default device
            raise ValueError(f"backend 'jax': bad device {device!r}; give 'cpu', 'gpu', "
                             "'gpu:1', an index of jax.devices(), or a jax.Device")
        if platform.isdigit() and not index:  # "1": jax.devices()[1]
            platform, index = None, platform
        if platform and platform.lower() in _PLATFORMS:  # "GPU", "Cpu"; plugins as named
            platform = {"cuda": "gpu"}.get(platform.lower(), platform.lower())
        try:
            devices = jax.devices(platform)
        except RuntimeError:
            here = [str(d) for d in jax.devices()]
            if platform not in _PLATFORMS:  # a typo, not a missing GPU
                raise ValueError(f"backend 'jax': bad device {device!r}: JAX has no platform "
                                 f"{platform!r} (devices here: {here})") from None
            raise BackendUnavailableError(
                f"backend 'jax' has no {platform!r} device on this machine "
                f"(it has {here}); for a GPU install "
                "jax with CUDA support (pip install 'jax[cuda12]')"
            ) from None
        if index and not index.isdigit():
            raise ValueError(f"backend 'jax': bad device {device!r}: its index must be a "
                             "whole number >= 0")
        i = int(index) if index else 0
        if i >= len(devices):
            raise BackendUnavailableError(f"backend 'jax': no device {device!r} (devices "
                                          f"here: {[str(d) for d in devices]})")
        return xp, devices[i]

    def device_spec(self) -> str:
        import jax

        platform = self.device.platform  # "cpu", "gpu"
        return f"{platform}:{jax.devices(platform).index(self.device)}"

    @classmethod
    def of_array(cls, a):
        import array_api_compat as compat

        if not compat.is_jax_array(a):
            return None
        import jax

        if isinstance(a, jax.core.Tracer):
            # Under jit, grad or vmap: it has no device, and a model that followed
            # it would keep leaked tracers as its weights.
            raise UnusableArrayError("a traced JAX array (inside jax.jit, grad or vmap): a "
                                     "model's methods run eagerly; inside a transformation, "
                                     "call nnbackend.kernels with the model's params")
        if a.is_deleted():
            # Donated to a jitted function, or deleted: JAX's own error came
            # from deep inside the first operation on it, naming no argument.
            raise UnusableArrayError(f"a deleted JAX array (shape {tuple(a.shape)}): deleted, or "
                                     "donated to a jitted function (donate_argnums); pass "
                                     "the array that replaced it")
        devices = a.devices()
        if len(devices) != 1:
            raise UnusableArrayError(f"a JAX array sharded over {len(devices)} devices; "
                                     "nnbackend trains on one: gather it first, e.g. "
                                     "jax.device_put(X, jax.devices()[0])")
        return cls("jax", cls.open(None)[0], next(iter(devices)))

    def dtype(self, name: str):
        if str(name) == "float64":
            _enable_x64()
        return super().dtype(name)

    def compiled(self, fn):
        """``jax.jit(fn)``: one dispatch instead of one per operation."""
        import jax

        return jax.jit(fn)

    def probe_array(self, a, dtype_name: str):
        import jax

        if str(dtype_name) != "float64" or jax.config.jax_enable_x64:
            return super().probe_array(a, dtype_name)
        # x64 for this array only: pricing JAX for a float64 fit must not turn it
        # on for the process (the user's own jnp code), JAX chosen or not.
        with _x64_for_a_while():
            return self.xp.asarray(a, dtype=self.xp.float64, device=self.device)

    def float_dtypes(self) -> tuple[str, ...]:
        import jax

        if not jax.config.jax_enable_x64:
            # x64 is switched on when float64 is asked for (see dtype()).
            return FLOAT_DTYPES
        return super().float_dtypes()

    def wide_dtype(self):
        import jax

        # Without x64 a float64 sum is a float32 one, with a warning each time.
        return super().wide_dtype() if jax.config.jax_enable_x64 else None

    def wide_scope(self):
        import jax

        # Only host figures leave the block: no float64 array outlives it.
        return contextlib.nullcontext() if jax.config.jax_enable_x64 else _x64_for_a_while()

    def matmul_precision(self, precision, dtype):
        """On a GPU, ``jax_default_matmul_precision`` for the block (XLA's CPU
        matmuls have no TF32)."""
        import jax

        if not self.is_gpu() or dtype != jax.numpy.float32:
            return super().matmul_precision(precision, dtype)
        from ..precision import jax_precision

        return jax_precision(jax, precision)

    def executors(self) -> tuple:
        """The CuPy kernels by DLPack first (on a GPU, where CuPy is installed;
        elsewhere they refuse, saying why), then the compiled scan (mini-batch and
        sgd) and the compiled full-batch epoch."""
        from ..cupy.bridge import bridges
        from .batch import JaxBatch
        from .scan import JaxScan

        return (*bridges("jax"), JaxScan(), JaxBatch())

    def gpus(self) -> list:
        import jax

        return [(str(d), getattr(d, "device_kind", d.platform), None)
                for d in jax.devices() if d.platform != "cpu"]

    def accelerator_name(self):
        if getattr(self.device, "platform", "cpu") == "cpu":
            return None
        return str(getattr(self.device, "device_kind", self.device))

    def is_gpu(self) -> bool:
        return getattr(self.device, "platform", "cpu") != "cpu"

    def free_memory(self):
        # XLA's allocator: bytes_limit is its pool (75% of the GPU when it
        # preallocates), bytes_in_use what live arrays take of it.
        stats = self.device.memory_stats()
        if not stats or "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
