"""The auto profile's edges: what ``nnbackend bench --calibrate`` writes over an
existing profile, a profile from another machine, odd but accepted or corrupt
files, the flags ``--calibrate`` refuses, and ``explain_backend``'s checks.

No test here measures anything: the calibration is replaced by a stand-in
that returns a made-up profile at once, so the file stays fast.
"""

import json
import os
import warnings

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import calibrate as cal
from nnbackend.autoselect import (
    Profile,
    ProfileWarning,
    Terms,
    load_profile,
    machine_fingerprint,
    profile_path,
)
from nnbackend.backends import library_version
from nnbackend.cli import main
from test_auto import _own_cache  # noqa: F401 - autouse: a cache of each test's own

OLD = "2026-01-01T00:00:00Z"
NEW = "2026-02-02T00:00:00Z"


def _terms(executor="reference", launch=2e-5, **extra):
    return Terms(executor=executor, launch_s=launch, madd_s=1e-9, points=3, rel_error=0.1,
                 **extra)


def _here_machine():
    fp = machine_fingerprint()
    return f"{fp['cpu']}, {fp['cores']} cores, load average 0.10 0.10 0.10"


def _write(profile_dict):
    path = profile_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(profile_dict, f)
    return path


def _old_file(**changes):
    """A measured profile of this machine with numpy:cpu's three modes and jax:cpu's sgd."""
    modes = {m: _terms().to_dict() for m in ("batch", "minibatch", "sgd")}
    modes["minibatch/torch-graphs"] = _terms("torch-graphs").to_dict()
    d = {"format": "nnbackend-auto-profile", "version": 1, "machine": _here_machine(),
         "created": OLD, "libraries": {"numpy": library_version("numpy")},
         "candidates": {"numpy:cpu": modes},
         "blas": {"threshold_madds": 2 ** 20, "threads": 2, "measured": []},
         "samples": {"numpy:cpu batch": [{"old": 1}], "numpy:cpu sgd": [{"old": 2}]}}
    d.update(changes)
    return d


def _new_profile(measured=True):
    """What a calibration of numpy:cpu sgd returns (the shape calibrate() gives)."""
    candidates = {"numpy:cpu": {"sgd": _terms(launch=9e-5)}} if measured else {}
    groups = {"numpy:cpu": {"sgd": {"created": NEW, "machine": "new run",
                                    "version": library_version("numpy")}}} if measured else {}
    return Profile(candidates, {"threshold_madds": 2 ** 22, "threads": 2, "measured": []},
                   "measured", "new run", NEW, {"numpy": library_version("numpy")},
                   tuple((k, m) for k, modes in candidates.items() for m in modes), {},
                   {"numpy:cpu sgd": [{"new": 1}]}, machine_fingerprint(), groups)


def _fit_auto(n=60):
    X = np.random.default_rng(0).random((n, 4))
    return nb.MLP([4, 3, 1], backend="auto", seed=0).fit(X, X[:, :1], epochs=1)


# -- 2: --calibrate merges, and a run that measured nothing writes nothing --------------

