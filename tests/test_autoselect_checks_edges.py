"""Edges of backend="auto"'s choice, its cost model and profile, and the argument checks.

Each test pins a behaviour that a small change of
``nnbackend.autoselect``, ``nnbackend.backends.auto``/``auto_costs`` or
``nnbackend.checks`` broke without any other test noticing. Nothing here is timed: the
choices are priced from profiles and cost terms made up in the test.
"""

import os
import sys
import types

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import optim
from nnbackend.autoselect import Profile, Terms, Workload, blas_threads_for
from nnbackend.autoselect import profile as profile_module
from nnbackend.autoselect.cost import epoch_features, fit_nonnegative, setup_features
from nnbackend.backends import auto_candidates, is_auto
from nnbackend.backends.auto_costs import DEFAULT_PROFILE
from nnbackend.checks import (
    check_dense,
    check_divisor,
    check_flag,
    check_fraction,
    check_int,
    check_number,
    check_path,
    check_positive,
    check_same_shape,
    current_umask,
    namespace_of,
    replace_target,
)
from nnbackend.training import FitOptions
from test_auto import _own_cache  # noqa: F401 - autouse: a cache of each test's own

choose_module = sys.modules["nnbackend.autoselect.choose"]
KEYS = [key for key, _ in auto_candidates()]
EXECUTORS = ["reference", "jax-scan", "jax-batch", "torch-graphs", "cupy-fused", "cupy-batch"]


def _numpy_only(mode, blas=None, **terms):
    """A profile that prices numpy:cpu's ``mode`` alone (the others have no terms)."""
    return Profile({"numpy:cpu": {mode: Terms(executor="reference", **terms)}}, blas or {}, "test")


def _numpy_row(choice):
    return next(r for r in choice["candidates"] if r["candidate"] == "numpy:cpu")


def _profile_dict(**changes):
    d = {"format": "nnbackend-auto-profile", "version": 1,
         "candidates": {"numpy:cpu": {"sgd": {"executor": "reference", "launch_s": 1e-5}}}}
    d.update(changes)
    return d


# -- the workload a fit asks for -----------------------------------------------------------

def test_a_batch_larger_than_the_data_is_priced_as_the_data():
    # make_plan clips a mini-batch to N; the workload (and the launches priced) must too.
    choice = nb.explain_backend([3, 4, 1], n_samples=10, mode="minibatch", batch_size=32,
                                epochs=1, profile=_numpy_only("minibatch", launch_s=1.0))
    assert choice["workload"]["batch_size"] == 10
    assert _numpy_row(choice)["epoch_s"] == pytest.approx(1.0)  # one step, one chunk


def test_a_custom_optimizer_is_priced_as_adam():
    # An Optimizer object has no name: the workload says "custom", priced as Adam (4x SGD).
    profile = _numpy_only("minibatch", param_s=1.0)
    custom = nb.explain_backend([3, 4, 1], n_samples=10, batch_size=10, epochs=1,
                                optimizer=optim.adam(0.01), profile=profile)
    plain = nb.explain_backend([3, 4, 1], n_samples=10, batch_size=10, epochs=1,
                               optimizer="sgd", profile=profile)
    assert custom["workload"]["optimizer"] == "custom"
    assert _numpy_row(custom)["epoch_s"] == pytest.approx(4 * _numpy_row(plain)["epoch_s"])


def test_a_targets_array_of_a_backend_decides_and_is_named():
    torch = pytest.importorskip("torch")
    choice = nb.explain_backend([3, 1], np.zeros((4, 3)), torch.zeros((4, 1)))
    assert choice["chosen"] == "torch:cpu" and choice["candidates"] == []
    assert choice["reason"].startswith("y is an array of the torch backend")


# -- the executor a candidate would run -------------------------------------------------------

def test_the_reference_executor_is_none_on_a_backend_without_a_reference_loop():
    # (dask has no reference loop: naming "reference" must not price it as if it had one)
    options = FitOptions.check(executor="reference")
    stub = types.SimpleNamespace(no_reference_loop="no loop here")
    assert choose_module._executor_for(stub, options, None, [3, 1], None, "float32", 64) is None


