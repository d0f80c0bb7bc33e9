"""Class labels in the Python API (issue 14): text labels in ``fit``, kept as
``classes_`` (sorted, as scikit-learn), saved in checkpoints, and
``predict_labels`` / ``predict_proba`` beside ``predict``, which stays the
network's output."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.checkpoint import FORMAT_VERSION
from nnbackend.data import is_host

NAMES = np.array(["cat", "dog", "emu"])


def _binary():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    return X, np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")


def _three():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 2))
    ids = np.digitize(X[:, 0], [-0.4, 0.4])
    return X, ids, NAMES[ids]


def _softmax(**kw):
    return nb.MLP([2, 8, 3], hidden_activation="tanh", output_activation="softmax",
                  loss="cross_entropy", seed=3, **kw)


def test_text_labels_train_exactly_as_their_class_ids(backend):
    # Text labels are encoded to ids in classes_ order: the fit is the one on
    # the ids, bit for bit, and predict is unchanged.
    X, ids, names = _three()
    by_name = _softmax(backend=backend.name, device=backend.device)
    by_id = _softmax(backend=backend.name, device=backend.device)
    h1 = by_name.fit(X, list(names), epochs=5, lr=0.3, batch_size=16)
    h2 = by_id.fit(X, ids, epochs=5, lr=0.3, batch_size=16)
    assert h1.loss == h2.loss and h1.accuracy == h2.accuracy
    assert by_name.classes_.tolist() == ["cat", "dog", "emu"] and by_id.classes_ is None
    out1, out2 = (backend.to_host(m.predict(X)) for m in (by_name, by_id))
    np.testing.assert_array_equal(out1, out2)
    labels = by_name.predict_labels(X)
    assert isinstance(labels, np.ndarray) and labels.shape == (90,)
    np.testing.assert_array_equal(labels, NAMES[np.argmax(out1, axis=1)])
    np.testing.assert_array_equal(by_id.predict_labels(X), np.argmax(out2, axis=1))
    proba = backend.to_host(by_name.predict_proba(X))
    np.testing.assert_array_equal(proba, out1)


def test_binary_text_labels_on_one_sigmoid_unit():
    X, labels = _binary()
    for loss in ("bce", "mse"):  # the seed's sigmoid/mse head takes them too
        model = nb.MLP([2, 4, 1], loss=loss, seed=0)
        hist = model.fit(X, labels, epochs=60, lr=1.0, mode="batch")
        assert model.classes_.tolist() == ["no", "yes"]
        assert hist.accuracy[-1] > 0.9
        p = model.predict(X)[:, 0]
        proba = model.predict_proba(X)
        assert proba.shape == (60, 2)
        np.testing.assert_allclose(proba[:, 1], p)
        np.testing.assert_allclose(proba[:, 0], 1 - p)
        np.testing.assert_array_equal(model.predict_labels(X), np.where(p > 0.5, "yes", "no"))
        assert (model.predict_labels(X) == labels).mean() > 0.9
        assert model.evaluate(X, labels)["accuracy"] == pytest.approx(
            (model.predict_labels(X) == labels).mean())


def test_integer_labels_are_unchanged_bit_for_bit():
    # The numeric path is today's: same history as the ids given as floats,
    # no classes_, predict_labels gives the ids.
    X, ids, _ = _three()
    a, b = _softmax(), _softmax()
    assert a.fit(X, ids, epochs=3).loss == b.fit(X, ids.astype(np.float64), epochs=3).loss
    assert a.classes_ is None
    np.testing.assert_array_equal(a.predict_labels(X), np.argmax(a.predict(X), axis=1))


def test_other_text_forms_are_labels_too():
    X, ids, names = _three()
    forms = [names.astype(object), names.astype("S3"), names.reshape(-1, 1), tuple(names)]
    reference = _softmax()
    expected = reference.fit(X, names, epochs=2).loss
    for y in forms:
        model = _softmax()
        assert model.fit(X, y, epochs=2).loss == expected
        assert model.classes_.tolist() == ["cat", "dog", "emu"]


def test_validation_evaluate_and_later_fits_use_the_learned_classes():
    X, ids, names = _three()
    model = _softmax()
    hist = model.fit(X[:60], names[:60], validation_data=(X[60:], names[60:]), epochs=3)
    assert len(hist.val_loss) == 3
    # A later fit on fewer of the classes keeps the ids (no shift).
    sub = names[60:][names[60:] != "cat"]
    model.fit(X[60:][names[60:] != "cat"], sub, epochs=1, batch_size=8)
    assert model.classes_.tolist() == ["cat", "dog", "emu"]
    assert model.evaluate(X, names) == model.evaluate(X, ids)
    with pytest.raises(ValueError, match=r"labels \['gnu'\] are not among the classes"):
        model.fit(X[:2], ["cat", "gnu"], epochs=1)


def test_classes_set_by_hand_define_the_ids():
    X, ids, names = _three()
    model = _softmax()
    model.classes_ = ["emu", "dog", "cat"]  # any order: it defines the ids
    two = names != "cat"  # two of the three classes: fine, the ids stay
    by_hand = model.fit(X[two], names[two], epochs=2).loss
    assert by_hand == _softmax().fit(X[two], 2 - ids[two], epochs=2).loss  # emu 0, dog 1
    assert model.classes_.tolist() == ["emu", "dog", "cat"]
    np.testing.assert_array_equal(model.predict_labels(X),
                                  np.array(["emu", "dog", "cat"])[np.argmax(model.predict(X), 1)])


def test_numeric_classes_name_the_labels_that_fit_and_evaluate_take(backend):
    # classes_ [1, 2, 3] (as `nnbackend train` keeps wine-style labels):
    # predict_labels answers in them, so fit and evaluate take them, not ids.
    X, ids, _ = _three()
    labels = np.array([1, 2, 3])[ids]
    model = _softmax(backend=backend.name, device=backend.device)
    model.classes_ = [1, 2, 3]
    by_id = _softmax(backend=backend.name, device=backend.device)
    assert model.fit(X, labels, epochs=3).loss == by_id.fit(X, ids, epochs=3).loss
    two = labels != 3  # fewer classes: the ids stay
    assert model.evaluate(X[two], labels[two]) == by_id.evaluate(X[two], ids[two])
    with pytest.raises(ValueError, match=r"labels \[0\] are not among the classes \[1, 2, 3\]"):
        model.evaluate(X, ids)
    on_backend = backend.asarray(labels)
    if not is_host(on_backend):  # labels on a device would need reading back to encode
        with pytest.raises(ValueError, match=r"model.classes_ \[1, 2, 3\] names the classes"):
            model.fit(backend.asarray(X), on_backend, epochs=1)
    else:  # NumPy's, Dask's: encoded on the host
        assert model.evaluate(X, on_backend) == by_id.evaluate(X, ids)


def test_numeric_classes_that_are_the_ids_leave_y_as_it_is():
    # classes_ [0, 1] (0/1 labels): soft targets and one-hot rows still go in.
    X, labels = _binary()
    soft = np.where(labels == "yes", 0.9, 0.1)
    model = nb.MLP([2, 4, 1], loss="bce", seed=0)
    model.classes_ = [0, 1]
    assert model.fit(X, soft, epochs=2).loss == nb.MLP([2, 4, 1], loss="bce", seed=0).fit(
        X, soft, epochs=2).loss
    X3, ids, _ = _three()
    multi = _softmax()
    multi.classes_ = [10, 20, 30]
    assert multi.fit(X3, np.eye(3)[ids], epochs=2).loss == _softmax().fit(X3, ids,
                                                                        epochs=2).loss


def test_text_labels_the_head_cannot_take_are_refused_by_name():
    X, labels = _binary()
    _, _, names = _three()
    cases = [
        (nb.MLP([2, 1], output_activation="identity"), labels,
         r"text class labels need a classifier head: a softmax output with one unit per class, "
         r"or one sigmoid unit for two classes; this model's output is 'identity' with 1 unit"),
        (nb.MLP([2, 3]), names[:60],
         r"this model's output is 'sigmoid' with 3 unit\(s\)"),
        (nb.MLP([2, 1]), names[:60],
         r"y holds 3 classes \['cat', 'dog', 'emu'\], but the model's output tells 2 apart"),
        (nb.MLP([2, 4], output_activation="softmax", loss="cross_entropy"), names[:60],
         r"y holds 3 classes .*tells 4 apart: build it with 3 softmax outputs .*or set "
         r"model.classes_"),
        (nb.MLP([2, 1]), ["yes"] * 60, r"y holds a single class \('yes'\)"),
    ]
    for model, y, message in cases:
        with pytest.raises(ValueError, match=message):
            model.fit(X, y, epochs=1)
        assert model.classes_ is None
    with pytest.raises(TypeError, match=r"y mixes text with \['int'\] values"):
        nb.MLP([2, 1]).fit(X[:2], np.array(["a", 1], dtype=object))
    with pytest.raises(ValueError, match="text class labels must be 1-D"):
        nb.MLP([2, 2], output_activation="softmax", loss="cross_entropy").fit(
            X[:2], [["a", "b"], ["b", "a"]])
    with pytest.raises(ValueError, match="the model has no classes_ yet"):
        nb.MLP([2, 1]).evaluate(X, labels)
    with pytest.raises(ValueError, match=r"classes_ must list 2 distinct labels"):
        nb.MLP([2, 1]).classes_ = ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"predict_proba and predict_labels need a classifier"):
        nb.MLP([2, 1], output_activation="identity").predict_labels(X)


def test_multilabel_sigmoid_predicts_indicators():
    X, _ = _binary()
    model = nb.MLP([2, 3])
    out = model.predict(X)
    np.testing.assert_array_equal(model.predict_proba(X), out)
    np.testing.assert_array_equal(model.predict_labels(X), (out > 0.5).astype(int))


def test_classes_survive_save_and_load(tmp_path):
    X, ids, names = _three()
    model = _softmax()
    model.fit(X, names, epochs=2)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert int(f["format_version"]) == FORMAT_VERSION == 2
        assert json.loads(str(f["header"]))["classes"] == ["cat", "dog", "emu"]
    loaded = nb.MLP.load(tmp_path / "m.npz")
    assert loaded.classes_.tolist() == ["cat", "dog", "emu"]
    np.testing.assert_array_equal(loaded.predict_labels(X), model.predict_labels(X))
    # A model without classes is still written as version 1, as before.
    plain = _softmax()
    plain.fit(X, ids, epochs=1)
    plain.save(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as f:
        assert int(f["format_version"]) == 1
    assert nb.MLP.load(tmp_path / "p.npz").classes_ is None


def _rewrite_header(path, change):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays["header"]))
    change(header)
    arrays["header"] = np.asarray(json.dumps(header))
    np.savez(path, **arrays)


def test_old_checkpoints_get_classes_from_the_command_lines_metadata(tmp_path):
    # A file written before the "classes" key: the command line kept the
    # labels in its metadata; they become classes_.
    X, ids, names = _three()
    model = _softmax()
    model.fit(X, names, epochs=1)
    model.metadata = {"task": "multiclass", "classes": ["cat", "dog", "emu"]}
    model.save(tmp_path / "m.npz")
    _rewrite_header(tmp_path / "m.npz", lambda h: h.pop("classes"))
    assert nb.MLP.load(tmp_path / "m.npz").classes_.tolist() == ["cat", "dog", "emu"]
    # Metadata that does not fit the head is free-form, not classes.
    _rewrite_header(tmp_path / "m.npz", lambda h: h["metadata"].update(classes=["a"]))
    assert nb.MLP.load(tmp_path / "m.npz").classes_ is None


def test_damaged_classes_are_refused(tmp_path):
    X, ids, names = _three()
    model = _softmax()
    model.fit(X, names, epochs=1)
    model.save(tmp_path / "m.npz")
    _rewrite_header(tmp_path / "m.npz", lambda h: h.update(classes=["cat", "cat", "dog"]))
    with pytest.raises(ValueError, match=r"not a usable nnbackend checkpoint: classes_ must list "
                                         r"3 distinct labels"):
        nb.MLP.load(tmp_path / "m.npz")


def test_cli_keeps_text_labels_on_the_model_and_resume_keeps_their_ids(tmp_path):
    # Trained on cat/dog/emu; resumed on data holding dog/emu/gnu: the same
    # number of classes, one unknown. Before, gnu silently took emu's id.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(90, 2))

    def write(path, names):
        labels = names[np.digitize(X[:, 0], [-0.4, 0.4])]
        with open(path, "w") as f:
            f.write("a,b,animal\n")
            f.writelines(f"{r[0]:.6f},{r[1]:.6f},{l}\n" for r, l in zip(X, labels))

    write(tmp_path / "train.csv", NAMES)
    write(tmp_path / "other.csv", np.array(["dog", "emu", "gnu"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNBACKEND_")}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "nnbackend.cli", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=120)

    proc = cli("train", "--data", tmp_path / "train.csv", "--target", "animal", "--epochs", "5",
               "--quiet", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    model = nb.MLP.load(tmp_path / "m.npz")
    assert model.classes_.tolist() == ["cat", "dog", "emu"]
    proc = cli("train", "--data", tmp_path / "other.csv", "--target", "animal", "--resume",
               tmp_path / "m.npz", "--quiet")
    assert proc.returncode == 2
    assert "labels ['gnu'] are not among the classes ['cat', 'dog', 'emu']" in proc.stderr
    # predict's labels are the model's: the same as predict_labels.
    np.savetxt(tmp_path / "new.csv", X[:5], delimiter=",", header="a,b", comments="", fmt="%.6f")
    proc = cli("predict", "--model", tmp_path / "m.npz", "--data", tmp_path / "new.csv")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "prediction,p_cat,p_dog,p_emu"
    scaled = X[:5]  # the model standardizes its inputs itself
    assert [l.split(",")[0] for l in lines[1:]] == model.predict_labels(scaled).tolist()


def test_checkpoint_with_classes_is_a_plain_npz(tmp_path):
    X, _, names = _three()
    model = _softmax()
    model.fit(X, names, epochs=1)
    model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        assert all(n.endswith(".npy") for n in z.namelist())
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert f["header"].dtype.kind == "U"


def test_backend_class_ids_are_checked_in_their_own_dtype():
    torch = pytest.importorskip("torch", reason="a float64 torch tensor of ids")
    from nnbackend.data import as_targets

    backend = nb.get_backend("torch")
    ids = torch.tensor([0.0, 1.00000001, 1.0], dtype=torch.float64)  # 1 in float32
    with pytest.raises(ValueError, match="whole numbers"):
        as_targets(backend, ids, "cross_entropy", 2, 3, backend.dtype("float32"))


@pytest.mark.parametrize("shape", [(-1,), (-1, 1)])
def test_cli_numeric_labels_train_predict_and_evaluate_in_python_as_labels(tmp_path, shape,
                                                                          monkeypatch):
    # Labels 1, 2, 3 (a row or a column): the saved model's classes_, which
    # evaluate and a later fit in Python take as labels.
    from nnbackend.cli import main

    monkeypatch.delenv("NNBACKEND_BACKEND", raising=False)

    X, ids, _ = _three()
    labels = np.array([1, 2, 3])[ids]
    np.savez(tmp_path / "wine.npz", X=X, y=labels.reshape(shape))
    assert main(["train", "--data", str(tmp_path / "wine.npz"), "--epochs", "40", "--quiet",
                 "--save", str(tmp_path / "m.npz")]) in (0, None)
    model = nb.MLP.load(tmp_path / "m.npz")
    assert model.classes_.tolist() == [1, 2, 3]
    two = labels != 3
    predicted = model.predict_labels(X[two])
    assert model.evaluate(X[two], labels[two])["accuracy"] == np.mean(predicted == labels[two])


def test_cli_predict_gives_a_bce_sigmoid_without_classes_as_two_classes(tmp_path):
    # As evaluate scores it: ids 0 and 1 and their probabilities, not a bare p.
    from nnbackend.cli import main

    X, labels = _binary()
    model = nb.MLP([2, 4, 1], loss="bce", seed=0)
    model.fit(X, (labels == "yes").astype(float), epochs=20, lr=0.5)
    model.save(tmp_path / "m.npz")
    np.savez(tmp_path / "X.npz", X=X[:4])
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--data",
                 str(tmp_path / "X.npz"), "--out", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "prediction,p_0,p_1"
    p = np.asarray(model.predict(X[:4])).reshape(-1)
    assert [int(line.split(",")[0]) for line in lines[1:]] == (p > 0.5).astype(int).tolist()