def test_a_calibration_that_measured_nothing_writes_nothing(monkeypatch, capsys):
    path = _write(_old_file())
    with open(path, "rb") as f:
        before = f.read()
    monkeypatch.setattr(cal, "calibrate", lambda **kw: _new_profile(measured=False))
    with pytest.raises(SystemExit) as done:
        main(["bench", "--calibrate", "--backends", "numpy", "--modes", "sgd", "--quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code != 0
    assert err[-1].startswith("nnbackend: error: the calibration measured no candidate")
    assert f"{path} was left as it was" in err[-1]
    with open(path, "rb") as f:
        assert f.read() == before


def test_a_narrowed_calibration_merges_over_the_measured_groups(monkeypatch, capsys):
    path = _write(_old_file())
    monkeypatch.setattr(cal, "calibrate", lambda **kw: _new_profile())
    assert main(["bench", "--calibrate", "--backends", "numpy", "--modes", "sgd"]) == 0
    assert "kept from" in capsys.readouterr().err
    with open(path) as f:
        saved = json.load(f)
    numpy_modes = saved["candidates"]["numpy:cpu"]
    assert set(numpy_modes) == {"batch", "minibatch", "minibatch/torch-graphs", "sgd"}
    assert numpy_modes["sgd"]["launch_s"] == 9e-5  # the new run's
    assert numpy_modes["batch"]["launch_s"] == 2e-5  # kept
    # each group keeps its own run's facts; the header is the latest run's
    groups = saved["groups"]["numpy:cpu"]
    assert groups["sgd"]["created"] == NEW and groups["batch"]["created"] == OLD
    assert groups["batch"]["machine"] == _here_machine()
    assert saved["created"] == NEW and saved["blas"]["threshold_madds"] == 2 ** 22
    assert saved["samples"]["numpy:cpu batch"] == [{"old": 1}]
    assert saved["samples"]["numpy:cpu sgd"] == [{"new": 1}]
    assert saved["fingerprint"] == machine_fingerprint()
    profile = load_profile()
    assert ("numpy:cpu", "batch") in profile.measured and not profile.mismatch


def test_a_measured_mode_replaces_its_executors_entries_and_another_machine_is_not_merged():
    old = Profile.from_dict(_old_file(), "old.json")
    new = _new_profile()
    new = Profile({"numpy:cpu": {"minibatch": _terms()}}, new.blas, "measured", "new run", NEW,
                  new.libraries, (("numpy:cpu", "minibatch"),), fingerprint=new.fingerprint)
    merged, notes = cal.merge_profiles(new, old)
    # the old run's torch-graphs entry of minibatch does not outlive a new minibatch group
    assert set(merged.candidates["numpy:cpu"]) == {"batch", "minibatch", "sgd"}
    assert notes == ["kept from old.json: numpy:cpu batch, numpy:cpu sgd"]
    foreign = Profile.from_dict(_old_file(machine="CPU Elsewhere 9000, 64 cores"), "far.json")
    merged, notes = cal.merge_profiles(new, foreign)
    assert merged is new and "far.json was measured on CPU Elsewhere 9000" in notes[0]


def test_calibrate_records_its_fingerprint_and_each_groups_run(monkeypatch):
    point = {"epoch": 1e-3, "setup": 1e-3, "compile": 0.0, "executor": "reference",
             "rows": 64}

    def measure(backend, mode, net, n, batch, seed=0):
        sizes = cal._NETS[net][0]
        work = cal.Workload(tuple(sizes), n, mode, {"batch": n, "sgd": 1}.get(mode, batch), 1)
        return {**point, "epoch": 1e-3 * n / 100, "workload": work}

    monkeypatch.setattr(cal, "measure_point", measure)
    monkeypatch.setattr(cal, "measure_blas",
                        lambda say, **kw: {"threshold_madds": None, "threads": 1})
    monkeypatch.setattr(cal, "_tiny_fit_seconds", lambda backend, n: 0.0)
    profile = cal.calibrate(keys=["numpy"], modes=("sgd",), quick=True, progress=None)
    assert profile.fingerprint == machine_fingerprint()
    facts = profile.groups["numpy:cpu"]["sgd"]
    assert facts["created"] == profile.created and facts["version"] == library_version("numpy")


def test_a_profile_that_measures_no_group_counts_as_the_default():
    path = _write(_old_file(candidates={}))
    with pytest.warns(ProfileWarning, match=f"no measured profile \\({path} measures no "):
        hist = _fit_auto()
    assert hist.backend_choice["reason"].endswith("(shipped default profile)")
    assert all(not row.get("measured") for row in hist.backend_choice["candidates"])


def test_info_says_a_profile_that_measures_nothing_is_the_default(capsys):
    path = _write(_old_file(candidates={}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileWarning)
        assert main(["info", "--backend", "auto"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"auto     profile: the shipped default ({path} measures no candidate")


# -- 3: a profile from another machine or other libraries --------------------------------

def test_a_profile_from_another_machine_warns_once_and_says_so_in_the_reason(capsys):
    path = _write(_old_file(machine="Intel(R) Xeon(R) Platinum 8480+, 112 cores"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _fit_auto()
        _fit_auto()
        X = np.random.default_rng(0).random((40, 4))
        nb.MLP([4, 1], backend="numpy").fit(X, X[:, :1], epochs=1)
    said = [str(w.message) for w in caught if issubclass(w.category, ProfileWarning)]
    assert len(said) == 1, said
    assert "Intel(R) Xeon(R) Platinum 8480+, 112 cores" in said[0]
    assert f"this is {machine_fingerprint()['cpu']}" in said[0]
    assert "re-run `nnbackend bench --calibrate`" in said[0]
    # still used, and the reason says from where
    assert first.backend_choice["profile"] == path
    assert first.backend_choice["reason"].endswith("(profile from another machine)")
    assert main(["info", "--backend", "auto"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: this profile does not describe this machine" in out


def test_a_profile_from_other_library_versions_warns_and_a_matching_one_does_not():
    _write(_old_file(fingerprint=machine_fingerprint()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileWarning)  # this machine, these libraries
        assert load_profile().mismatch == {}
    _write(_old_file(libraries={"numpy": "0.9.1"}, created="2026-01-02T00:00:00Z"))
    with pytest.warns(ProfileWarning, match=r"numpy 0\.9\.1 \(installed: "):
        hist = _fit_auto()
    assert hist.backend_choice["reason"].endswith("(profile from other library versions)")


def test_a_groups_own_library_version_is_compared():
    # A merged profile: the header's numpy is current, one group ran an older one.
    groups = {"numpy:cpu": {"batch": {"created": OLD, "machine": "", "version": "0.9.1"}}}
    _write(_old_file(groups=groups, fingerprint=machine_fingerprint()))
    with pytest.warns(ProfileWarning, match=r"numpy 0\.9\.1"):
        assert "libraries" in load_profile().mismatch


# -- 4: info with a BLAS threshold of 0 -------------------------------------------------

def test_info_shows_a_blas_threshold_of_zero(capsys):
    _write(_old_file(blas={"threshold_madds": 0, "threads": 2}))
    assert main(["info", "--backend", "auto"]) == 0
    assert "BLAS threads: 2 for every product" in capsys.readouterr().out


# -- 7: --calibrate refuses what it would ignore ------------------------------------------

@pytest.mark.parametrize("flags, named", [
    (["--out", "elsewhere", "--sizes", "1e3", "--ratios"], "--sizes, --ratios, --out"),
    (["--models", "mnist"], "--models"),
    (["--no-peers", "--precision", "highest"], "--precision, --no-peers"),
    (["--target-n", "0"], "--target-n"),
])
def test_calibrate_refuses_the_bench_only_flags(monkeypatch, capsys, tmp_path, flags, named):
    monkeypatch.setattr(cal, "calibrate", lambda **kw: pytest.fail("measured anyway"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["bench", "--calibrate", "--backends", "numpy", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2 and len(err) == 1, err
    assert err[0] == ("nnbackend: error: --calibrate takes only --backends, --modes, --quick "
                      f"and --time-budget; it would ignore {named}")
    assert not (tmp_path / "elsewhere").exists()


def test_calibrate_names_a_backend_that_matches_no_candidate(monkeypatch, capsys):
    monkeypatch.setattr(cal, "measure_blas", lambda say, **kw: pytest.fail("measured anyway"))
    with pytest.raises(SystemExit) as done:
        main(["bench", "--calibrate", "--backends", "numpy,nonesuch", "--modes", "sgd"])
    err = capsys.readouterr().err.strip().splitlines()
    assert done.value.code == 2
    assert err[-1].startswith("nnbackend: error: --backends: no candidate here matches nonesuch")
    assert "numpy:cpu" in err[-1]


# -- 12: explain_backend checks the network as MLP does ----------------------------------

@pytest.mark.parametrize("sizes, kwargs", [
    ([4, -1000, 1], {}), ([4, 0, 1], {}), ([4], {}), (5, {}), ([4, 2.5, 1], {}),
    ([4, 3, 1], {"output_activation": "softmax", "loss": "cross_entropy"}),
    ([4, 3, 2], {"hidden_activation": "swish"}),
])
def test_explain_backend_refuses_the_networks_mlp_refuses(sizes, kwargs):
    with pytest.raises((ValueError, TypeError)) as by_mlp:
        nb.MLP(sizes, **kwargs)
    with pytest.raises(type(by_mlp.value)) as by_explain:
        nb.explain_backend(sizes, n_samples=100_000, mode="batch", epochs=100, **kwargs)
    assert str(by_explain.value) == str(by_mlp.value)


# -- 13: a file the JSON parser chokes on -------------------------------------------------

def test_a_deeply_nested_profile_is_a_corrupt_one_and_numpy_fits_go_on():
    path = profile_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("[" * 100_000)
    X = np.random.default_rng(0).random((40, 4))
    with pytest.warns(ProfileWarning, match=f"{path} is not a usable profile \\(RecursionError"):
        hist = nb.MLP([4, 1], backend="numpy").fit(X, X[:, :1], epochs=1)
    assert len(hist.loss) == 1 and load_profile().is_default


def test_the_warm_ups_count_in_the_calibrations_time_budget(monkeypatch):
    # A warm-up that spends the budget leaves the next candidates unmeasured, said
    # so, where they had each been warmed up whatever the budget.
    warmed = []

    def slow_tiny_fit(backend, n):
        warmed.append(backend.name)
        clock[0] += 10.0
        return 0.0

    clock = [0.0]
    monkeypatch.setattr(cal.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(cal, "measure_blas",
                        lambda say, **kw: {"threshold_madds": None, "threads": 1})
    monkeypatch.setattr(cal, "_tiny_fit_seconds", slow_tiny_fit)
    monkeypatch.setattr(cal, "measure_point", lambda *a, **kw: pytest.fail("no point fits"))
    keys = [key for key, _ in cal.auto_candidates()][:2]
    if len(keys) < 2:
        pytest.skip("needs a second auto candidate here (torch or jax)")
    said = []
    profile = cal.calibrate(budget_s=5, keys=keys, modes=(), progress=said.append)
    first = keys[0].partition(":")[0]
    assert warmed in ([first, first], [first])  # the first one's warm-up only (twice if fresh)
    assert any(line.startswith(keys[1]) and "time budget of 5 s spent before its warm-up"
               in line for line in said)
    assert not profile.candidates
