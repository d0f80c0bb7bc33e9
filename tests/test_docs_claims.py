"""Statements of behaviour in README.md and docs/ that tests/test_docs.py does not
run: the tests each page names exist, and a few claims corrected by the docs
review of 2026-12-07 (benchmarks/results/docs-claims-review-2026-12-07/)."""

import re
from pathlib import Path

import numpy as np
import pytest

import nnbackend as nb
from nnbackend.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `test_file::test_name`, or `::test_name` for one more test of the file named last.
REFERENCE = re.compile(r"`(?:tests/|benchmarks/)?(test_\w+?)?(?:\.py)?::(test_\w+)`")


def _references():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        # A continuation `::test` belongs to the file named last in its paragraph
        # (or table row): reset the file at each blank line and table row.
        for block in re.split(r"\n\s*\n|\n(?=\|)", text):
            current = None
            for match in REFERENCE.finditer(block):
                current = match.group(1) or current
                yield page.name, current, match.group(2)


def test_every_test_a_page_names_exists():
    missing = []
    for page, module, name in _references():
        candidates = [ROOT / "tests" / f"{module}.py", ROOT / "benchmarks" / f"{module}.py"]
        sources = [p.read_text(encoding="utf-8") for p in candidates if module and p.exists()]
        if not any(re.search(rf"^def {name}\b", s, re.M) for s in sources):
            missing.append(f"{page}: {module}::{name}")
    assert not missing, missing


def test_alpha_divides_by_batch_size_for_the_shorter_last_batch_too():
    # docs/descent-modes.md: alpha/2·‖W‖² over `batch_size` rows, for an
    # epoch's shorter last batch too (not over that batch's own rows).
    X = np.arange(6.0).reshape(6, 1) / 6
    y = np.zeros(6)
    alpha, lr = 0.9, 0.1
    model = nb.MLP([1, 1], output_activation="identity", dtype="float64",
                   params=[(np.ones((1, 1)), np.zeros(1))])
    model.fit(X, y, mode="minibatch", batch_size=4, epochs=1, lr=lr, alpha=alpha,
              shuffle=False)
    W, b = 1.0, 0.0
    for rows in (slice(0, 4), slice(4, 6)):  # 4 rows, then the last 2
        x = X[rows, 0]
        dz = W * x + b  # ½·squared error against 0
        W, b = W - lr * (np.mean(dz * x) + alpha / 4 * W), b - lr * np.mean(dz)
    assert float(np.asarray(model.params[0][0])[0, 0]) == pytest.approx(W, rel=1e-12)


def test_info_names_the_default_device(capsys):
    # docs/getting-started.md, cli.md, backends.md: info shows the default device.
    assert main(["info", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "default device cpu" in out and "float64 yes" in out


def test_no_module_above_the_backends_compares_a_backend_name():
    # docs/design.md: nnbackend/backends/ is "the only place in layers 1-9 that
    # knows backend names"; a layer above asks a backend's attributes instead.
    import ast

    from nnbackend.backends import BACKEND_NAMES

    package = ROOT / "nnbackend"
    user_facing = ("cli", "calibrate", "plot", "__main__")  # layer 10
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith(("backends/", "bench/")) or rel.startswith(user_facing):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            names_a_backend = any(isinstance(o, ast.Attribute) and o.attr == "name"
                                  for o in operands)
            constants = [e for o in operands
                         for e in (o.elts if isinstance(o, (ast.Tuple, ast.List, ast.Set))
                                   else [o])]
            if names_a_backend and any(isinstance(c, ast.Constant) and c.value in BACKEND_NAMES
                                       for c in constants):
                found.append(f"nnbackend/{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found


def _options():
    import argparse

    from nnbackend.cli import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in commands.choices.items():
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield command, action


def test_help_names_the_default_of_every_flag_that_has_one():
    # docs/cli.md: "`nnbackend COMMAND --help` lists every flag with its default".
    silent = [f"{command} {action.option_strings[0]}" for command, action in _options()
              if "default" not in (action.help or "")
              and (action.default not in (None, False) or action.dest == "device")]
    assert not silent, silent