def _probe_profile():
    # Terms for every executor of every mode: every candidate is priced and shows its executor.
    modes = {f"{m}/{e}": Terms(executor=e, setup_s=1.0)
             for m in ("batch", "minibatch", "sgd") for e in EXECUTORS}
    return Profile({key: dict(modes) for key in KEYS}, {}, "probe")


def test_a_named_executor_that_declines_the_fit_leaves_the_candidate_out():
    # jax-scan declines batches larger than a chunk: named, it must not fall back to the
    # reference loop (that is what executor="auto" does, not a named executor).
    if "jax:cpu" not in KEYS:
        pytest.skip("jax is not installed")
    with pytest.raises(ValueError, match="jax:cpu: executor 'jax-scan' does not run here"):
        nb.explain_backend([3, 4, 1], n_samples=100, mode="minibatch", batch_size=64,
                           chunk_size=8, executor="jax-scan", profile=_probe_profile())


# -- the BLAS threads' predicted speed-up --------------------------------------------------------

def _batch_epoch(monkeypatch, blas, idle=2):
    """numpy:cpu's predicted epoch of a [8, 8, 1] full batch of 100 rows (6400 multiply-adds
    in its largest product, 7200 in all), over one thread's: 1 / the predicted speed-up."""
    monkeypatch.setattr(choose_module, "free_cores", lambda: idle)
    choice = nb.explain_backend([8, 8, 1], n_samples=100, mode="batch", epochs=1,
                                profile=_numpy_only("batch", blas=blas, madd_s=1e-9))
    return _numpy_row(choice)["epoch_s"] / (100 * 72 * 1e-9)


def test_the_blas_gain_is_read_at_the_largest_measured_product_not_above_the_fits(monkeypatch):
    # measured: [product, one thread's s, two threads' s]; the fit's largest product is 6400
    at = {"threshold_madds": 1, "threads": 2, "measured": [[1, 1e-3, 1e-3], [6400, 4e-3, 1e-3]]}
    assert _batch_epoch(monkeypatch, at) == pytest.approx(1 / 4, rel=1e-3)  # 6400 <= 6400
    later = {"threshold_madds": 1, "threads": 2, "measured": [[1, 2e-3, 1e-3], [2, 4e-3, 1e-3]]}
    assert _batch_epoch(monkeypatch, later) == pytest.approx(1 / 4, rel=1e-3)  # the last below


def test_below_every_measured_product_the_smallest_measurement_gives_the_gain(monkeypatch):
    above = {"threshold_madds": 1, "threads": 2,
             "measured": [[10 ** 6, 4e-3, 1e-3], [10 ** 7, 8e-3, 1e-3]]}
    assert _batch_epoch(monkeypatch, above) == pytest.approx(1 / 4, rel=1e-3)


def test_threads_measured_slower_than_one_predict_no_slowdown(monkeypatch):
    # the fit runs them anyway (above the threshold); the gain is clamped at 1, not < 1
    slower = {"threshold_madds": 1, "threads": 2, "measured": [[1, 1e-3, 2e-3]]}
    assert _batch_epoch(monkeypatch, slower) == pytest.approx(1.0, rel=1e-3)


def test_a_profile_with_no_thread_count_predicts_no_blas_gain(monkeypatch):
    # threads: null leaves the library's own count (the machine's cores): the gain measured
    # "with the profile's threads" is then for one thread's count, not a division by zero.
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    none = {"threshold_madds": 1, "threads": None, "measured": [[1, 2e-3, 1e-3]]}
    assert _batch_epoch(monkeypatch, none) == pytest.approx(1.0, rel=1e-3)


def test_without_threadpoolctl_no_blas_gain_is_predicted(monkeypatch):
    from nnbackend.backends import blas
    monkeypatch.setattr(blas, "available", lambda: False)
    twice = {"threshold_madds": 1, "threads": 2, "measured": [[1, 2e-3, 1e-3]]}
    assert _batch_epoch(monkeypatch, twice) == pytest.approx(1.0, rel=1e-3)


def test_blas_threads_without_a_threshold_leave_the_librarys_setting():
    work = Workload((256, 256, 1), 10_000, "minibatch", 1024, 1)
    assert blas_threads_for(work, 4096, Profile({}, {"threads": 4}, "test"), idle=4) is None


