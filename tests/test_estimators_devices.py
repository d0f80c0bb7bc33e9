"""The estimators on a device, under ``sklearn.config_context(array_api_dispatch=True)``.

A fit on a device's arrays (array-api-strict's simulated ``device1`` and torch
on the CPU here; CuPy and torch:cuda where a GPU is at hand, in the GPU check)
keeps ``X`` there: the network runs on that backend and device, predictions
come back as the caller's arrays on the caller's device, and nothing of
``X``'s size crosses to the host. Every crossing nnbackend makes goes through
``Backend.to_host``, and CuPy's and torch's own ways to the host are watched
too; the largest crossing of a fit and its predictions must be smaller than
``X`` (the per-epoch figures, the labels and the fitted weights are). The
float64 fit equals the NumPy fit to 1e-9.

Each case runs in a fresh interpreter: scikit-learn needs ``SCIPY_ARRAY_API=1``
before SciPy is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnbackend as nb
from conftest import child_pythonpath

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, math, sys, warnings
import numpy as np, sklearn
from sklearn.exceptions import ConvergenceWarning
import nnbackend as nb

name, device = sys.argv[1], sys.argv[2] or None
backend = nb.get_backend(name, device)
warnings.simplefilter("ignore", ConvergenceWarning)

moved = []  # the element counts of every array that left the device

def _count(a):
    return int(math.prod(tuple(a.shape))) if hasattr(a, "shape") else 0

to_host = type(backend).to_host
def watched_to_host(self, a):
    moved.append(_count(a))
    return to_host(self, a)
type(backend).to_host = watched_to_host

if name == "cupy":
    import cupy
    asnumpy = cupy.asnumpy
    def watched_asnumpy(a, *args, **kwargs):
        moved.append(_count(a))
        return asnumpy(a, *args, **kwargs)
    cupy.asnumpy = watched_asnumpy
if name == "torch":
    import torch
    # To NumPy from any device; to the CPU from a GPU.
    for method in ("numpy", "tolist", "__array__", "cpu"):
        def watched(self, *args, _original=getattr(torch.Tensor, method), _method=method, **kwargs):
            if _method != "cpu" or self.device.type != "cpu":
                moved.append(_count(self))
            return _original(self, *args, **kwargs)
        setattr(torch.Tensor, method, watched)

rng = np.random.default_rng(0)
X_host = rng.normal(size=(600, 30))
labels = (X_host[:, 0] > 0).astype(int) + (X_host[:, 1] > 0.5).astype(int)
target = X_host[:, :3].sum(axis=1)
X = backend.asarray(X_host, dtype=backend.dtype("float64"))
kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, dtype="float64")
out = {"x_size": X_host.size}
with sklearn.config_context(array_api_dispatch=True):
    clf = nb.MLPClassifier(**kw).fit(X, labels)
    proba = clf.predict_proba(X)
    predicted = clf.predict(X)
    reg = nb.MLPRegressor(early_stopping=True, **kw).fit(X, backend.asarray(target))
    values = reg.predict(X)
out["moved"] = max(moved)
out["model"] = [clf.model_.backend.name, str(clf.model_.backend.device),
                reg.model_.backend.name, str(reg.model_.backend.device)]
out["x"] = [backend.name, str(backend.device)]
out["outputs"] = [[nb.backend_of(a).name, str(nb.backend_of(a).device)]
                  for a in (proba, predicted, values)]
out["classes"] = [int(c) for c in np.asarray(clf.classes_)]
out["coefs"] = [W.tolist() for W in clf.coefs_] + [W.tolist() for W in reg.coefs_]
out["proba"] = backend.to_host(proba).tolist()
# Pickled and loaded: back on X's device, where X predicts as before.
import pickle
with sklearn.config_context(array_api_dispatch=True):
    again = pickle.loads(pickle.dumps(clf))
    out["unpickled"] = [again.model_.backend.name, str(again.model_.backend.device)]
    out["unpickled_same"] = bool(np.array_equal(backend.to_host(again.predict_proba(X)),
                                                backend.to_host(proba)))
print("RESULT " + json.dumps(out))
"""

CASES = [("strict", "device1"), ("torch", "cpu"), ("cupy", ""), ("torch", "cuda")]


def _numpy_fit():
    """The same fits on NumPy arrays, without dispatch: the figures to match."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 30))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, dtype="float64")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = nb.MLPClassifier(**kw).fit(X, labels)
        reg = nb.MLPRegressor(early_stopping=True, **kw).fit(X, X[:, :3].sum(axis=1))
    return clf.coefs_ + reg.coefs_, clf.predict_proba(X)


@pytest.mark.slow
@pytest.mark.parametrize("name, device", CASES, ids=[f"{n}-{d or 'gpu'}" for n, d in CASES])
def test_a_fit_on_device_arrays_keeps_them_there(name, device):
    pytest.importorskip("array_api_compat")
    try:
        backend = nb.get_backend(name, device or None)
    except nb.BackendUnavailableError as exc:
        pytest.skip(f"backend {name}{':' + device if device else ''} unavailable: {exc}")
    env = dict(os.environ, SCIPY_ARRAY_API="1", PYTHONPATH=child_pythonpath(ROOT))
    run = subprocess.run([sys.executable, "-c", SCRIPT, name, device], env=env,
                         capture_output=True, text=True, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    where = [backend.name, str(backend.device)]
    assert out["x"] == where
    assert out["model"] == where * 2, "the network did not run on X's backend and device"
    assert out["outputs"] == [where] * 3, "predictions did not come back as the caller's arrays"
    assert out["moved"] < out["x_size"], (
        f"{out['moved']} elements crossed to the host in one go; X has {out['x_size']}")
    assert out["classes"] == [0, 1, 2]
    assert out["unpickled"] == where and out["unpickled_same"], "a pickle lost the device"
    coefs, proba = _numpy_fit()
    assert len(out["coefs"]) == len(coefs)
    for got, want in zip(out["coefs"], coefs):
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(out["proba"]), proba, rtol=0, atol=1e-9)
