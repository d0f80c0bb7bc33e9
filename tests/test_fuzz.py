"""Fuzzing the command line and the data-file and checkpoint loaders (hypothesis).

Whatever the arguments or the file's bytes, the command line either runs
(exit status 0, or 1 for a diverged run) or refuses with exactly one line
``nnbackend: error: ...`` and status 2; the loaders return well-formed arrays
or raise ``ValueError`` naming the file. Nothing else may escape.

Bounded: ``max_examples`` per test and small epoch counts, about 30 s in
all on a 2-core machine. ``NNBACKEND_FUZZ_EXAMPLES`` multiplies the
example counts for a longer campaign.
"""

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnbackend as nb
from nnbackend.cli import main
from nnbackend.datasets import load_data_file, load_features_file
from conftest import child_pythonpath

SCALE = float(os.environ.get("NNBACKEND_FUZZ_EXAMPLES", "1"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _settings(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


# -- the command line, in process ---------------------------------------------------------

GARBAGE = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
NUMBERS = st.sampled_from(["0", "1", "2", "-1", "0.5", "1e9", "nan", "inf", "-inf", "1e-300",
                           "3.7", "", "x", "1,2", "1e3", "0x10", " 4"])
VALUES = {
    "--dataset": st.sampled_from(["xor", "and", "moons", "spirals", "synthetic", "mnist", ""]),
    "--n-samples": NUMBERS, "--epochs": NUMBERS, "--lr": NUMBERS, "--batch-size": NUMBERS,
    "--patience": NUMBERS, "--seed": NUMBERS, "--val-split": NUMBERS,
    "--hidden": st.sampled_from(["4", "3,2", "0", "4,x", "", ",", "-2", "99999999999999999999"]),
    "--activation": st.sampled_from(["relu", "tanh", "sigmoid", "identity", "gelu"]),
    "--mode": st.sampled_from(["batch", "minibatch", "sgd", "full"]),
    "--optimizer": st.sampled_from(["sgd", "momentum", "adam", "rmsprop"]),
    "--dtype": st.sampled_from(["float32", "float64", "float16"]),
    "--backend": st.sampled_from(["numpy", "strict", "cupy", "tensorflow", "NUMPY", ""]),
    "--device": st.sampled_from(["cpu", "device1", "no_float64", "cuda:0", "device9", "7"]),
    "--task": st.sampled_from(["binary", "multiclass", "regression", "ranking"]),
    "--target": st.sampled_from(["label", "y", "a", "", "-1", "2", "9"]),
    "--data": st.sampled_from(["good.csv", "bad.csv", "junk.npz", "good.npz", "missing.csv",
                               "notes.txt", ".", "empty.csv", "bare.csv", "X.npy", "ints.csv",
                               "cba.csv"]),
    "--save": st.sampled_from(["out.npz", "no_dir/m.npz", ".", "good.csv"]),
    "--resume": st.sampled_from(["model.npz", "junk.npz", "missing.npz", "good.npz",
                                 "named.npz", "notes.txt"]),
    "--model": st.sampled_from(["model.npz", "junk.npz", "missing.npz", "good.npz", "named.npz",
                                "notes.txt", "X.npy"]),
    "--out": st.sampled_from(["preds.csv", "no_dir/p.csv", ".", "preds.npz", "preds.txt"]),
}
SWITCHES = ["--json", "--quiet", "--version", "--bogus", "-x", "--no-header", "--no-standardize"]


@st.composite
def argvs(draw):
    command = draw(st.sampled_from(["train", "train", "train", "predict", "info", "bogus", "", "--json"]))
    argv = [command] if command else []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind < 7:
            flag = draw(st.sampled_from(sorted(VALUES)))
            argv += [flag, draw(st.one_of(VALUES[flag], GARBAGE) if kind == 0 else VALUES[flag])]
        elif kind < 9:
            argv.append(draw(st.sampled_from(SWITCHES)))
        else:
            argv.append(draw(GARBAGE))
    if command == "train":
        # Keep every run short: later flags win in argparse, so these bound
        # the training whatever came before (and may themselves be fuzzed away
        # by a bad value earlier, which must then be refused).
        argv += ["--epochs", draw(st.sampled_from(["1", "2", "3"])), "--n-samples", "24",
                 "--hidden", "3", "--quiet"]
    return argv


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzzcli")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    labels = np.where(X[:, 0] > 0, "yes", "no")
    with open(d / "good.csv", "w") as f:
        f.write("a,b,label\n")
        for row, label in zip(X, labels):
            f.write(f"{row[0]:.4f},{row[1]:.4f},{label}\n")
    np.savez(d / "good.npz", X=X, y=(X[:, 1] > 0).astype(int))
    (d / "bad.csv").write_text("a,b,label\n1,2,0\n3,oops,1\n")
    (d / "empty.csv").write_text("")
    (d / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (d / "notes.txt").write_text("hello")
    model = nb.MLP([2, 3, 1], loss="bce", seed=0)
    model.fit(X, (X[:, 0] > 0).astype(float), epochs=1)
    model.save(d / "model.npz")
    # Issue 14's files: no header, whole-number targets, reordered columns,
    # a .npy of features, a standardized model with feature names.
    (d / "bare.csv").write_text("".join(f"{a:.3f},{b:.3f},{int(a > 0)}\n" for a, b in X))
    (d / "ints.csv").write_text("a,b,label\n" + "".join(
        f"{a:.3f},{b:.3f},{i * 7}\n" for i, (a, b) in enumerate(X)))
    (d / "cba.csv").write_text("b,label,a\n" + "".join(f"{b:.3f},0,{a:.3f}\n" for a, b in X))
    np.save(d / "X.npy", X)
    named = nb.MLP([2, 3, 1], output_activation="identity", standardize=True, seed=0)
    named.fit(X, X[:, 0] * 100, epochs=1, optimizer="adam")
    named.feature_names_in_ = ["a", "b"]
    named.metadata = {"task": "regression", "target": "label"}
    named.save(d / "named.npz")
    return d


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return status, out.getvalue(), err.getvalue()


def check_outcome(argv, status, stdout, stderr):
    lines = [l for l in stderr.splitlines() if l.startswith("nnbackend: error")]
    assert "Traceback" not in stderr and "Traceback" not in stdout, (argv, stderr)
    if status == 2:
        stripped = [l for l in stderr.strip().splitlines() if not l.startswith(
            ("nnbackend: note:", "nnbackend: warning:", "epoch ", "running "))]
        assert len(stripped) == 1 and stripped[0].startswith("nnbackend: error: "), (argv, stderr)
        assert len(stripped[0]) < 600
    else:
        assert status in (0, 1, None), (argv, status, stderr)
        assert not lines, (argv, stderr)
        if status == 1:
            assert "diverged" in stderr, (argv, stderr)


@_settings(60)
@given(argv=argvs())
def test_cli_never_lets_a_traceback_escape(workdir, argv, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("NNBACKEND_DEBUG", raising=False)
    monkeypatch.delenv("NNBACKEND_BACKEND", raising=False)
    status, stdout, stderr = run_cli(argv)
    check_outcome(argv, status, stdout, stderr)


@_settings(40)
@given(argv=st.lists(GARBAGE, max_size=5))
def test_cli_with_arbitrary_words(workdir, argv, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("NNBACKEND_DEBUG", raising=False)
    status, stdout, stderr = run_cli(argv)
    check_outcome(argv, status, stdout, stderr)


# -- the loaders ------------------------------------------------------------------------------

CELLS = st.one_of(
    st.sampled_from(["0", "1", "-2.5", "1e308", "1e309", "nan", "inf", "-inf", "", " ", "yes",
                     "no", '"1,5"', '"', "1;2", "\t3", "0x1", "١", "NaN", "+1", "1_000"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    GARBAGE,
)


@st.composite
def csv_texts(draw):
    n_cols = draw(st.integers(0, 4))
    header = [draw(st.sampled_from(["a", "b", "label", "y", "", "a"])) for _ in range(n_cols)]
    rows = [",".join(header)]
    for _ in range(draw(st.integers(0, 6))):
        width = n_cols + draw(st.sampled_from([0, 0, 0, 1, -1]))
        rows.append(",".join(draw(CELLS) for _ in range(max(width, 0))))
    sep = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    return sep.join(rows) + draw(st.sampled_from(["", "\n"]))


def check_loaded(path, X, y=None):
    assert isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == np.float64
    assert X.shape[0] > 0 and X.shape[1] > 0 and np.all(np.isfinite(X))
    if y is not None:
        assert y.shape[0] == X.shape[0] and y.ndim in (1, 2)
        assert y.dtype in (np.int64, np.float64) and np.all(np.isfinite(y))


def _load_all(path):
    for target in ("label", "y", "a", None):
        try:
            X, y = load_data_file(path, target=target)
        except ValueError as exc:
            assert os.path.basename(str(path)) in str(exc) or "no such file" in str(exc), str(exc)
        else:
            check_loaded(path, X, y)
    try:
        X = load_features_file(path, drop="label")
    except ValueError as exc:
        assert os.path.basename(str(path)) in str(exc), str(exc)
    else:
        check_loaded(path, X)


@_settings(150)
@given(text=csv_texts(), encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
def test_csv_loader_fuzz(tmp_path, text, encoding):
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode(encoding, errors="replace"))
    _load_all(path)


@_settings(120)
@given(data=st.binary(max_size=400), ext=st.sampled_from([".csv", ".npz", ".CSV", ".txt", ""]))
def test_loaders_on_random_bytes(tmp_path, data, ext):
    path = tmp_path / f"r{ext}"
    path.write_bytes(data)
    _load_all(path)


NPZ_ARRAYS = st.sampled_from([
    np.ones((3, 2)), np.ones(3), np.ones((0, 2)), np.ones((3, 0)), np.array(["a", "b", "a"]),
    np.array([1, 2, 3], dtype=np.uint8), np.array([np.nan, 1, 2]), np.ones((3, 2), dtype=complex),
    np.array([True, False, True]), np.ones((3, 2, 2)), np.array(5.0), np.array([1e300, 1, 2]),
    np.array([b"x", b"y", b"z"]), np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
])


@_settings(80)
@given(arrays=st.dictionaries(st.sampled_from(["X", "y", "label", "other"]), NPZ_ARRAYS, max_size=3),
       pickled=st.booleans())
def test_npz_loader_fuzz(tmp_path, arrays, pickled):
    arrays = dict(arrays)
    if pickled:
        arrays["y"] = np.array([{"a": 1}, None, 3], dtype=object)
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    _load_all(path)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.npz"
    model = nb.MLP([2, 3, 1], seed=0)
    model.fit(np.ones((4, 2)), np.array([0.0, 1.0, 0.0, 1.0]), epochs=1, optimizer="adam")
    model.save(path)
    return path.read_bytes()


@_settings(120)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_checkpoint_loader_fuzz(tmp_path, checkpoint_bytes, edits, cut):
    data = bytearray(checkpoint_bytes)
    for offset, value in edits:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(data))
    try:
        model = nb.MLP.load(path)
    except ValueError as exc:
        assert "m.npz" in str(exc)
    else:
        # A byte change that survives every check (in padding, say) must
        # still give a usable model.
        out = np.asarray(model.predict(np.ones((2, model.layer_sizes[0]))))
        assert out.shape == (2, model.layer_sizes[-1])


# -- a few runs as a user makes them: subprocesses ----------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cli_subprocess_on_random_files(tmp_path, seed):
    rng = np.random.default_rng(seed)
    (tmp_path / "r.csv").write_bytes(rng.integers(0, 256, size=300, dtype=np.uint8).tobytes())
    (tmp_path / "r.npz").write_bytes(b"PK\x03\x04" + rng.integers(0, 256, size=300, dtype=np.uint8).tobytes())
    env = {k: v for k, v in os.environ.items() if k not in ("NNBACKEND_BACKEND", "NNBACKEND_DEBUG")}
    env["PYTHONPATH"] = child_pythonpath(ROOT)
    for args in (["train", "--data", "r.csv", "--target", "label"], ["train", "--data", "r.npz"],
                 ["predict", "--model", "r.npz", "--data", "r.csv"]):
        proc = subprocess.run([sys.executable, "-m", "nnbackend.cli", *args], capture_output=True,
                              text=True, cwd=tmp_path, env=env, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nnbackend: error: "), (args, proc.stderr)
