"""torch's devices and tensors at the backend's edges: a device named as its
tensors name it, bfloat16 to the host, tensors without values (the 'meta'
device), and parameters exported inside the caller's own inference mode."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (the 'torch' extra)")

import nnbackend as nb  # noqa: E402
from nnbackend.backends.torch import TorchBackend  # noqa: E402


def _data(n=24):
    X = np.random.default_rng(0).normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(float)


def test_a_device_is_named_as_its_tensors_name_it():
    # torch.device("mps") != torch.device("mps:0"), which MPS tensors report: a
    # model on "mps" refused every MPS tensor, with "move it there first".
    # The CPU, given an index, is the CPU its tensors report.
    for name in ("cpu", "cpu:0", "cpu:1"):
        backend = nb.get_backend("torch", name)
        tensor = torch.zeros(1, device=name)
        assert backend.device == tensor.device and str(backend.device) == "cpu"
    canonical = TorchBackend._canonical
    assert canonical(torch, torch.device("mps")) == torch.device("mps", 0)
    assert canonical(torch, torch.device("mps", 0)) == torch.device("mps:0")
    assert canonical(torch, torch.device("cuda", 1)) == torch.device("cuda:1")
    X, y = _data()
    model = nb.MLP([3, 4, 1], backend="torch", device="cpu:0")
    hist = model.fit(torch.asarray(X), torch.asarray(y), batch_size=8, epochs=2)
    assert np.isfinite(hist.loss).all()


def test_bfloat16_tensors_go_to_the_host():
    ones = torch.ones(3, dtype=torch.bfloat16)
    host = nb.get_backend("torch").to_host(ones)
    assert host.dtype == np.float32 and host.tolist() == [1.0, 1.0, 1.0]
    # bfloat16 class ids (their range is read on the host) and parameters.
    X, y = _data()
    model = nb.MLP([3, 4, 2], output_activation="softmax", loss="cross_entropy",
                   backend="torch")
    ids = torch.asarray(y.astype(int)).to(torch.bfloat16)
    hist = model.fit(torch.asarray(X, dtype=torch.float32), ids, batch_size=8, epochs=1)
    assert np.isfinite(hist.loss).all()
    W, b = (torch.full(shape, 0.5, dtype=torch.bfloat16) for shape in ((3, 1), (1,)))
    on_numpy = nb.MLP([3, 1], backend="numpy", params=[(W, b)])
    assert np.all(on_numpy.params[0][0] == 0.5)


@pytest.mark.parametrize("method", ["predict", "evaluate", "loss_and_grads"])
def test_a_tensor_without_values_is_refused_and_the_model_keeps_its_weights(method):
    # A model that follows its data had moved to the meta device before the
    # refusal: its weights were lost, and later predictions were meta tensors.
    X, y = _data()
    model = nb.MLP([3, 4, 1])
    before = [np.array(p) for p in model.flat_params]
    meta = torch.empty(len(X), 3, device="meta")
    args = (meta,) if method == "predict" else (meta, torch.asarray(y))
    with pytest.raises(ValueError, match="X is on torch device meta, which holds no values"):
        getattr(model, method)(*args)
    assert model.backend.name == "numpy"
    for got, want in zip(model.flat_params, before):
        np.testing.assert_array_equal(got, want)
    assert isinstance(model.predict(X), np.ndarray)


def test_parameters_without_values_are_refused_by_name():
    W, b = torch.empty(3, 1, device="meta"), torch.empty(1, device="meta")
    with pytest.raises(ValueError, match=r"params\[0\] W is on device meta, which holds no "
                                         "values"):
        nb.MLP([3, 1], params=[(W, b)])


def test_parameters_are_exported_outside_the_callers_inference_mode():
    # Inference tensors cannot take part in autograd, nor be changed in place,
    # outside inference mode: the exported parameters are ordinary tensors.
    X, y = _data()
    with torch.inference_mode():
        model = nb.MLP([3, 4, 1], backend="torch")
        model.fit(X, y, batch_size=8, epochs=1)
    W = model.params[0][0]
    assert not W.is_inference()
    W.add_(0.0)
    W.requires_grad_(True)
    (W * 2).sum().backward()
    assert torch.equal(W.grad, torch.full_like(W, 2.0))


@pytest.mark.parametrize("device", [0, "1"])
def test_a_device_index_is_a_cuda_device(device):
    # As torch reads an index (`--device 0` gives the text "0"): without CUDA,
    # the refusal that names the missing GPU, not "Invalid device string".
    if torch.cuda.is_available():
        pytest.skip("a machine with CUDA takes the index")
    with pytest.raises(nb.BackendUnavailableError,
                       match=f"device {device!r}: PyTorch sees no CUDA GPU"):
        nb.get_backend("torch", device)


def test_synchronize_waits_for_an_mps_device(monkeypatch):
    # MPS runs its kernels asynchronously, as CUDA does: a timing (the
    # benchmark's) that did not wait would time their launches only.
    waited = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append(True))
    cpu = nb.get_backend("torch")
    TorchBackend("torch", cpu.xp, torch.device("mps", 0)).synchronize()
    cpu.synchronize()
    assert waited == [True]


@pytest.mark.parametrize("device", ["hpu", "xla"])
def test_a_device_type_torch_cannot_make_tensors_on_is_refused_when_named(device):
    # torch has no module to ask for these (a plugin's): the backend was made,
    # and only the first array failed ("no array could be made on it").
    try:
        torch.empty(0, device=device)
        pytest.skip(f"this torch makes tensors on {device}")
    except Exception:  # noqa: BLE001
        pass
    with pytest.raises(nb.BackendUnavailableError, match=f"device '{device}' is not available"):
        nb.get_backend("torch", device)
