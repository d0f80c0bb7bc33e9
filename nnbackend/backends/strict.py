"""array-api-strict: the standard and nothing more.

Its simulated devices (``device1``, ``no_float64``, ...) refuse what a GPU
would refuse, which is how the tests prove the kernels portable.
"""

from __future__ import annotations

import numpy as np

from .base import Backend, import_or_refuse, quiet_numpy

__all__ = ["StrictBackend"]

# The standard's version the kernels are written against: its elementwise
# functions take Python scalars (``maximum(z, floor)``), which array-api-strict
# refuses, deep in a step, when its api_version flag names an earlier one.
API_VERSION = "2024.12"


def _checked_version(xp):
    """``xp`` (array_api_strict), refused by name where its ``api_version``
    flag is set to a standard earlier than :data:`API_VERSION`."""
    flags = getattr(xp, "get_array_api_strict_flags", None)
    version = flags().get("api_version") if flags is not None else None
    if isinstance(version, str) and version < API_VERSION:
        raise ValueError(
            f"backend 'strict': array-api-strict is set to the {version} standard "
            f"(its api_version flag), and nnbackend's kernels need {API_VERSION} or later "
            "(Python scalars in elementwise functions); call "
            f"array_api_strict.set_array_api_strict_flags(api_version={API_VERSION!r}) "
            "or reset_array_api_strict_flags()")
    return xp


class StrictBackend(Backend):
    """array-api-strict on one of its (simulated) devices."""

    install_hint = "pip install 'nnbackend[strict]'  (or: pip install array-api-strict)"
    distribution = "array-api-strict"

    @classmethod
    def open(cls, device):
        xp = _checked_version(import_or_refuse("strict", "array_api_strict", cls.install_hint))
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
        xp = _checked_version(import_or_refuse("strict", "array_api_strict", cls.install_hint))
        return cls("strict", xp, a.device)

    def to_host(self, a) -> np.ndarray:
        return np.asarray(a.to_device(self.xp.Device("CPU_DEVICE")))

    def asarray(self, a, dtype=None):
        # The flag may have changed since the backend was made: a fit or
        # predict of host data brings it here first.
        _checked_version(self.xp)
        return super().asarray(a, dtype=dtype)

    def loop_context(self):
        # Built on NumPy: the same overflow warnings to silence.
        return quiet_numpy()
