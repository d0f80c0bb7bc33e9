"""The documentation: README.md and the site under docs/.

- Every Python example in them runs (pytest-examples finds them), on NumPy
  unless its fence names what it needs: ```` ```python {requires="torch"} ````
  skips, saying so, where torch is missing; ``requires="gpu"`` where CuPy
  has no GPU.
- Every ``nnbackend ...`` command line in their shell examples parses with
  the command's own parser, so a renamed or removed flag fails here.
- The generated command-line reference lists every subcommand and flag, and
  every public name has a docstring (the site's build hook checks the same).
- The README stays a front page: at most 200 lines, with the two commands
  CI relies on, and links that lead somewhere.
- With the ``docs`` extra installed, ``mkdocs build --strict`` passes.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").rglob("*.md"))]

try:
    from pytest_examples import find_examples
    from pytest_examples.eval_example import EvalExample
except ImportError:  # the test extra brings it
    find_examples = None


def _hooks():
    """The site's build hooks (docs/hooks/nnbackend_docs.py), loaded by path."""
    path = ROOT / "docs" / "hooks" / "nnbackend_docs.py"
    spec = importlib.util.spec_from_file_location("nnbackend_docs_hooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the Python examples -------------------------------------------------------------


def _examples():
    if find_examples is None:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="pytest-examples is not installed: pip install -e '.[test]'"))]
    return [pytest.param(example, id=f"{example.path.relative_to(ROOT)}:{example.start_line}")
            for example in find_examples(*DOC_FILES)]


def _require(needs: str):
    """Skip, saying why, unless everything in ``needs`` (comma-separated) is here."""
    for need in filter(None, (n.strip() for n in needs.split(","))):
        if need == "gpu":
            import nnbackend as nb

            try:
                nb.get_backend("cupy")
            except (nb.BackendUnavailableError, ValueError) as e:
                pytest.skip(f"needs CuPy on an NVIDIA GPU: {str(e).splitlines()[0]}")
        else:
            pytest.importorskip(need, reason=f"the example needs {need}, which is not installed")


@pytest.mark.parametrize("example", _examples())
def test_example_runs(example, request, tmp_path, monkeypatch):
    _require(example.prefix_settings().get("requires", ""))
    # Files the examples write go to a fresh folder; the backend is the one
    # the example names (or NumPy), whatever the developer's environment says.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NNBACKEND_BACKEND", raising=False)
    EvalExample(tmp_path=tmp_path, pytest_request=request).run(example)


def test_examples_are_found():
    if find_examples is None:
        pytest.skip("pytest-examples is not installed: pip install -e '.[test]'")
    found = {example.path.name for example in find_examples(*DOC_FILES)}
    assert {"README.md", "getting-started.md", "embedding.md", "checkpoints.md"} <= found


# -- the shell examples -----------------------------------------------------------


def _command_lines():
    """``(file, line)`` for each ``nnbackend ...`` command in a bash fence."""
    found = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"^ *```bash\n(.*?)^ *```", text, flags=re.M | re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"(^|\s)#.*$", "", line).strip()
                for part in re.split(r"&&|\|\||;|\|", line):
                    words = shlex.split(part)
                    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                        words.pop(0)  # VAR=value before the command
                    if words[:1] == ["nnbackend"]:
                        found.append((path.relative_to(ROOT).as_posix(), words[1:]))
    return found


@pytest.mark.parametrize("where, args", _command_lines(),
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_command_lines_parse(where, args, capsys):
    from nnbackend.cli import _parser

    try:
        _parser().parse_args(args)
    except SystemExit as e:
        pytest.fail(f"{where}: nnbackend {' '.join(args)} does not parse: "
                    f"{capsys.readouterr().err.strip()} (exit {e.code})")


def test_command_lines_are_found():
    commands = {args[0] for _, args in _command_lines() if args}
    assert {"train", "predict", "bench", "info"} <= commands


# -- generated pages and docstrings -------------------------------------------------


def test_cli_reference_lists_every_subcommand_and_flag():
    from nnbackend.cli import _parser

    parser = _parser()
    page = _hooks().cli_reference(parser)
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert subcommands
    for name, sub in subcommands[0].choices.items():
        assert f"### `nnbackend {name}`" in page
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page or f", {option}" in page, (name, option)


def test_cli_page_takes_the_generated_reference():
    assert _hooks().CLI_MARKER in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def test_every_public_name_has_a_docstring():
    missing = _hooks().missing_docstrings()
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def test_kernel_docstrings_state_shapes():
    import nnbackend.kernels as K

    vague = [name for name in K.__all__
             if callable(getattr(K, name)) and name not in ("activation", "check_loss",
                                                             "check_reduction",
                                                             "register_namespace_fixes")
             and "shape" not in (getattr(K, name).__doc__ or "")]
    assert not vague, f"kernels whose docstrings give no shapes: {vague}"


# -- the README as a front page -----------------------------------------------------


def test_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    assert "pip install . && nnbackend train" in text
    # CI (.ci/run) runs exactly this test command.
    assert ("python -m pytest -q && python -m pytest benchmarks --benchmark-disable -q"
            in text)


def test_links_lead_somewhere():
    broken = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"^ *```.*?^ *```", "", text, flags=re.M | re.S)  # not in code
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file = target.split("#", 1)[0]
            if path.parent == ROOT / "docs" and file.startswith("results/"):
                exists = (ROOT / "benchmarks" / file).is_file()  # copied in by the hook
            else:
                exists = (path.parent / file).exists()
            if not exists:
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_result_figures_the_site_copies_exist():
    hooks = _hooks()
    for rel in hooks.RESULT_FIGURES:
        assert (hooks.RESULTS / rel).is_file(), rel


# -- the site builds -----------------------------------------------------------------


def test_site_builds_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs extra is not installed: "
                                           "pip install -e '.[docs]'")
    mkdocs = shutil.which("mkdocs")
    command = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    proc = subprocess.run([*command, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "cli" / "index.html").is_file()
