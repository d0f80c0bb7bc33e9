"""PyTorch through array-api-compat; devices ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

The namespace carries the optimizers' updates as multi-tensor operations
(:mod:`.foreach`). On CUDA the executors are, in order, the CuPy backend's
own (its kernels run on torch's tensors, crossed by DLPack on torch's
current stream: :mod:`..cupy.bridge`) where CuPy is installed, then
:mod:`.graphs`, which replays each training step as a captured CUDA graph.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from ..base import Backend, BackendUnavailableError, import_or_refuse, make_namespace
from ..cupy import CupyBackend
from .foreach import fused_updates

__all__ = ["TorchBackend"]


@functools.lru_cache(maxsize=1)  # one module per process: see numpy.numpy_namespace
def torch_namespace(compat, torch):
    """array-api-compat's torch namespace, with the functions the training loop
    calls on every step bound straight to torch.

    array-api-compat makes torch follow the standard's type promotion and
    signatures, at a cost of several microseconds a call. Where nnbackend's
    kernels pass same-dtype tensors or a Python float, torch's own function
    already gives the standard's answer, and these skip the wrapper;
    everything else is array-api-compat's.
    """

    def matmul(x1, x2, /):
        if x1.dtype == x2.dtype:
            return torch.matmul(x1, x2)
        return compat.matmul(x1, x2)

    def maximum(x1, x2, /):
        if isinstance(x2, float) and x1.dtype.is_floating_point:
            return torch.clamp_min(x1, x2)
        return compat.maximum(x1, x2)

    def take(x, indices, /, *, axis=None):
        if axis == 0 and indices.ndim == 1:
            return torch.index_select(x, 0, indices)
        return compat.take(x, indices, axis=axis)

    return make_namespace("nnbackend.torch", compat, torch_namespace.__doc__,
                          matmul=matmul, maximum=maximum, take=take,
                          nnbackend_fused=fused_updates(torch))


def _can_hold(torch, dev) -> bool:
    """Whether torch makes a tensor on ``dev``: a device type it has no module
    to ask (hpu, xla: a plugin's, where it is installed)."""
    try:
        torch.empty(0, device=dev)
    except Exception:  # noqa: BLE001 - any library's refusal of the device
        return False
    return True


class TorchBackend(Backend):
    """PyTorch tensors on a CPU, CUDA or MPS device."""

    install_hint = "pip install 'nnbackend[torch]'"
    #: The CuPy backend's executors, run on torch's CUDA tensors (not torch's own).
    bridged_executor_names = CupyBackend.bridged_names
    executor_names = (*bridged_executor_names, "torch-graphs")

    @classmethod
    def open(cls, device):
        torch = import_or_refuse("torch", "torch", cls.install_hint)
        compat = import_or_refuse("torch", "array_api_compat.torch", cls.install_hint)
        xp = torch_namespace(compat, torch)
        spec = device
        if (isinstance(device, numbers.Integral) and not isinstance(device, bool)) or (
                isinstance(device, str) and device.strip().isdigit()):
            spec = f"cuda:{int(device)}"  # as torch reads an index, and `--device 0` gives it
        try:
            dev = torch.device("cpu" if spec is None else spec)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"backend 'torch': bad device {device!r} ({exc})") from None
        if dev.type == "cuda":
            dev = cls._cuda_device(torch, device, dev)
        elif dev.type == "mps" and not torch.backends.mps.is_available():
            raise BackendUnavailableError("backend 'torch': the MPS device is not available")
        elif dev.type == "meta":
            # Shapes without data: a fit or a prediction there computes nothing.
            raise ValueError("backend 'torch': the 'meta' device holds no data; use 'cpu' or "
                             "a GPU")
        elif dev.type != "cpu":
            # A device type torch has a module for (xpu, ...) says whether it is
            # here; an empty tensor there says whether it works (for hpu, xla, a
            # plugin's without a module, it alone says it; a plugin's module may
            # say it is available where no tensor can be made on it).
            available = getattr(getattr(torch, dev.type, None), "is_available", None)
            if not ((available is None or available()) and _can_hold(torch, dev)):
                raise BackendUnavailableError(
                    f"backend 'torch': device {device!r} is not available here (torch "
                    f"{torch.__version__}); use 'cpu', 'cuda' or 'mps'")
        return xp, cls._canonical(torch, dev)

    @staticmethod
    def _canonical(torch, dev):
        """``dev`` as a tensor made on it reports its device, for the two to
        compare equal: the CPU without an index ('cpu:0' is 'cpu'), an
        accelerator with one ('mps' is 'mps:0', 'xpu' its current device)."""
        if dev.type == "cpu":
            return torch.device("cpu")
        if dev.index is not None or dev.type == "meta":
            return dev
        current = getattr(getattr(torch, dev.type, None), "current_device", None)
        try:
            index = current() if dev.type != "mps" and callable(current) else 0
        except Exception:  # noqa: BLE001 - a plugin's device module: its first device
            index = 0
        return torch.device(dev.type, index)

    @staticmethod
    def _cuda_device(torch, requested, dev):
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"backend 'torch' device {requested!r}: PyTorch sees no CUDA GPU "
                f"(torch {torch.__version__}"
                f"{', a CPU-only build' if torch.version.cuda is None else ''}). "
                "Use device='cpu', or install a CUDA build of torch on a GPU machine"
            )
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                f"backend 'torch': no CUDA device {index}; this machine has "
                f"{torch.cuda.device_count()}"
            )
        return torch.device("cuda", index)

    @classmethod
    def of_array(cls, a):
        import array_api_compat as compat

        if not compat.is_torch_array(a):
            return None
        return cls("torch", cls.open("cpu")[0], compat.device(a))

    def float_dtypes(self) -> tuple[str, ...]:
        if getattr(self.device, "type", None) == "mps":
            return ("float32",)
        return super().float_dtypes()

    def to_host(self, a) -> np.ndarray:
        import torch

        a = a.detach().cpu()
        if a.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds it exactly
            a = a.float()
        return a.numpy()

    def holds_data(self) -> bool:
        return self.device.type != "meta"

    def detached(self, a):
        return a.detach() if a.requires_grad else a

    def loop_context(self):
        """``torch.inference_mode``: the loop computes its own gradients, and
        autograd's bookkeeping would only cost time (see :meth:`export`)."""
        import torch

        return torch.inference_mode()

    def export(self, arrays):
        """Copies made outside inference mode (the caller's own included):
        inference-mode tensors cannot take part in autograd later."""
        import torch

        with torch.inference_mode(False):
            return [a.clone() for a in arrays]

    def matmul_precision(self, precision, dtype):
        """On CUDA, torch's float32 matmul precision for the block (on a CPU
        nothing is set: torch's CPU matmuls have no TF32)."""
        import torch

        if self.device.type != "cuda" or dtype != torch.float32:
            return super().matmul_precision(precision, dtype)
        from ..precision import torch_precision

        return torch_precision(torch, precision)

    def executors(self) -> tuple:
        """The CuPy kernels by DLPack first (the fastest, where CuPy is
        installed), then the CUDA-graph executor (where it is not, or where
        the kernels refuse the fit). Each ``supports`` refuses other devices
        with the reason, so that ``executor="torch-graphs"`` off CUDA says why."""
        from ..cupy.bridge import bridges
        from .graphs import TorchGraphs

        return (*bridges("torch"), TorchGraphs())

    def gpus(self) -> list:
        import torch

        found = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append((f"cuda:{i}", props.name, props.total_memory / 2**30))
        return found

    def accelerator_name(self):
        if self.device.type != "cuda":
            return None
        import torch

        return torch.cuda.get_device_name(self.device)

    def is_gpu(self) -> bool:
        return self.device.type == "cuda"

    def free_memory(self):
        if self.device.type != "cuda":
            return None
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        # Blocks torch's caching allocator reserved but no tensor uses are free to torch.
        cached = torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return free + cached

    def synchronize(self) -> None:
        if self.device.type in ("cuda", "mps"):  # (their kernels run asynchronously)
            import torch

            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            else:
                torch.mps.synchronize()
