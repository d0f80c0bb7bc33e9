"""Edges found by the review of the dask and strict backends, the calibration
and the plots (benchmarks/results/dask-strict-calibrate-review-2026-12-07/):

- a Dask array whose chunks are torch, JAX or array-api-strict arrays is
  refused by name, where it failed deep inside the chunks' library;
- array-api-strict set to a standard before 2024.12 (its ``api_version``
  flag) is refused by name, where a fit failed inside a step;
- ``nnbackend bench --calibrate`` leaves a profile it cannot read as it
  was, and says so before it measures, where it replaced it (losing the
  groups a narrowed run keeps);
- the loss plot of a fit that diverged in its first epoch (no epoch
  recorded) is written, where it raised ``min() arg is an empty sequence``,
  and plotting closes only its own figures.
"""

import json
import os
import warnings
from unittest import mock

import numpy as np
import pytest

import nnbackend as nb
from nnbackend import calibrate as cal
from nnbackend.autoselect import profile_path
from nnbackend.backends import BackendUnavailableError
from nnbackend.cli import main
from test_auto import _own_cache  # noqa: F401 - autouse: a cache of each test's own
from test_auto_profile_edges import _new_profile, _old_file, _write


def _data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.float32)


# -- dask: chunks of another library ---------------------------------------------------

def _foreign_chunks(name):
    da = pytest.importorskip("dask.array", reason="needs dask (the 'dask' extra)")
    X, y = _data()
    if name == "torch":
        torch = pytest.importorskip("torch", reason="needs torch")
        to, m2, m1 = torch.asarray, torch.zeros((0, 0)), torch.zeros((0,))
    else:
        xp = pytest.importorskip("array_api_strict", reason="needs array-api-strict")
        to = xp.asarray
        m2, m1 = xp.zeros((0, 0), dtype=xp.float32), xp.zeros((0,), dtype=xp.float32)
    Xd = da.from_array(X, chunks=(20, -1)).map_blocks(to, meta=m2)
    yd = da.from_array(y, chunks=20).map_blocks(to, meta=m1)
    return Xd, yd


@pytest.mark.parametrize("library", ["torch", "strict"])
@pytest.mark.parametrize("backend", [None, "dask"])
def test_a_dask_array_of_another_librarys_chunks_is_refused_by_name(library, backend):
    # It had failed inside the chunks' library: torch's "asarray(): argument
    # 'dtype' must be torch.dtype, not type", array-api-strict's "dtype must
    # be one of the supported dtypes", NumPy's "dtype argument must be a NumPy dtype".
    Xd, yd = _foreign_chunks(library)
    try:
        model = nb.MLP([3, 4, 1], loss="bce", backend=backend, seed=0)
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    with pytest.raises(TypeError, match=rf"X is a Dask array of {library} chunks .*"
                                        r"takes Dask arrays of NumPy or CuPy chunks"):
        model.fit(Xd, yd, epochs=1)


# -- strict: the api_version flag ------------------------------------------------------

def test_strict_set_to_an_earlier_standard_is_refused_by_name():
    xp = pytest.importorskip("array_api_strict", reason="needs array-api-strict")
    if not hasattr(xp, "set_array_api_strict_flags"):
        pytest.skip("this array-api-strict has no flags")
    X, y = _data()
    model = nb.MLP([3, 4, 1], loss="bce", backend="strict", seed=0)  # before the flag
    try:
        xp.set_array_api_strict_flags(api_version="2023.12")
        # It had failed inside a step: "'float' object has no attribute 'device'"
        # (a Python scalar in maximum(), which 2023.12 does not allow).
        with pytest.raises(ValueError, match=r"set to the 2023.12 standard .* need 2024.12"):
            model.fit(X, y, epochs=1)
        with pytest.raises(ValueError, match=r"api_version"):
            nb.get_backend("strict")
    finally:
        xp.reset_array_api_strict_flags()
    assert model.fit(X, y, epochs=1).epochs == 1  # the default flags train again


# -- calibrate: a profile that cannot be read ------------------------------------------

