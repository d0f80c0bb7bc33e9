"""A model's pickling: its arrays travel as host arrays and are made again on
its backend's device, in its dtype, when it is unpickled."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["HostPickling"]


class HostPickling:
    """``__getstate__``/``__setstate__`` for :class:`~nnbackend.MLP`.

    An array library's own pickling of its arrays can land them elsewhere than
    the model's backend says (JAX's on its default device, in float32 where
    x64 is off); host arrays made again through the backend cannot. The
    backend itself pickles as :func:`~nnbackend.get_backend` takes it back.
    """

    def __getstate__(self):
        state = dict(self.__dict__)
        to_host = self.backend.to_host
        state["flat_params"] = [np.asarray(to_host(p)) for p in self.flat_params]
        train = self.train_state
        if train is not None and train.state_arrays:
            state["train_state"] = dataclasses.replace(train, state_arrays={
                field: [np.asarray(to_host(a)) for a in arrays]
                for field, arrays in train.state_arrays.items()})
        del state["array_dtype"]  # the backend's dtype object: made again below
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        backend = self.backend
        self.array_dtype = backend.dtype(self.dtype)  # (JAX: switches x64 on for float64)
        self.flat_params = [backend.asarray(p, dtype=self.array_dtype) for p in self.flat_params]
        train = self.train_state
        if train is not None and train.state_arrays:
            self.train_state = dataclasses.replace(train, state_arrays={
                field: [backend.asarray(a, dtype=self.array_dtype) for a in arrays]
                for field, arrays in train.state_arrays.items()})
