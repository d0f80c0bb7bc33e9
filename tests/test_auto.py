"""backend="auto": the choice, its explanation, the profile, the BLAS threads.

A test that needs auto to pick a given candidate sets a profile in which that
candidate is the only cheap one (``_forcing``): what is tested is that auto
follows the profile and that the fit's result does not depend on the pick.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.autoselect import (
    Profile,
    ProfileWarning,
    Terms,
    Workload,
    blas_threads_for,
    default_profile,
    load_profile,
    predict,
    profile_path,
    set_profile,
)
from nnbackend.autoselect.cost import fit_nonnegative
from nnbackend.backends import ENV_VAR, auto_candidates, blas, candidate_key, is_auto

CPU_KEYS = [key for key, _ in auto_candidates() if key.endswith(":cpu")]
MODES = ("batch", "minibatch", "sgd")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Every test reads and writes its own cache directory, and no profile is set."""
    monkeypatch.setenv("NNBACKEND_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    previous = set_profile(None)
    yield
    set_profile(previous)


def _forcing(key, executors=None, blas_section=None):
    """A profile where ``key`` costs a microsecond a fit and every other candidate an hour."""
    executors = executors or {}
    candidates = {}
    for other, backend in auto_candidates():
        modes = {}
        for mode in MODES:
            executor = executors.get((other, mode)) or _executor_of(backend, mode)
            cost = 1e-6 if other == key else 3600.0
            modes[mode] = Terms(executor=executor, setup_s=cost)
        candidates[other] = modes
    return Profile(candidates, blas_section or {}, "test")


def _executor_of(backend, mode):
    """The executor ``backend`` runs a small float32 fit of ``mode`` with."""
    choice = nb.explain_backend([3, 5, 2], n_samples=40, mode=mode, batch_size=8, epochs=1,
                                profile=_probe_profile())
    row = next(r for r in choice["candidates"] if r["backend"] == backend.name
               and r["device"] == str(backend.device))
    return row["executor"]


def _probe_profile():
    # Terms for every executor, so that every candidate is priced and shows its executor.
    names = ["reference", "jax-scan", "jax-batch", "torch-graphs", "cupy-fused", "cupy-batch"]
    modes = {f"{m}/{e}": Terms(executor=e, setup_s=1.0) for m in MODES for e in names}
    return Profile({key: dict(modes) for key, _ in auto_candidates()}, {}, "probe")


def _data(n=40, features=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.float64)


# -- names and errors ----------------------------------------------------------------

def test_auto_is_no_backend_of_its_own(monkeypatch):
    with pytest.raises(ValueError, match="backend 'auto' is chosen at each fit"):
        nb.get_backend("auto")
    monkeypatch.setenv(ENV_VAR, "auto")
    with pytest.raises(ValueError, match=r"'auto' \(from \$NNBACKEND_BACKEND\) is chosen"):
        nb.get_backend()
    assert is_auto(None) and is_auto("AUTO") and not is_auto("numpy")


def test_unknown_names_keep_their_errors():
    with pytest.raises(ValueError, match="unknown backend 'autoo'"):
        nb.MLP([2, 1], backend="autoo")
    with pytest.raises(ValueError, match="device='cpu' is a device of a named backend"):
        nb.MLP([2, 1], backend="auto", device="cpu")


@pytest.mark.parametrize("X, error, match", [
    ("abc", TypeError, "X"), (object(), TypeError, "X"), ([[1.0, np.nan]] * 4, ValueError, "NaN"),
])
def test_bad_data_keeps_its_own_error_under_auto(X, error, match):
    set_profile(_forcing("numpy:cpu"))
    with pytest.raises(error, match=match) as auto_error:
        nb.MLP([2, 1], backend="auto").fit(X, [0, 1, 0, 1])
    with pytest.raises(error) as named_error:
        nb.MLP([2, 1], backend="numpy").fit(X, [0, 1, 0, 1])
    assert str(auto_error.value) == str(named_error.value)


def test_auto_from_the_environment_and_by_name_start_on_the_host(monkeypatch):
    model = nb.MLP([2, 3, 1], backend="auto")
    assert model.auto and model.backend.name == "numpy" and model.backend_choice is None
    monkeypatch.setenv(ENV_VAR, "auto")
    assert nb.MLP([2, 1]).auto
    assert not nb.MLP([2, 1], backend="numpy").auto


def test_candidates_are_keyed_by_name_and_kind_of_device():
    keys = [key for key, _ in auto_candidates()]
    assert keys[0] == "numpy:cpu"
    assert len(keys) == len(set(keys))
    for key, backend in auto_candidates():
        assert key == candidate_key(backend)
        assert backend.name not in ("strict", "dask")


# -- the choice follows the profile; the math does not follow the choice ------------------

@pytest.mark.parametrize("key", CPU_KEYS)
def test_auto_picks_what_the_profile_says_and_records_why(key):
    set_profile(_forcing(key))
    X, y = _data()
    model = nb.MLP([3, 5, 1], backend="auto")
    hist = model.fit(X, y, mode="minibatch", batch_size=8, epochs=2)
    assert hist.backend == key == candidate_key(model.backend)
    choice = hist.backend_choice
    assert choice["chosen"] == key and choice["profile"] == "test"
    priced = {r["candidate"]: r["predicted_s"] for r in choice["candidates"]}
    assert set(priced) == {k for k, _ in auto_candidates()}
    assert priced[key] < 1e-3 and all(v > 3000 for k, v in priced.items() if k != key)
    assert choice["reason"].startswith(f"{key} (")
    # predict answers in the namespace the fit went to, as for a named backend
    assert nb.backend_of(model.predict(X)).name == model.backend.name


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_weights_whatever_auto_picks(mode):
    X, y = _data(n=48)
    reference = nb.MLP([3, 6, 1], hidden_activation="tanh", backend="numpy", dtype="float64",
                       seed=3)
    reference.fit(X, y, mode=mode, batch_size=16, epochs=3, lr=0.2, optimizer="adam")
    picked = set()
    for key in CPU_KEYS:
        set_profile(_forcing(key))
        model = nb.MLP([3, 6, 1], hidden_activation="tanh", backend="auto", dtype="float64",
                       seed=3)
        hist = model.fit(X, y, mode=mode, batch_size=16, epochs=3, lr=0.2, optimizer="adam")
        picked.add(hist.backend)
        for (W, b), (W0, b0) in zip(model.params, reference.params):
            np.testing.assert_allclose(model.backend.to_host(W), W0, rtol=0, atol=1e-9)
            np.testing.assert_allclose(model.backend.to_host(b), b0, rtol=0, atol=1e-9)
    assert picked == set(CPU_KEYS)


def test_a_second_fit_chooses_again_and_a_resumed_one_stays():
    X, y = _data()
    keys = CPU_KEYS[:2]
    if len(keys) < 2:
        pytest.skip("one CPU candidate here")
    set_profile(_forcing(keys[0]))
    model = nb.MLP([3, 4, 1], backend="auto")
    model.fit(X, y, epochs=1)
    set_profile(_forcing(keys[1]))
    assert model.fit(X, y, epochs=1).backend == keys[1]
    set_profile(_forcing(keys[0]))
    assert model.fit(X, y, epochs=1, resume=True).backend == keys[1]


def test_the_callers_arrays_decide_and_stay_where_they_are():
    torch = pytest.importorskip("torch")
    X, y = _data()
    Xt, yt = torch.asarray(X, dtype=torch.float32), torch.asarray(y, dtype=torch.float32)
    set_profile(_forcing("numpy:cpu"))
    model = nb.MLP([3, 4, 1], backend="auto")
    hist = model.fit(Xt, yt, epochs=2)
    assert hist.backend == "torch:cpu" and model.backend.name == "torch"
    assert "the data decides" in hist.backend_choice["reason"]
    assert hist.backend_choice["candidates"] == []
    assert isinstance(Xt, torch.Tensor) and Xt.device.type == "cpu"  # untouched
    assert torch.equal(Xt, torch.asarray(X, dtype=torch.float32))
    assert nb.explain_backend(model, Xt)["chosen"] == "torch:cpu"


def test_an_array_of_any_backend_decides_and_keeps_its_device(backend):
    """Every backend of the test run (cupy and torch:cuda where a GPU is at hand):
    auto never moves the caller's array off its device."""
    X, y = _data(n=32)
    if backend.name == "dask":  # its asarray makes the parameters' NumPy arrays
        import dask.array as da

        Xb = da.from_array(X.astype(np.float32), chunks=16)
    else:
        Xb = backend.asarray(X, dtype=backend.dtype("float32"))
    set_profile(_forcing("numpy:cpu"))
    model = nb.MLP([3, 4, 1], backend="auto")
    hist = model.fit(Xb, y, mode="batch", epochs=1)
    assert model.backend.name == backend.name
    assert str(model.backend.device) == str(backend.device)
    assert hist.backend == candidate_key(backend)
    assert nb.backend_of(Xb).name == backend.name  # the caller's array is where it was


def test_a_dask_array_decides_too():
    da = pytest.importorskip("dask.array")
    X, y = _data(n=64)
    model = nb.MLP([3, 4, 1], backend="auto")
    hist = model.fit(da.from_array(X, chunks=16), y, mode="batch", epochs=1)
    assert hist.backend == "dask:cpu" and "the data decides" in hist.backend_choice["reason"]


def test_explain_backend_is_what_the_fit_records():
    set_profile(_forcing("numpy:cpu"))
    X, y = _data()
    model = nb.MLP([3, 5, 1], backend="auto")
    hist = model.fit(X, y, mode="sgd", epochs=2, optimizer="momentum")
    again = nb.explain_backend(model, X, mode="sgd", epochs=2, optimizer="momentum")
    recorded = dict(hist.backend_choice)
    assert recorded.pop("choice_seconds") >= 0  # what choosing took, the fit's alone
    assert again == recorded
    assert again["workload"] == {"layer_sizes": [3, 5, 1], "n_samples": 40, "mode": "sgd",
                                 "batch_size": 1, "epochs": 2, "dtype": "float32",
                                 "optimizer": "momentum"}
    assert nb.MLP([3, 1], backend="numpy").fit(X, y, epochs=1).backend_choice is None


def test_explain_backend_refuses_what_fit_refuses():
    with pytest.raises(ValueError, match="needs the data's rows"):
        nb.explain_backend([2, 1])
    with pytest.raises(ValueError, match="mode"):
        nb.explain_backend([2, 1], n_samples=10, mode="stochastic")


def test_a_named_executor_leaves_out_the_candidates_that_lack_it():
    if "jax:cpu" not in CPU_KEYS:
        pytest.skip("jax is not installed")
    choice = nb.explain_backend([3, 4, 1], n_samples=100, mode="sgd", executor="reference",
                                profile=_probe_profile())
    rows = {r["candidate"]: r for r in choice["candidates"]}
    assert rows["jax:cpu"]["executor"] == "reference"
    choice = nb.explain_backend([3, 4, 1], n_samples=100, mode="sgd", executor="jax-scan",
                                profile=_probe_profile())
    rows = {r["candidate"]: r for r in choice["candidates"]}
    assert choice["chosen"] == "jax:cpu"
    assert rows["numpy:cpu"]["skipped"] == "executor 'jax-scan' does not run here"


def test_a_librarys_first_fit_in_the_process_is_counted_once(monkeypatch):
    choose_module = sys.modules["nnbackend.autoselect.choose"]
    monkeypatch.setattr(choose_module, "_USED", set())
    profile = _forcing("numpy:cpu")
    profile = Profile(profile.candidates, {}, "test", first_use={"numpy:cpu": 7.0})
    set_profile(profile)
    row = nb.explain_backend([3, 1], n_samples=10, profile=profile)["candidates"][0]
    assert row["candidate"] == "numpy:cpu" and row["first_use_s"] == 7.0
    assert row["predicted_s"] == pytest.approx(7.0 + 1e-6)
    X, y = _data()
    nb.MLP([3, 1], backend="numpy").fit(X, y, epochs=1)  # a fit starts the library
    row = nb.explain_backend([3, 1], n_samples=10, profile=profile)["candidates"][0]
    assert row["first_use_s"] == 0.0 and row["predicted_s"] == pytest.approx(1e-6)


def test_a_profile_measured_for_another_executor_does_not_price_the_fit():
    profile = _forcing("numpy:cpu")
    wrong = {k: dict(v) for k, v in profile.candidates.items()}
    wrong["numpy:cpu"]["sgd"] = Terms(executor="some-kernel", setup_s=1e-6)
    choice = nb.explain_backend([3, 4, 1], n_samples=10, mode="sgd",
                                profile=Profile(wrong, {}, "test"))
    rows = {r["candidate"]: r for r in choice["candidates"]}
    assert rows["numpy:cpu"]["predicted_s"] is None
    assert "measured the some-kernel executor" in rows["numpy:cpu"]["skipped"]
    if len(CPU_KEYS) > 1:
        assert choice["chosen"] != "numpy:cpu"


def test_estimators_take_auto():
    pytest.importorskip("sklearn")
    X, y = _data(n=60)
    fitted = {}
    for key in CPU_KEYS:
        set_profile(_forcing(key))
        clf = nb.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0,
                               backend="auto", dtype="float64", batch_size=20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        assert clf.model_.backend_choice["chosen"] == key
        fitted[key] = clf.predict_proba(X)
    for proba in fitted.values():
        np.testing.assert_allclose(proba, fitted["numpy:cpu"], rtol=0, atol=1e-9)


# -- the profile ----------------------------------------------------------------------

def test_the_cache_directory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NNBACKEND_CACHE_DIR", str(tmp_path / "here"))
    assert profile_path() == str(tmp_path / "here" / "auto-profile.json")


def test_without_a_profile_auto_says_so_once():
    X, y = _data()
    with pytest.warns(ProfileWarning, match="no measured profile .*--calibrate"):
        nb.MLP([3, 1], backend="auto").fit(X, y, epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileWarning)
        nb.MLP([3, 1], backend="auto").fit(X, y, epochs=1)


def test_a_saved_profile_is_read_back_over_the_default(tmp_path):
    terms = Terms(executor="reference", launch_s=2e-5, madd_s=1e-9, points=4, rel_error=0.1)
    measured = Profile({"numpy:cpu": {"sgd": terms}}, {"threshold_madds": 1024, "threads": 2},
                       "measured", "a machine", "2026-12-05T00:00:00Z")
    path = measured.save()
    assert path == profile_path() and os.path.isfile(path)
    loaded = load_profile()
    assert loaded.source == path and loaded.terms("numpy:cpu", "sgd") == terms
    assert loaded.measured == (("numpy:cpu", "sgd"),)
    # the default fills what the calibration did not measure
    assert loaded.terms("numpy:cpu", "batch") == default_profile().terms("numpy:cpu", "batch")
    assert loaded.blas["threshold_madds"] == 1024
    assert json.load(open(path))["format"] == "nnbackend-auto-profile"
    mask = os.umask(0o022)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("text, why", [
    ("{", "not a usable profile"),
    ('{"format": "other"}', "not an nnbackend profile"),
    ('{"format": "nnbackend-auto-profile", "version": 1, "candidates": {"numpy:cpu": '
     '{"sgd": {"launch_s": -1}}}}', "launch_s must be a finite number >= 0"),
    ('{"format": "nnbackend-auto-profile", "version": 1, "candidates": {"numpy:cpu": '
     '{"often": {}}}}', "unknown modes"),
])
def test_a_bad_profile_file_is_named_and_the_default_used(text, why):
    os.makedirs(os.path.dirname(profile_path()), exist_ok=True)
    with open(profile_path(), "w") as f:
        f.write(text)
    with pytest.warns(ProfileWarning, match=why):
        profile = load_profile()
    assert profile.is_default


# -- the cost model -----------------------------------------------------------------------

def test_the_cost_model_adds_its_terms():
    work = Workload((10, 20, 1), 1000, "minibatch", 100, 5)
    terms = Terms(launch_s=1e-3, madd_s=1e-9, epoch_s=0.5, setup_s=2.0, compile_s=3.0,
                  compile_layer_s=0.25)
    out = predict(terms, work, chunk_rows=64)
    # 10 steps of 100 rows, each two chunks of at most 64: 20 launches
    assert out["epoch_s"] == pytest.approx(20e-3 + 1000 * 220 * 1e-9 + 0.5)
    assert out["compile_s"] == pytest.approx(3.5)
    assert out["total_s"] == pytest.approx(2.0 + 3.5 + 5 * out["epoch_s"])


def test_the_fit_finds_nonnegative_terms():
    rng = np.random.default_rng(0)
    A = rng.uniform(1, 100, (8, 3))
    truth = np.array([0.5, 0.0, 2.0])
    coef, err = fit_nonnegative(A, A @ truth)
    np.testing.assert_allclose(coef, truth, atol=1e-9)
    assert err < 1e-12
    coef, _ = fit_nonnegative(A, A @ np.array([1.0, -0.1, 1.0]) + 50)
    assert min(coef) >= 0


# -- BLAS threads ---------------------------------------------------------------------

def test_blas_threads_follow_the_product_size():
    work = Workload((256, 256, 1), 10_000, "minibatch", 128, 1)  # 128x256x256: 2^23
    profile = Profile({}, {"threshold_madds": 2 ** 24, "threads": 8}, "test")
    assert blas_threads_for(work, 4096, profile, idle=os.cpu_count()) == 1
    big = Workload((256, 256, 1), 10_000, "minibatch", 1024, 1)
    assert blas_threads_for(big, 4096, profile, idle=os.cpu_count()) == min(8, os.cpu_count())
    # a busy machine: no more threads than idle cores
    assert blas_threads_for(big, 4096, profile, idle=1) == 1
    never = Profile({}, {"threshold_madds": None, "threads": 8}, "test")
    assert blas_threads_for(big, 4096, never, idle=8) == 1
    assert blas_threads_for(big, 4096, Profile({}, {}, "test")) is None


def test_more_blas_threads_speed_up_the_numpy_prediction_by_their_measured_gain(monkeypatch):
    choose_module = sys.modules["nnbackend.autoselect.choose"]
    terms = Terms(executor="reference", madd_s=1e-9)
    base = _forcing("numpy:cpu")
    candidates = {k: dict(v) for k, v in base.candidates.items()}
    candidates["numpy:cpu"]["batch"] = terms
    # two threads ran the products twice as fast as one, from 1 multiply-add on
    profile = Profile(candidates, {"threshold_madds": 1, "threads": 2,
                                   "measured": [[1, 2e-3, 1e-3]]}, "test")
    epochs = {}
    for idle in (1, 2):
        monkeypatch.setattr(choose_module, "free_cores", lambda idle=idle: idle)
        row = nb.explain_backend([8, 8, 1], n_samples=100, mode="batch", epochs=1,
                                 profile=profile)["candidates"][0]
        epochs[idle] = row["epoch_s"]
    assert epochs[1] == pytest.approx(100 * 72 * 1e-9, rel=1e-3)  # one thread: as measured
    assert epochs[2] == pytest.approx(epochs[1] / 2, rel=1e-3)


def test_a_numpy_fit_runs_with_the_profiles_blas_threads():
    if not blas.available() or (blas.current_threads() or 1) < 2:
        pytest.skip("threadpoolctl absent, or the BLAS runs one thread anyway")
    before = blas.current_threads()
    set_profile(Profile({}, {"threshold_madds": None, "threads": None}, "test"))
    seen = []
    X, y = _data()
    hist = nb.MLP([3, 4, 1], backend="numpy").fit(
        X, y, epochs=2, callback=lambda epoch, figures: seen.append(blas.current_threads()))
    assert seen == [1, 1] and hist.blas_threads == 1
    assert blas.current_threads() == before


def test_without_threadpoolctl_the_blas_threads_are_left_alone(monkeypatch):
    monkeypatch.setattr(blas, "available", lambda: False)
    assert not nb.get_backend("numpy").sets_blas_threads
    X, y = _data()
    assert nb.MLP([3, 1], backend="numpy").fit(X, y, epochs=1).blas_threads is None


def test_free_cores_counts_this_process():
    assert blas.free_cores(load=0.0, cores=4, running=1) == 4
    assert blas.free_cores(load=1.0, cores=4, running=1) == 4
    assert blas.free_cores(load=2.5, cores=4, running=1) == 2
    assert blas.free_cores(load=9.0, cores=4, running=1) == 1
    # a load that has just started: the average has not seen it, the run queue has
    assert blas.free_cores(load=0.0, cores=4, running=4) == 1
    assert blas.free_cores(load=0.0, cores=4, running=3) == 2


# -- the command line -----------------------------------------------------------------

def _cli(*args, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "NNBACKEND_DEBUG")}
    env["NNBACKEND_CACHE_DIR"] = str(tmp_path / "cli-cache")
    return subprocess.run([sys.executable, "-m", "nnbackend.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_info_shows_the_profile_and_the_picks(tmp_path):
    proc = _cli("info", "--backend", "auto", "--json", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["profile"] == "default" and report["picks"]
    for pick in report["picks"]:
        assert pick["chosen"] in {r["candidate"] for r in pick["candidates"]}
    text = _cli("info", "--backend", "auto", tmp_path=tmp_path).stdout
    assert "profile: the shipped default" in text and "auto would pick:" in text
    everything = _cli("info", tmp_path=tmp_path).stdout
    assert everything.index("numpy ") < everything.index("auto     profile:")


def test_train_with_auto_from_the_command_line(tmp_path):
    proc = _cli("train", "--backend", "auto", "--epochs", "5", "--quiet", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_calibrate_writes_a_profile_auto_reads(tmp_path):
    proc = _cli("bench", "--calibrate", "--backends", "numpy", "--modes", "batch,minibatch",
                "--quick", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nnbackend calibrate: [" in proc.stderr  # progress
    path = tmp_path / "cli-cache" / "auto-profile.json"
    saved = json.loads(path.read_text())
    assert set(saved["candidates"]) == {"numpy:cpu"}
    assert set(saved["candidates"]["numpy:cpu"]) == {"batch", "minibatch"}
    assert saved["candidates"]["numpy:cpu"]["batch"]["points"] == 3
    assert [s["n_samples"] for s in saved["samples"]["numpy:cpu batch"]][:2] == [8192, 2048]
    assert f"profile written to {path}" in proc.stdout


def test_calibrate_refuses_a_bad_flag(tmp_path):
    proc = _cli("bench", "--calibrate", "--modes", "fast", tmp_path=tmp_path)
    assert proc.returncode == 2 and "--modes: unknown mode(s) ['fast']" in proc.stderr


def test_calibration_reads_epoch_setup_and_compile_off_whole_fits(monkeypatch):
    # Fits of 2 (cold), 1 and 1 + k epochs, timed whole: the terms come back exactly.
    from nnbackend import calibrate as cal

    epoch, setup, compiled, calls = 0.004, 0.01, 0.5, []

    def timed_fit(model, X, y, mode, batch, epochs):
        calls.append(epochs)
        cold = compiled if len(calls) == 1 else 0.0
        return cold + setup + epochs * epoch, "reference"

    monkeypatch.setattr(cal, "_timed_fit", timed_fit)
    point = cal.measure_point(nb.get_backend("numpy"), "minibatch", "small", 256, 16)
    # k from the one-epoch fit: (0.15 s / 14 ms) = 11 epochs, 44 ms of them: enough.
    assert calls == [2, 1, 1, 12, 12]
    assert point["epoch"] == pytest.approx(epoch) and point["setup"] == pytest.approx(setup)
    assert point["compile"] == pytest.approx(compiled) and point["executor"] == "reference"
    # Where the setup dwarfs the epochs, the epochs' own time sizes k once more.
    epoch, setup, calls[:] = 1e-4, 0.02, []
    point = cal.measure_point(nb.get_backend("numpy"), "minibatch", "small", 256, 16)
    assert calls == [2, 1, 1, 8, 8, 1 + cal._MAX_EPOCHS, 1 + cal._MAX_EPOCHS]
    assert point["epoch"] == pytest.approx(epoch) and point["setup"] == pytest.approx(setup)


def test_calibration_fits_run_as_a_users_do(monkeypatch):
    # A callback would read the figures back every epoch (a window of one),
    # which on a GPU costs what a window of many epochs a launch does not.
    from nnbackend import calibrate as cal

    seen = []
    fit = cal.MLP.fit

    def recording(self, *args, **kwargs):
        hist = fit(self, *args, **kwargs)
        seen.append((kwargs.get("callback"), kwargs["epochs"], hist.window))
        return hist

    monkeypatch.setattr(cal.MLP, "fit", recording)
    point = cal.measure_point(nb.get_backend("numpy"), "minibatch", "small", 256, 16)
    assert len(seen) == 5 and all(callback is None for callback, _, _ in seen)
    assert all(window > 1 for _, epochs, window in seen if epochs > 1)
    assert point["epoch"] > 0 and point["setup"] > 0


def test_a_point_that_fails_is_said_and_the_others_still_count(monkeypatch):
    # On a GPU, paths that never ran before run here: one raising must not lose
    # the whole profile.
    from nnbackend import calibrate as cal

    real = cal.measure_point

    def measure(backend, mode, net, n, batch, seed=0):
        if net == "deep":
            raise RuntimeError("a kernel that does not launch")
        return real(backend, mode, net, n, batch, seed)

    monkeypatch.setattr(cal, "measure_point", measure)
    said = []
    profile = cal.calibrate(keys=["numpy"], modes=("batch",), quick=True, progress=said.append)
    assert any("FAILED (RuntimeError: a kernel that does not launch)" in s for s in said)
    assert "candidates: numpy:cpu" in said
    assert profile.candidates["numpy:cpu"]["batch"].points == 2  # of 3: the deep one failed


def test_calibration_fits_each_executor_of_a_mode_apart():
    # On a GPU a mode's points run two executors (mini-batches past the fused
    # kernel's 64 rows run captured graphs): one fit over both would price
    # neither, and auto would skip the GPU for the fits its kernel runs.
    from nnbackend.autoselect.profile import Profile
    from nnbackend.calibrate import terms_by_executor

    def point(executor, n, batch, epoch):
        return {"epoch": epoch, "setup": 1e-3, "compile": 0.0, "executor": executor,
                "workload": Workload((16, 32, 1), n, "minibatch", batch, 1), "rows": 4096}

    points = [point("cupy-fused", n, 16, n * 1e-7) for n in (1024, 2048, 4096, 8192)]
    points += [point("cupy-graphs", n, 128, 1e-3 + n * 1e-8) for n in (4096, 8192)]
    points += [point("reference", 1024, 16, 1.0)]  # one point: nothing to fit
    terms = terms_by_executor("minibatch", points)
    assert set(terms) == {"minibatch", "minibatch/cupy-graphs"}
    assert terms["minibatch"].executor == "cupy-fused" and terms["minibatch"].points == 4
    assert terms["minibatch/cupy-graphs"].executor == "cupy-graphs"
    profile = Profile({"cupy:gpu": terms}, {}, "measured")
    assert profile.terms("cupy:gpu", "minibatch", "cupy-fused").executor == "cupy-fused"
    assert profile.terms("cupy:gpu", "minibatch", "cupy-graphs").executor == "cupy-graphs"
    # A mode whose points all ran one executor keeps one entry, as before.
    assert set(terms_by_executor("minibatch", points[:4])) == {"minibatch"}
    assert terms_by_executor("minibatch", points[-1:]) == {}
    # A saved profile with both entries reads back.
    again = Profile.from_dict(json.loads(json.dumps(profile.to_dict())), "test")
    assert again.terms("cupy:gpu", "minibatch", "cupy-graphs").points == 2


def test_pricing_jax_for_a_float64_fit_leaves_jaxs_x64_as_it_was(tmp_path):
    # JAX's float64 is a process-wide switch: pricing JAX as a candidate must not
    # throw it for the user's own jnp code, JAX chosen or not.
    pytest.importorskip("jax")
    code = ("import json, jax, nnbackend as nb\n"
            "e = nb.explain_backend([4, 8, 1], n_samples=500, dtype='float64')\n"
            "jax_rows = [r for r in e['candidates'] if r['candidate'].startswith('jax:')]\n"
            "print(json.dumps([bool(jax.config.jax_enable_x64),\n"
            "                  [r.get('executor') for r in jax_rows],\n"
            "                  [r.get('skipped') for r in jax_rows]]))\n")
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "NNBACKEND_DEBUG")}
    env.update(NNBACKEND_CACHE_DIR=str(tmp_path), JAX_ENABLE_X64="0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    x64, executors, skipped = json.loads(proc.stdout.splitlines()[-1])
    assert x64 is False
    assert executors and all(executors) and not any(skipped), (executors, skipped)


@pytest.mark.parametrize("section", [
    {"blas": {"threshold_madds": "big"}}, {"blas": {"threads": "four"}},
    {"blas": {"measured": [[1, 2]]}}, {"libraries": [1, 2]}, {"samples": [1]}])
def test_a_profile_no_numpy_fit_could_read_is_refused_and_fits_go_on(tmp_path, section):
    # Every NumPy fit reads the profile's BLAS advice, auto or not: a malformed
    # section must fall back to the default with one warning naming the file.
    path = tmp_path / "cache" / "auto-profile.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": "nnbackend-auto-profile", "version": 1,
                                "candidates": {}, **section}))
    X = np.random.default_rng(0).random((50, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nb.MLP([4, 1], backend="numpy").fit(X, X[:, :1], epochs=1)
        nb.MLP([4, 1], backend="auto").fit(X, X[:, :1], epochs=1)
    said = [str(w.message) for w in caught if "profile" in str(w.message)]
    assert len(said) == 1 and f"{path} is not a usable profile" in said[0], said


def test_auto_with_a_device_is_refused_by_info_and_by_load(tmp_path, capsys):
    from nnbackend.cli import main

    with pytest.raises(SystemExit):
        main(["info", "--backend", "auto", "--device", "cuda"])
    assert "--device cuda is a device of a named backend" in capsys.readouterr().err
    nb.MLP([2, 1]).save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="is a device of a named backend") as refused:
        nb.MLP.load(tmp_path / "m.npz", backend="auto", device="cuda")
    assert "not a usable nnbackend checkpoint" not in str(refused.value)


def test_train_says_what_auto_chose_and_what_choosing_took(capsys):
    from nnbackend.cli import main

    assert main(["train", "--backend", "auto", "--epochs", "2", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    choice = summary["backend_choice"]
    assert choice["chosen"].startswith(summary["backend"]) and choice["choice_seconds"] >= 0
    assert main(["train", "--backend", "auto", "--epochs", "2"]) == 0
    assert "auto: " in capsys.readouterr().out


def test_a_resumed_auto_fit_records_that_it_chose_nothing():
    X, y = _data()
    model = nb.MLP([3, 5, 1], backend="auto")
    first = model.fit(X, y, epochs=2)
    resumed = model.fit(X, y, epochs=2, resume=True)
    assert first.backend_choice["candidates"]  # a choice, with what it priced
    assert resumed.backend_choice["reason"].startswith(f"resumed: stays on {resumed.backend}")
    assert resumed.backend_choice["candidates"] == []
