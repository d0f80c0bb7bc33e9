"""CSV dialects (issue 28, item 8): comma, semicolon, tab and pipe
delimiters and quoted fields, detected with csv.Sniffer; where detection
fails, errors name the delimiter assumed and ``--delimiter``."""

import json
import re

import numpy as np
import pytest

from nnbackend.cli import main
from nnbackend.datafiles import (
    data_file_columns,
    load_data_file,
    load_features_file,
    parse_delimiter,
    read_data_file,
)
from test_cli import run

X = [[1.5, -2.0], [0.25, 3.0], [-1.0, 0.5], [2.0, 2.0]]
LABELS = ["cat", "dog", "cat", "bird"]


def _write(tmp_path, sep, quote=False, name="d.csv"):
    q = (lambda v: f'"{v}"') if quote else str
    lines = [sep.join(q(c) for c in ("a", "b", "label"))]
    lines += [sep.join(q(c) for c in (*row, label)) for row, label in zip(X, LABELS)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("sep, quote", [(",", False), (";", False), ("\t", False), ("|", False),
                                        (",", True), (";", True), ("\t", True)],
                         ids=["comma", "semicolon", "tab", "pipe", "quoted-comma",
                              "quoted-semicolon", "quoted-tab"])
def test_every_dialect_reads_the_same_data(tmp_path, sep, quote):
    path = _write(tmp_path, sep, quote)
    X2, y, classes, names = read_data_file(path, target="label")
    np.testing.assert_array_equal(X2, X)
    assert classes == ["bird", "cat", "dog"] and list(y) == [1, 2, 1, 0]
    assert names == ["a", "b"]
    np.testing.assert_array_equal(load_features_file(path, drop="label"), X)
    assert data_file_columns(path) == ["a", "b", "label"]
    # Named, the delimiter gives the same.
    np.testing.assert_array_equal(load_data_file(path, target="label", delimiter=sep)[0], X)


def test_quoted_fields_keep_their_delimiters_and_quotes(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('x,"y, in cm",label\n'
                    '1,"2.5","Smith, J"\n'
                    '3, "4.5","say ""hi"""\n'
                    '5,6,"two\nlines"\n')
    X2, y, classes, names = read_data_file(path, target="label")
    np.testing.assert_array_equal(X2, [[1, 2.5], [3, 4.5], [5, 6]])
    assert names == ["x", "y, in cm"]
    assert classes == ["Smith, J", 'say "hi"', "two\nlines"] and list(y) == [0, 1, 2]


def test_a_semicolon_file_with_text_holding_commas(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("x;y;note\n1.5;2;fine, thanks\n2.5;3;well, ok\n3.5;1;fine, thanks\n")
    X2, y, classes = load_data_file(path, target="note", return_classes=True)
    np.testing.assert_array_equal(X2, [[1.5, 2], [2.5, 3], [3.5, 1]])
    assert list(y) == [0, 1, 0]
    assert classes == ["fine, thanks", "well, ok"]


def test_where_sniffing_fails_the_error_names_the_assumed_delimiter_and_the_flag(tmp_path):
    # Spaces are not among the delimiters sniffed: the Sniffer cannot tell.
    path = tmp_path / "spaces.csv"
    path.write_text("a b label\n1 2 cat\n3 4 dog\n")
    with pytest.raises(ValueError) as info:
        load_data_file(path, target="label")
    message = str(info.value)
    assert "has no column 'label'; its columns are ['a b label']" in message
    assert "(delimiter: comma (','), assumed: none could be detected" in message
    assert "--delimiter" in message and "delimiter=" in message
    X2, _ = load_data_file(path, target="label", delimiter=" ")
    np.testing.assert_array_equal(X2, [[1, 2], [3, 4]])
    X2, _ = load_data_file(path, target="label", delimiter="space")
    np.testing.assert_array_equal(X2, [[1, 2], [3, 4]])


def test_a_single_column_is_read_as_one_column(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("x\n1\n2.5\n")
    np.testing.assert_array_equal(load_features_file(path), [[1], [2.5]])
    with pytest.raises(ValueError, match=r"no feature columns besides 'x' \(delimiter: comma "
                                         r"\(','\), assumed"):
        load_data_file(path, target="x")


def test_a_ragged_row_is_named_with_the_delimiter_of_the_header(tmp_path):
    # A row of another width defeats the Sniffer; the header line still tells.
    path = tmp_path / "r.csv"
    path.write_text("a;b;label\n1;2;cat\n3;4\n")
    with pytest.raises(ValueError, match=r"line 3 has 2 cells but the header has 3 \(delimiter: "
                                         r"semicolon \(';'\), as detected"):
        load_data_file(path, target="label")


def test_a_wrong_delimiter_given_is_named(tmp_path):
    path = _write(tmp_path, ";")
    with pytest.raises(ValueError, match=r"no column 'label'; its columns are \['a;b;label'\] "
                                         r"\(delimiter: comma \(','\), as given\)"):
        load_data_file(path, target="label", delimiter=",")


def test_a_decimal_comma_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "de.csv"
    path.write_text("a;b;label\n1,5;2;cat\n2,0;1;dog\n")
    with pytest.raises(ValueError, match=r"line 2, column 'a': '1,5' is not a finite number; "
                                         r"numbers take a decimal point \(1\.5, not 1,5\) "
                                         r"\(delimiter: semicolon"):
        load_data_file(path, target="label")


def test_a_long_file_is_sniffed_from_its_start(tmp_path):
    rows = [f"{i}.5;{i % 7};{'ab'[i % 2]}" for i in range(3000)]
    path = tmp_path / "long.csv"
    path.write_text("a;b;label\n" + "\n".join(rows) + "\n")
    assert path.stat().st_size > 16384
    X2, y = load_data_file(path, target="label")
    assert X2.shape == (3000, 2) and X2[-1, 0] == 2999.5 and list(y[:3]) == [0, 1, 0]


@pytest.mark.parametrize("text, expected", [(",", ","), (";", ";"), ("\t", "\t"), ("tab", "\t"),
                                            ("\\t", "\t"), ("TAB", "\t"), ("semicolon", ";"),
                                            ("pipe", "|"), ("comma", ","), (" ", " ")])
def test_delimiter_names(text, expected):
    assert parse_delimiter(text) == expected


@pytest.mark.parametrize("text", ["", ";;", '"', "'", "a", "1", ".", "-", "\n", "tabs"])
def test_bad_delimiters_are_refused(text):
    with pytest.raises(ValueError, match="a delimiter is one character"):
        parse_delimiter(text)


def test_the_column_names_of_files(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 2)), y=np.zeros(2))
    assert sorted(data_file_columns(tmp_path / "d.npz")) == ["X", "y"]
    path = _write(tmp_path, "\t")
    assert data_file_columns(path, header=False) is None
    assert data_file_columns(path, delimiter=",") == ["a\tb\tlabel"]
    assert data_file_columns(tmp_path / "missing.csv") is None


# -- the command line: --delimiter wherever a .csv is read ---------------------------


def test_train_predict_and_evaluate_read_a_semicolon_file(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 2))
    labels = np.where(x[:, 0] > 0, "yes", "no")
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b;answer\n" + "".join(f"{r[0]:.6f};{r[1]:.6f};{l}\n"
                                              for r, l in zip(x, labels)))
    comma = tmp_path / "comma.csv"
    comma.write_text(semi.read_text().replace(";", ","))
    proc = run("train", "--data", semi, "--target", "answer", "--epochs", "5", "--quiet",
               "--json", "--save", tmp_path / "m.npz")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["layer_sizes"][0] == 2 and summary["task"] == "binary"
    a = run("predict", "--model", tmp_path / "m.npz", "--data", semi)
    b = run("predict", "--model", tmp_path / "m.npz", "--data", comma)
    c = run("predict", "--model", tmp_path / "m.npz", "--data", semi, "--delimiter", "semicolon")
    assert a.returncode == b.returncode == c.returncode == 0, (a.stderr, b.stderr, c.stderr)
    assert a.stdout == b.stdout == c.stdout and len(a.stdout.splitlines()) == 61
    e = run("evaluate", "--model", tmp_path / "m.npz", "--data", semi, "--json")
    f = run("evaluate", "--model", tmp_path / "m.npz", "--data", comma, "--json")
    assert e.returncode == 0 and json.loads(e.stdout)["confusion_matrix"] == json.loads(
        f.stdout)["confusion_matrix"]