def test_a_product_at_the_threshold_gets_the_threads():
    work = Workload((256, 256, 1), 10_000, "minibatch", 128, 1)  # 128x256x256 = 2^23
    profile = Profile({}, {"threshold_madds": 2 ** 23, "threads": 4}, "test")
    assert blas_threads_for(work, 4096, profile, idle=4) == 4
    assert blas_threads_for(work, 127, profile, idle=4) == 1  # a chunk of 127 rows: below


def test_blas_threads_default_to_the_cores_and_never_to_zero(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    work = Workload((256, 256, 1), 10_000, "minibatch", 1024, 1)
    profile = Profile({}, {"threshold_madds": 0, "threads": None}, "test")
    assert blas_threads_for(work, 4096, profile, idle=8) == 8
    assert blas_threads_for(work, 4096, profile, idle=0) == 1


def test_the_default_profile_gives_one_blas_thread_below_2_to_the_25_madds(monkeypatch):
    # auto_costs: "One BLAS thread below 2^25 multiply-adds in a product (a 512x256x256 one)"
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    default = profile_module.default_profile()
    below = Workload((256, 256, 1), 10_000, "minibatch", 511, 1)
    at = Workload((256, 256, 1), 10_000, "minibatch", 512, 1)
    assert blas_threads_for(below, 4096, default, idle=8) == 1
    assert blas_threads_for(at, 4096, default, idle=8) == 8


# -- the choice's figures and words -----------------------------------------------------------

def test_predictions_keep_six_significant_digits():
    choice = nb.explain_backend([3, 1], n_samples=10, mode="sgd", epochs=1,
                                profile=_numpy_only("sgd", setup_s=1.23456789))
    assert _numpy_row(choice)["predicted_s"] == 1.23457


def test_equal_predictions_choose_the_earlier_candidate():
    if len(KEYS) < 2:
        pytest.skip("needs a second candidate (torch or jax)")
    choice = nb.explain_backend([3, 4, 1], n_samples=40, mode="minibatch", batch_size=8,
                                epochs=1, profile=_probe_profile())
    assert len({r["predicted_s"] for r in choice["candidates"]}) == 1
    assert choice["chosen"] == KEYS[0] == "numpy:cpu"


def test_the_reason_names_the_epochs_mode_and_rows():
    choice = nb.explain_backend([3, 1], n_samples=40, mode="sgd", epochs=3,
                                profile=_numpy_only("sgd", setup_s=1.0))
    assert " for 3 epochs of sgd over 40 rows" in choice["reason"]


def test_float64_chunks_hold_half_the_rows_of_float32s():
    # chunk_size="auto": rows within the activation budget, by the dtype's item size
    # ([32, 64, 1] at 4 MiB: 2048 float32 rows, 1024 float64 ones)
    profile = _numpy_only("batch", launch_s=1.0)
    launches = {dtype: _numpy_row(nb.explain_backend(
        [32, 64, 1], n_samples=4096, mode="batch", epochs=1, dtype=dtype,
        profile=profile))["epoch_s"] for dtype in ("float32", "float64")}
    assert launches == {"float32": 2.0, "float64": 4.0}


# -- the cost model ---------------------------------------------------------------------------

def test_a_workloads_sizes():
    work = Workload((3, 4, 2), 10, "minibatch", 3, 1, dtype="float64")
    assert work.madds == 3 * 4 + 4 * 2
    assert work.n_params == 20 + 4 + 2  # the weights and the biases
    assert work.activations == 6  # every layer after the input
    assert work.data_bytes == 10 * (3 + 2) * 8  # X and the targets, 8 bytes each
    assert work.steps == 4  # a last, short batch is a step too
    assert Workload((3, 4, 2), 10, "minibatch", 3, 1).data_bytes == 10 * 5 * 4


def test_the_largest_product_is_the_widest_layers_over_a_chunk_at_most():
    work = Workload((4, 8, 2), 1000, "batch", 1000, 1)
    assert work.largest_product(64) == 64 * 32  # a chunk's rows, the 4x8 layer
    assert work.largest_product(10_000) == 1000 * 32


def test_float64_doubles_the_per_row_arithmetic_and_a_custom_optimizer_costs_adams():
    f32 = epoch_features(Workload((3, 4, 1), 10, "minibatch", 5, 1, "float32", "sgd"), 64)
    f64 = epoch_features(Workload((3, 4, 1), 10, "minibatch", 5, 1, "float64", "adam"), 64)
    custom = epoch_features(Workload((3, 4, 1), 10, "minibatch", 5, 1, "float32", "mine"), 64)
    assert f64[2] == 2 * f32[2] and f64[3] == 2 * f32[3]  # madds, activations
    assert f64[1] == custom[1] == 4 * f32[1]  # Adam's update: 4 SGD's


def test_only_descent_with_steps_pays_a_starting_forward_pass():
    batch = setup_features(Workload((3, 4, 1), 10, "batch", 10, 1))
    minibatch = setup_features(Workload((3, 4, 1), 10, "minibatch", 5, 1))
    assert batch[2] == 0 and minibatch[2] == 10 * 16


def test_fit_nonnegative_refuses_no_rows_and_zero_times():
    with pytest.raises(ValueError, match="at least one"):
        fit_nonnegative(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="> 0"):
        fit_nonnegative([[1.0, 2.0], [1.0, 3.0]], [1.0, 0.0])


def test_fit_nonnegative_prefers_fewer_terms_within_its_tolerance():
    # t = 1 + 0.001 x: a constant alone is within 1 % of every time, so it wins over the
    # exact two-term fit (fewest columns within 1.1 x the best error plus 2 %).
    x = np.arange(1.0, 11.0)
    coef, err = fit_nonnegative(np.column_stack([np.ones_like(x), x]), 1 + 0.001 * x)
    assert coef[1] == 0.0 and coef[0] > 0
    assert 0 < err < 0.02




def test_fit_nonnegative_never_returns_a_negative_term():
    # t = 10 - x is fitted exactly only with a negative slope: the fit must give it up.
    x = np.arange(1.0, 6.0)
    coef, err = fit_nonnegative(np.column_stack([np.ones_like(x), x]), 10 - x)
    assert min(coef) >= 0 and err > 0.02

@pytest.mark.parametrize("terms, why", [
    ({"executor": 3}, "executor must be a name, got 3"),
    ({"launch_s": float("inf")}, "cost term launch_s must be a finite number >= 0, got inf"),
    ({"madd_s": float("nan")}, "cost term madd_s must be a finite number >= 0"),
    ({"speed": 1.0}, r"unknown cost terms \['speed'\]"),
    ({"points": True}, "points must be an int >= 0, got True"),
])
def test_cost_terms_no_prediction_could_use_are_refused(terms, why):
    with pytest.raises(ValueError, match=why):
        Terms.from_dict(terms)
    assert Terms.from_dict({"rel_error": 0, "points": 0}).rel_error == 0  # 0 is a number >= 0

# -- the profile ------------------------------------------------------------------------------

def test_an_empty_cache_variable_is_not_set(monkeypatch, tmp_path):
    # NNBACKEND_CACHE_DIR="" is unset, not "" made absolute (the working directory).
    monkeypatch.setenv("NNBACKEND_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert profile_module.cache_dir() != str(tmp_path)
    assert os.path.basename(profile_module.cache_dir()) == "nnbackend"


def test_only_the_shipped_default_or_a_file_measuring_nothing_is_the_default():
    assert not Profile({}, {}, "test").is_default  # set by a caller: priced as given
    assert Profile({}, {}, "a/file.json", from_file=True).is_default
    assert Profile({}, {}, "default").is_default


def test_an_executors_entry_shares_its_modes_run_facts():
    facts = {"created": "then", "machine": "m", "version": "1.2"}
    profile = Profile({}, {}, "test", created="header", groups={"jax:cpu": {"sgd": facts}})
    assert profile.group_facts("jax:cpu", "sgd/jax-scan") == facts


def test_a_profile_of_another_version_is_refused():
    with pytest.raises(ValueError, match="profile version 2; this nnbackend reads 1"):
        Profile.from_dict(_profile_dict(version=2), "p.json")


def test_a_candidate_key_without_a_device_kind_is_refused():
    with pytest.raises(ValueError, match="bad candidate entry 'numpy'"):
        Profile.from_dict(_profile_dict(candidates={"numpy": {}}), "p.json")


def test_an_executors_entry_holding_another_executors_terms_is_refused():
    modes = {"sgd/jax-scan": {"executor": "reference", "launch_s": 1e-5}}
    with pytest.raises(ValueError, match=r"entries \['sgd/jax-scan'\] hold another executor"):
        Profile.from_dict(_profile_dict(candidates={"jax:cpu": modes}), "p.json")


def test_first_use_takes_zero_seconds_and_refuses_a_bool():
    ok = Profile.from_dict(_profile_dict(first_use={"numpy:cpu": 0}), "p.json")
    assert ok.first_use == {"numpy:cpu": 0}
    with pytest.raises(ValueError, match="'first_use' must map candidate keys to seconds"):
        Profile.from_dict(_profile_dict(first_use={"numpy:cpu": True}), "p.json")


def test_every_groups_facts_must_be_a_mapping():
    groups = {"numpy:cpu": {"sgd": {"created": "x"}, "batch": "yesterday"}}
    with pytest.raises(ValueError, match="'groups' must map"):
        Profile.from_dict(_profile_dict(groups=groups), "p.json")


@pytest.mark.parametrize("blas, why", [
    ({"threads": 0}, "'blas.threads' must be a whole number >= 1"),
    ({"threads": 2.5}, "'blas.threads' must be a whole number >= 1"),
    ({"measured": [[1, 2e-3]]}, "'blas.measured' must list"),
])
def test_blas_advice_no_fit_could_use_is_refused(blas, why):
    with pytest.raises(ValueError, match=why):
        Profile.from_dict(_profile_dict(blas=blas), "p.json")


def test_the_shipped_default_measures_nothing_and_a_file_measures_its_entries():
    assert profile_module.default_profile().measured == ()
    read = Profile.from_dict(_profile_dict(), "p.json")
    assert read.measured == (("numpy:cpu", "sgd"),)


def test_a_measured_first_use_wins_over_the_defaults():
    measured = Profile({}, {}, "p.json", first_use={"jax:cpu": 0.25})
    merged = measured.over(profile_module.default_profile())
    assert merged.first_use["jax:cpu"] == 0.25
    assert merged.first_use["torch:cpu"] == DEFAULT_PROFILE["first_use"]["torch:cpu"]


def test_the_fingerprint_kept_wins_over_the_machine_text():
    fp = {"cpu": "Mine", "cores": 2}
    profile = Profile({}, {}, "p.json", machine="Other CPU, 64 cores", fingerprint=fp)
    assert profile_module.fingerprint_of(profile) == fp


def _measured_numpy(version, fingerprint):
    return Profile({"numpy:cpu": {"sgd": Terms()}}, {}, "p.json", libraries={"numpy": version},
                   measured=(("numpy:cpu", "sgd"),), fingerprint=fingerprint)


def test_another_minor_version_or_core_count_is_a_mismatch():
    here = profile_module.machine_fingerprint()
    major, minor = np.__version__.split(".")[:2]
    same = _measured_numpy(f"{major}.{minor}.999", here)
    assert profile_module.profile_mismatch(same) == {}  # a patch release: the same terms
    newer = _measured_numpy(f"{major}.{int(minor) + 1}.0", here)
    assert "libraries" in profile_module.profile_mismatch(newer)
    cores = _measured_numpy(np.__version__, {**here, "cores": (here["cores"] or 1) + 64})
    assert set(profile_module.profile_mismatch(cores)) == {"machine"}


def test_a_library_no_longer_installed_is_no_version_mismatch():
    profile = Profile({"nonesuch:cpu": {"sgd": Terms()}}, {}, "p.json",
                      libraries={"nonesuch": "1.0"}, measured=(("nonesuch:cpu", "sgd"),),
                      fingerprint=profile_module.machine_fingerprint())
    assert profile_module.profile_mismatch(profile) == {}


# -- the candidates and the shipped default -----------------------------------------------------

def test_auto_is_asked_for_with_spaces_around_it():
    assert is_auto(" Auto\n")


def test_listing_the_candidates_keeps_jax_from_taking_most_of_a_gpu(monkeypatch):
    for given, expected in ((None, "false"), ("true", "true")):  # the caller's is kept
        if given is None:
            monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
        else:
            monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", given)
        auto_candidates.cache_clear()
        try:
            auto_candidates()
            assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == expected
        finally:
            auto_candidates.cache_clear()



def test_a_candidate_that_resolves_to_one_already_listed_is_listed_once(monkeypatch):
    # (a GPU entry whose library falls back to its CPU, say: one key, one candidate)
    from nnbackend.backends import auto as auto_module
    from nnbackend.backends.numpy import NumpyBackend
    again = auto_module.AUTO_CANDIDATES + (("numpy", "cpu", NumpyBackend),)
    monkeypatch.setattr(auto_module, "AUTO_CANDIDATES", again)
    auto_candidates.cache_clear()
    try:
        keys = [key for key, _ in auto_candidates()]
    finally:
        auto_candidates.cache_clear()
    assert keys.count("numpy:cpu") == 1 and keys == KEYS

def test_the_default_prices_every_gpu_candidates_reference_loop_in_every_mode():
    # A fit no kernel takes (a custom optimizer) runs the plain loop on a GPU too.
    default = profile_module.default_profile()
    for key in ("cupy:gpu", "torch:gpu", "jax:gpu"):
        for mode in ("sgd", "minibatch", "batch"):
            assert default.terms(key, mode, "reference").executor == "reference", (key, mode)
            assert default.terms(key, mode).executor != "reference", (key, mode)  # a kernel


def test_the_default_counts_a_first_fit_for_every_library_but_numpy():
    first_use = profile_module.default_profile().first_use
    assert "numpy:cpu" not in first_use
    assert all(first_use[key] > 0 for key in ("jax:cpu", "torch:cpu", "cupy:gpu", "torch:gpu",
                                                "jax:gpu"))


def test_the_defaults_gpu_full_batch_runs_cupys_batch_kernel():
    # auto_costs: "the full-batch kernels' ms per epoch"; cupy-fused is the step kernel.
    default = profile_module.default_profile()
    assert {default.terms(k, "batch").executor for k in ("cupy:gpu", "torch:gpu", "jax:gpu")} \
        == {"cupy-batch"}
    assert {default.terms(k, m).executor for k in ("cupy:gpu", "torch:gpu", "jax:gpu")
            for m in ("sgd", "minibatch")} == {"cupy-fused"}


# -- argument checks --------------------------------------------------------------------------

def test_check_int_refuses_bools_and_names_its_minimum():
    with pytest.raises(TypeError, match="epochs must be an integer, got bool True"):
        check_int("epochs", True)
    assert check_int("epochs", 1) == 1 and check_int("n", 0, minimum=0) == 0
    with pytest.raises(ValueError, match="n must be >= 3, got 2"):
        check_int("n", 2, minimum=3)


def test_check_number_bounds():
    assert check_number("x", 0.0, 0.0) == 0.0  # closed at low
    with pytest.raises(ValueError, match=r"x must be a finite number > 0, got 0$"):
        check_number("x", 0, 0, low_open=True)
    assert check_number("x", 0.5, 0.0, 1.0, low_open=True) == 0.5
    with pytest.raises(ValueError, match=r"x must be a finite number >= 0 and < 1, got 1"):
        check_number("x", 1, 0, 1)  # open at high
    for bad in (float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError):
            check_number("x", bad, 0)


def test_hyperparameters_refuse_bools_and_their_bounds():
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got True"):
        check_positive("lr", True)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got 0"):
        check_positive("lr", 0)
    assert check_fraction("beta", 0) == 0.0 and type(check_fraction("beta", 0)) is float
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\), got 1"):
        check_fraction("beta", 1)
    assert check_fraction("rate", 1, one=True) == 1.0
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\], got True"):
        check_fraction("rate", True, one=True)


