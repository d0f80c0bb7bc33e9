"""``nnbackend bench --precision``: every case, the peers' included, at the
precision asked for, through the same switch as a fit's; each case records
what its float32 matmuls ran at, and the report says so.

The switches are tested on the CPU through the backends given a GPU
backend's context (torch's real switch on torch:cpu); TF32 itself needs a GPU.
"""

import argparse

import pytest

from nnbackend.backends import precision as P
from nnbackend.bench import workloads as W
from nnbackend.bench.report.header import precision_text
from nnbackend.bench.suite import add_bench_arguments, bench_environment


def _args(*flags):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser.parse_args(list(flags))


def test_the_flag_reaches_the_suite_and_a_bad_one_is_refused(capsys):
    assert bench_environment(_args("--precision", "tf32"), {})["NNBACKEND_BENCH_PRECISION"] \
        == "tf32"
    assert "NNBACKEND_BENCH_PRECISION" not in bench_environment(_args(), {})
    with pytest.raises(SystemExit):
        _args("--precision", "bf16")
    assert "invalid choice: 'bf16'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown precision 'tf16'"):
        W.make_epoch("torch-eager", "cpu", "batch", 64, precision="tf16")


@pytest.mark.parametrize("implementation, where", [
    ("nnbackend", "numpy"), ("numpy-seed", "cpu"), ("nnbackend", "torch"),
    ("torch-eager", "cpu"), ("jax-scan-hand", "cpu"), ("jax-jit-step", "cpu")])
def test_cpu_cases_run_full_float32_whatever_is_asked(implementation, where):
    if "torch" in (implementation + where):
        pytest.importorskip("torch", reason="needs torch")
    if implementation.startswith("jax"):
        pytest.importorskip("jax", reason="needs jax")
    losses = []
    for precision in (None, "tf32"):
        step, info = W.make_epoch(implementation, where, "minibatch", 128, precision=precision)
        assert info["precision"] == "highest", (implementation, precision)
        losses.append(step())
    assert losses[0] == losses[1]


def test_the_torch_peer_runs_each_epoch_under_the_switch_and_puts_it_back(monkeypatch):
    """torch-eager on torch:cpu given torch:cuda's context: each epoch's layers
    run under TF32; between epochs, and after, torch is as it was."""
    torch = pytest.importorskip("torch", reason="needs torch")
    from nnbackend.backends.torch import TorchBackend

    monkeypatch.setattr(TorchBackend, "matmul_precision",
                        lambda self, precision, dtype: P.torch_precision(torch, precision))
    seen = []
    linear = torch.nn.functional.linear

    def recorded(*args, **kwargs):
        seen.append(torch.get_float32_matmul_precision())
        return linear(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", recorded)
    step, info = W.make_epoch("torch-eager", "cpu", "minibatch", 128, precision="tf32")
    assert info["precision"] == "tf32" and torch.get_float32_matmul_precision() == "highest"
    step()
    assert seen and set(seen) == {"high"}
    assert torch.get_float32_matmul_precision() == "highest"
    # None: nothing is set around the epochs, and the library's setting is named.
    seen.clear()
    step, info = W.make_epoch("torch-eager", "cpu", "minibatch", 128)
    step()
    assert info["precision"] == "highest" and set(seen) == {"highest"}


def test_the_jax_peers_name_jaxs_default_on_a_gpu():
    """The hand-written JAX epochs ask for no precision: on a GPU, JAX's unset
    default lets XLA use TF32, which is what they are labelled with."""
    jax = pytest.importorskip("jax", reason="needs jax")
    from nnbackend.bench.peers import jax_default_precision

    assert jax.config.jax_default_matmul_precision is None
    assert jax_default_precision("highest") == "JAX's default (TF32 on GPUs that have it)"
    with jax.default_matmul_precision("tensorfloat32"):
        assert jax_default_precision("tf32") == "tf32"


@pytest.mark.parametrize("asked, setting", [("highest", "highest"), ("tf32", "tensorfloat32")])
def test_the_jax_peers_on_a_gpu_run_at_the_precision_asked(monkeypatch, asked, setting):
    # nnbackend's own JAX matmuls ask for HIGHEST, so its switch sets nothing for
    # "highest"; the hand-written `@` asks for nothing, and would run at JAX's
    # default (TF32 on a GPU) while labelled "highest".
    jax = pytest.importorskip("jax", reason="needs jax")
    seen = []

    def make(mode, n_samples, batch_size, seed, lr, device=None, model="small"):
        def step():
            seen.append(jax.config.jax_default_matmul_precision)
            return None, 0.0

        step.window = lambda k: seen.append(jax.config.jax_default_matmul_precision)
        return step, {"gpu": True, "precision": "highest"}  # as on a GPU

    monkeypatch.setattr(W, "jax_scan_epoch", make)
    step, info = W.make_epoch("jax-scan-hand", "cpu", "minibatch", 256, precision=asked)
    step()
    step.window(2)
    assert seen == [setting, setting] and info["precision"] == asked
    assert jax.config.jax_default_matmul_precision is None  # put back after each call


def test_a_case_records_the_executor_that_ran_and_how():
    step, info = W.make_epoch("nnbackend", "numpy", "minibatch", 256)
    assert info["executor"] == "auto" and info["executor_ran"] == step.executor
    assert step.executor and isinstance(step.reason_now(), str) and step.reason_now()


def test_the_report_says_what_the_matmuls_ran_at():
    assert precision_text([{"label": "a"}]) is None  # results from before it was recorded
    assert precision_text([{"label": "a", "precision": "highest"},
                           {"label": "b", "precision": "highest"}]) == \
        "full float32 in every case"
    assert precision_text([{"label": "nnbackend-numpy-cpu", "precision": "highest"},
                           {"label": "torch-eager-cuda", "precision": "tf32"},
                           {"label": "nnbackend-torch-cuda", "precision": "tf32"}]) == \
        "full float32, except tf32 in nnbackend-torch-cuda, torch-eager-cuda"
    assert precision_text([{"label": "x", "precision": "tf32"}]) == "tf32 in x"