def test_calibrate_leaves_a_profile_it_cannot_read_as_it_was(monkeypatch, capsys):
    path = _write(_old_file())
    with open(path, "rb") as f:
        before = f.read()
    measured = []
    monkeypatch.setattr(cal, "calibrate", lambda **kw: measured.append(1) or _new_profile())

    def unreadable(p):
        raise PermissionError(13, "Permission denied", p)

    monkeypatch.setattr("nnbackend.cli_auto.read_profile", unreadable)
    with pytest.raises(SystemExit) as done:
        main(["bench", "--calibrate", "--backends", "numpy", "--modes", "sgd"])
    err = capsys.readouterr().err
    assert done.value.code != 0
    assert f"cannot read the profile {path}" in err and "PermissionError" in err
    assert "left as it was" in err and "replaced" not in err
    assert not measured  # refused before the fits, not after
    with open(path, "rb") as f:
        assert f.read() == before  # its numpy:cpu batch and minibatch groups kept


def test_calibrate_refuses_a_cache_directory_that_is_a_file(monkeypatch, capsys, tmp_path):
    # It had said "is not a usable profile ... replaced", measured, then
    # failed with "[Errno 17] File exists".
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("mine")
    monkeypatch.setenv("NNBACKEND_CACHE_DIR", str(blocker))
    monkeypatch.setattr(cal, "calibrate", lambda **kw: pytest.fail("measured anyway"))
    with pytest.raises(SystemExit) as done:
        main(["bench", "--calibrate", "--backends", "numpy", "--modes", "sgd"])
    err = capsys.readouterr().err
    assert done.value.code != 0
    assert f"cannot read the profile {profile_path()}" in err and "NotADirectoryError" in err
    assert blocker.read_text() == "mine"


def test_a_corrupt_profile_is_still_replaced_once_said(monkeypatch, capsys):
    path = _write(_old_file())
    with open(path, "w") as f:
        f.write("{not json")
    monkeypatch.setattr(cal, "calibrate", lambda **kw: _new_profile())
    assert main(["bench", "--calibrate", "--backends", "numpy", "--modes", "sgd"]) == 0
    err = capsys.readouterr().err
    assert err.count("is not a usable profile") == 1 and "replaced" in err
    with open(path) as f:
        assert set(json.load(f)["candidates"]["numpy:cpu"]) == {"sgd"}


# -- plot: no epoch recorded; the caller's figures -------------------------------------

def _plt():
    from nnbackend.plot import require_matplotlib

    try:
        return require_matplotlib()
    except RuntimeError as exc:
        pytest.skip(str(exc))


def test_the_plot_of_a_fit_that_diverged_in_its_first_epoch_is_written(tmp_path):
    _plt()
    from nnbackend.plot import plot_history

    X, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hist = nb.MLP([3, 4, 1], loss="mse", output_activation="identity", seed=0).fit(
            X, X[:, 0], mode="sgd", epochs=3, lr=1e10)
    assert hist.diverged and hist.loss == []
    path = tmp_path / "loss.png"
    plot_history(hist, path)  # had raised: min() arg is an empty sequence
    assert path.stat().st_size > 0
    nan_first = type(hist)(**{**vars(hist), "loss": [float("nan"), 1.0, 0.5]})
    plot_history(nan_first, tmp_path / "nan.png")
    assert os.path.getsize(tmp_path / "nan.png") > 0


def test_plotting_leaves_the_callers_pyplot_figures_and_backend_alone(tmp_path):
    # Before: plot_format closed every pyplot figure (plt.close("all")), and
    # plotting switched the process to the Agg backend (a notebook's inline
    # figures stopped showing).
    _plt()
    import matplotlib
    import matplotlib.pyplot as plt
    from nnbackend.plot import plot_format, plot_history

    X, y = _data()
    hist = nb.MLP([3, 4, 1], loss="bce", seed=0).fit(X, y, epochs=2)
    backend = matplotlib.get_backend()
    mine = plt.figure()
    try:
        with mock.patch.object(matplotlib, "use", side_effect=AssertionError("switched")):
            assert plot_format(tmp_path / "a.png") == "png"
            plot_history(hist, tmp_path / "a.png")
        assert plt.fignum_exists(mine.number)
        assert plt.get_fignums() == [mine.number]  # and nnbackend's are not pyplot's
        assert matplotlib.get_backend() == backend
        assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        plt.close(mine)