def test_the_command_line_names_the_assumed_delimiter_and_the_flag(tmp_path, capsys):
    path = tmp_path / "spaces.csv"
    path.write_text("a b label\n1 2 cat\n3 4 dog\n5 6 cat\n")
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", str(path), "--target", "label", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert re.search(r"has no column 'label'; its columns are \['a b label'\] \(delimiter: comma "
                     r"\(','\), assumed: none could be detected; .*--delimiter", err), err
    assert main(["train", "--data", str(path), "--target", "label", "--quiet", "--epochs", "2",
                 "--delimiter", " ", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layer_sizes"][0] == 2


@pytest.mark.parametrize("args, reason", [
    (["train", "--data", "d.npz", "--delimiter", ";"], "--delimiter is for a --data .csv file"),
    (["train", "--dataset", "xor", "--delimiter", ";"], "--delimiter is for a --data .csv file"),
    (["predict", "--model", "m.npz", "--data", "d.npz", "--delimiter", "tab"],
     "--delimiter is for a --data .csv file"),
    (["train", "--data", "d.csv", "--delimiter", "xx"],
     "argument --delimiter: a delimiter is one character"),
    (["predict", "--model", "m.npz", "--data", "d.csv", "--delimiter", '"'],
     "argument --delimiter: a delimiter is one character"),
])
def test_delimiter_refusals(tmp_path, monkeypatch, capsys, args, reason):
    monkeypatch.chdir(tmp_path)
    np.savez("d.npz", X=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]))
    assert main(["train", "--data", "d.npz", "--epochs", "1", "--quiet", "--save", "m.npz",
                 "--json"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and reason in err, err
