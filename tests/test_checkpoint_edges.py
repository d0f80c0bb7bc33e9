"""Edges of ``nnbackend.checkpoint`` that a mutation of it moved without
another test noticing (``benchmarks/mutation_survivors.md``)."""

import json
import os

import numpy as np
import pytest

import nnbackend as nb

UNPICKLED = []


def _unpickled():
    UNPICKLED.append("unpickled")


class _Trap:
    """Records being unpickled: a checkpoint must never unpickle anything."""

    def __reduce__(self):
        return (_unpickled, ())


def test_an_unfitted_standardizing_model_keeps_its_setting(tmp_path):
    model = nb.MLP([2, 3, 1], standardize=True)
    model.save(tmp_path / "m.npz")
    assert nb.MLP.load(tmp_path / "m.npz").standardize is True


def test_a_write_error_names_the_system_reason(tmp_path):
    with pytest.raises(ValueError, match=r"cannot write checkpoint .*: No such file or directory$"):
        nb.MLP([2, 3, 1]).save(tmp_path / "missing" / "m.npz")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_read_error_names_the_system_reason(tmp_path):
    path = tmp_path / "m.npz"
    nb.MLP([2, 3, 1]).save(path)
    path.chmod(0)
    with pytest.raises(ValueError, match=r"not a usable nnbackend checkpoint: Permission denied$"):
        nb.MLP.load(path)


def test_a_checkpoint_holding_a_pickle_is_refused_without_unpickling_it(tmp_path):
    good = tmp_path / "good.npz"
    nb.MLP([2, 3, 1]).save(good)
    with np.load(good) as f:
        members = {k: f[k] for k in f.files}
    members["param_0"] = np.array([_Trap()], dtype=object)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **members)
    UNPICKLED.clear()
    with pytest.raises(ValueError, match="not a usable nnbackend checkpoint"):
        nb.MLP.load(bad)
    assert UNPICKLED == []
    assert json.loads(str(members["header"]))["config"]["layer_sizes"] == [2, 3, 1]


def test_metadata_that_is_not_json_is_refused_and_nothing_written(tmp_path):
    model = nb.MLP([2, 3, 1])
    model.metadata = {"mean": np.arange(3)}
    with pytest.raises(ValueError, match="model.metadata must hold JSON values"):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_shuffling_state_no_generator_takes_is_refused_at_load(tmp_path):
    model = nb.MLP([2, 3, 1])
    model.fit(np.random.default_rng(0).random((8, 2)), np.arange(8) % 2, epochs=1)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        members = {k: f[k] for k in f.files}
    header = json.loads(str(members["header"]))
    header["train_state"]["rng"] = {"bit_generator": "PCG64", "state": "tampered"}
    members["header"] = np.asarray(json.dumps(header))
    np.savez(tmp_path / "m.npz", **members)
    with pytest.raises(ValueError, match="not a usable nnbackend checkpoint: its shuffling "
                                         "generator's state is not usable"):
        nb.MLP.load(tmp_path / "m.npz")


def test_a_path_ending_in_a_separator_is_refused_and_the_file_there_kept(tmp_path, capsys):
    # realpath drops the "/": "notes.txt/" would have replaced notes.txt with a
    # checkpoint, where the system refuses such a path ("Not a directory").
    from conftest import cli_refusal

    notes = tmp_path / "notes.txt"
    notes.write_text("keep")
    for path in (f"{notes}/", f"{tmp_path / 'newdir'}/"):
        with pytest.raises(ValueError, match="ends in a separator"):
            nb.MLP([2, 3, 1]).save(path)
        err = cli_refusal(["train", "--epochs", "1", "--quiet", "--save", path], capsys)
        assert "--save" in err and "ends in a separator" in err
    assert notes.read_text() == "keep" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize("path", [None, 3])
def test_a_path_that_is_no_path_is_refused_by_name(path, tmp_path):
    from nnbackend.datafiles import load_data_file

    with pytest.raises(TypeError, match="checkpoint path must be a str, bytes or os.PathLike, "
                                        f"got {type(path).__name__}"):
        nb.MLP([2, 3, 1]).save(path)
    with pytest.raises(TypeError, match="checkpoint path must be a str, bytes"):
        nb.MLP.load(path)
    with pytest.raises(TypeError, match="data file's path must be a str, bytes"):
        load_data_file(path)
    # A bytes path is a path, as open takes it.
    target = os.fsencode(tmp_path / "m.npz")
    nb.MLP([2, 3, 1]).save(target)
    assert nb.MLP.load(target).layer_sizes == [2, 3, 1]


def test_a_model_pickles_and_deep_copies_on_its_backend(backend):
    # Its backend holds a module, which pickles not: pickle.dumps(model) and
    # copy.deepcopy(model) had failed on every backend. The copy is on the same
    # backend and device, and a resumed fit of it takes the same steps.
    import copy
    import pickle

    from conftest import own_array, to_numpy

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(float)
    Xd, yd = own_array(backend, X), own_array(backend, y)
    model = nb.MLP([3, 4, 1], backend=backend.name, device=backend.device, dtype="float64",
                   standardize=True)
    model.fit(Xd, yd, batch_size=8, epochs=2, optimizer="adam")
    twins = pickle.loads(pickle.dumps(model)), copy.deepcopy(model)
    ours = model.fit(Xd, yd, batch_size=8, epochs=1, optimizer="adam", resume=True)
    for twin in twins:
        assert (twin.backend.name, str(twin.backend.device)) == (backend.name,
                                                                   str(backend.device))
        theirs = twin.fit(Xd, yd, batch_size=8, epochs=1, optimizer="adam", resume=True)
        assert theirs.loss == ours.loss
        for a, b in zip(model.flat_params, twin.flat_params):
            np.testing.assert_array_equal(to_numpy(backend, a), to_numpy(backend, b))


def test_loading_a_directory_says_it_is_one(tmp_path):
    # It said "no such checkpoint file", of a path that exists.
    with pytest.raises(ValueError, match="is a directory; name the .npz file in it"):
        nb.MLP.load(tmp_path)