def test_a_profile_and_predictions_reach_the_disk_before_they_replace_the_old_file(
        tmp_path, monkeypatch):
    # Before: renamed over the old file unsynced, so a crash could leave it empty.
    from nnbackend.cli_data import _write

    calls, fsync, replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), replace(a, b))[1])
    _new_profile().save(str(tmp_path / "profile.json"))
    assert calls == ["fsync", "replace"]
    calls.clear()
    _write(str(tmp_path / "out.csv"), lambda f: f.write("y\n1\n"), "w")
    assert calls == ["fsync", "replace"]
    assert (tmp_path / "out.csv").read_text() == "y\n1\n"


@pytest.mark.parametrize("field", ["first_use", "threshold_madds", "measured"])
def test_a_profile_with_an_infinite_figure_is_refused(field):
    # Before: JSON's Infinity passed for a measurement in these fields.
    from nnbackend.autoselect import Profile

    d = _new_profile().to_dict()
    if field == "first_use":
        d["first_use"] = {"numpy:cpu": float("inf")}
    elif field == "threshold_madds":
        d["blas"]["threshold_madds"] = float("inf")
    else:
        d["blas"]["measured"] = [[1024, float("inf"), 0.1]]
    with pytest.raises(ValueError, match="finite"):
        Profile.from_dict(json.loads(json.dumps(d)), "measured")


def test_plot_history_takes_a_bytes_path_as_open_does(tmp_path):
    # Before: TypeError "a bytes-like object is required, not 'str'".
    _plt()
    from nnbackend.plot import plot_history

    X, y = _data()
    hist = nb.MLP([3, 4, 1], loss="bce", seed=0).fit(X, y, epochs=2)
    plot_history(hist, os.fsencode(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TypeError, match="the plot's path must be a str, bytes or os.PathLike"):
        plot_history(hist, None)


# -- the time budget covers the BLAS timings ---------------------------------------------


def test_the_blas_timings_stop_at_the_calibrations_deadline(monkeypatch):
    # Before: the BLAS products were all timed whatever --time-budget said (20 s
    # of a 5 s budget on a loaded machine).
    import contextlib

    monkeypatch.setattr(cal.blas, "available", lambda: True)
    monkeypatch.setattr(cal.blas, "current_threads", lambda: 2)
    monkeypatch.setattr(cal.blas, "limit", lambda n: contextlib.nullcontext())
    said = []
    section = cal.measure_blas(said.append, deadline=cal.time.perf_counter() - 1)
    assert section == {"threads": 2, "measured": [],
                       "note": "time budget spent after 0 of 7 products"}
    assert said == ["BLAS: time budget spent after 0 of 7 products: no threshold measured"]
    seen = {}
    monkeypatch.setattr(cal, "measure_blas", lambda say, **kw: seen.update(kw) or section)
    monkeypatch.setattr(cal, "_tiny_fit_seconds", lambda backend, n: 0.0)
    monkeypatch.setattr(cal, "measure_point", lambda *a, **kw: pytest.fail("budget spent"))
    before = cal.time.perf_counter()
    profile = cal.calibrate(budget_s=0.0, keys=["numpy"], modes=("sgd",), progress=None)
    assert before <= seen["deadline"] <= cal.time.perf_counter() and not profile.measured


def test_a_blas_section_cut_short_keeps_the_last_runs_threshold():
    from nnbackend.autoselect import Profile, default_profile

    old = Profile.from_dict(_old_file(), "old.json")
    new = _new_profile()
    new.blas.clear()
    new.blas.update({"threads": 2, "measured": [], "note": "time budget spent after 0 of 7 "
                                                           "products"})
    merged, notes = cal.merge_profiles(new, old)
    assert merged.blas == old.blas and merged.blas["threshold_madds"] == 2 ** 20
    assert notes[-1] == "kept from old.json: its BLAS section (this run's was cut short)"
    alone, notes = cal.merge_profiles(new, None)  # no last run: the default's threshold
    assert "threshold_madds" not in alone.blas and notes == []
    assert alone.over(default_profile()).blas["threshold_madds"] == \
        default_profile().blas["threshold_madds"]
    whole, notes = cal.merge_profiles(_new_profile(), old)  # a whole section replaces the old
    assert whole.blas["threshold_madds"] == 2 ** 22 and not any("BLAS" in n for n in notes)
