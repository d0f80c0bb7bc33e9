"""array-api-strict: the standard and nothing more.

Its simulated devices (``device1``, ``no_float64``, ...) refuse what a GPU
would refuse, which is how the tests prove the kernels portable.
"""

from __future__ import annotations

import numpy as np

from .base import Backend, import_or_refuse, quiet_numpy

__all__ = ["StrictBackend"]


class StrictBackend(Backend):
    """array-api-strict on one of its (simulated) devices."""

    install_hint = "pip install 'nnbackend[strict]'  (or: pip install array-api-strict)"
    distribution = "array-api-strict"

    @classmethod
    def open(cls, device):
        xp = import_or_refuse("strict", "array_api_strict", cls.install_hint)
        devices = {d._device: d for d in xp.__array_namespace_info__().devices()}
        if device is None or device == "cpu":
            return xp, xp.Device("CPU_DEVICE")
        if isinstance(device, xp.Device):
            return xp, device
        if device in devices:
            return xp, devices[device]
        raise ValueError(
            f"backend 'strict' has no device {device!r}; its devices are "
            f"{['cpu'] + sorted(devices)}"
        )

    def device_spec(self) -> str:
        name = self.device._device  # array-api-strict's own names: CPU_DEVICE, device1, ...
        return "cpu" if name == "CPU_DEVICE" else name

    @classmethod
    def of_array(cls, a):
        if not type(a).__module__.startswith("array_api_strict"):
            return None
        xp = import_or_refuse("strict", "array_api_strict", cls.install_hint)
        return cls("strict", xp, a.device)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a.to_device(self.xp.Device("CPU_DEVICE")))

    def loop_context(self):
        # Built on NumPy: the same overflow warnings to silence.
        return quiet_numpy()