def test_flags_refuse_other_whole_numbers():
    with pytest.raises(TypeError, match="shuffle must be True or False, got 3"):
        check_flag("shuffle", 3)


def test_kernels_refuse_bool_arrays_when_they_compute_in_floating_point():
    with pytest.raises(TypeError, match="k: y has dtype bool"):
        namespace_of("k", ("x", "y"), np.ones(3), np.ones(3, dtype=bool), floating=True)
    assert namespace_of("k", ("x", "y"), np.ones(3), np.ones(3, dtype=bool)) is not None


def test_a_nested_lists_shape_is_read_as_numpy_reads_it():
    with pytest.raises(ValueError, match=r"broadcast to \(3, 3\), not a's \(3, 1\)"):
        check_same_shape("k", ("a", "y"), np.zeros((3, 1)), [[1.0, 2.0, 3.0]])
    check_same_shape("k", ("a", "y"), np.zeros((3, 2)), [[1.0, 2.0]])  # a row broadcasts in


def test_sizes_of_one_broadcast_and_others_must_agree():
    check_same_shape("k", ("a", "y"), np.zeros((4, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="do not broadcast together"):
        check_same_shape("k", ("a", "y"), np.zeros((4, 3)), np.zeros((4, 2)))


def test_a_dense_layers_bias_and_gradient_must_fit_its_output():
    x, W = np.ones((5, 3)), np.ones((3, 2))
    with pytest.raises(ValueError, match=r"b must have shape \(2,\) for W of shape \(3, 2\)"):
        check_dense("k", x, W, np.ones(3))
    with pytest.raises(ValueError, match=r"dz must have shape \(5, 2\)"):
        check_dense("k", x, W, np.ones(2), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"x must be 2-D, shape \(n, fan_in\), got shape \(3,\)"):
        check_dense("k", np.ones(3), W, None, np.ones((1, 2)))  # one sample: forward only
    check_dense("k", np.ones(3), W, np.ones(2))


def test_the_means_divisor_refuses_a_bool_and_nan():
    for bad in (True, float("nan"), 0, 0.5):
        with pytest.raises(ValueError, match="n_samples must be a number >= 1"):
            check_divisor("k", bad)
    assert type(check_divisor("k", np.int64(5))) is int
    assert type(check_divisor("k", np.float32(2.0))) is float
    assert check_divisor("k", 0, reduction="sum") == 0


def test_a_bytes_path_is_read_as_a_str():
    assert check_path("path", b"model.npz") == "model.npz"
    with pytest.raises(TypeError, match="path must be a str, bytes or os.PathLike, got NoneType"):
        check_path("path", None)


def test_a_path_naming_a_directory_or_a_device_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ends in a separator"):
        replace_target(str(tmp_path / "notes.txt") + os.sep, "checkpoint")
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match="it exists and is not a regular file"):
        replace_target(tmp_path / "d", "checkpoint")
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="not a regular file"):
            replace_target("/dev/null")
    assert replace_target(tmp_path / "new.npz") == str(tmp_path / "new.npz")


def test_the_umask_read_is_octal():
    mask = os.umask(0o027)
    try:
        assert current_umask() == 0o027
    finally:
        os.umask(mask)


# -- NumPy's bools ------------------------------------------------------------------------------
# Python's bools are refused as hyperparameters and as the mean's divisor (True is no
# rate: a flag passed where a number belongs), and check_flag reads NumPy's bools as
# bools, but np.True_ / np.False_ pass check_positive, check_fraction and check_divisor:
# fit(lr=np.True_) trains at lr=1.0, momentum's beta=np.False_ is taken as 0.0, and a
# kernel's n_samples=np.False_ divides by zero.

def test_numpy_bools_are_refused_where_pythons_bools_are():
    X = np.random.default_rng(0).random((8, 2))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        nb.MLP([2, 1], backend="numpy").fit(X, X[:, :1], epochs=1, batch_size=8, lr=np.True_)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        check_positive("lr", np.True_)
    with pytest.raises(ValueError, match="beta must be a number in"):
        check_fraction("beta", np.False_)
    with pytest.raises(ValueError, match="n_samples must be a number >= 1"):
        check_divisor("k", np.False_)
