"""MkDocs hooks of nnbackend's documentation site (``hooks:`` in mkdocs.yml).

- ``index.md`` is the README, with its links into ``docs/`` made relative to
  the site, so the README is the site's front page and is written once.
- ``cli.md``'s marker ``<!-- cli-reference -->`` becomes the reference of every
  subcommand and flag, generated from ``nnbackend.cli._parser()``: a new
  subcommand or flag appears without an edit here.
- The benchmark figures under ``benchmarks/results/`` that the pages show are
  copied into the site under ``results/``, so the site shows the committed
  files themselves.
- Sphinx roles left in docstrings (``:func:`x` ``) show as plain code.
- Every public name (``PUBLIC_MODULES``, ``PUBLIC_NAMES``) must have a docstring: one without is a
  build warning, so ``mkdocs build --strict`` fails on it.

The functions that do not need MkDocs (:func:`cli_reference`,
:func:`readme_for_site`, :func:`missing_docstrings`) are also used by
``tests/test_docs.py``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
CLI_MARKER = "<!-- cli-reference -->"

# The committed benchmark figures the pages show, relative to benchmarks/results/.
RESULT_FIGURES = (
    "cpu-after/epoch_time.png",
    "cpu-after/time_to_target.png",
)

# The public API whose docstrings the reference shows: modules whose
# ``__all__`` is public, and further names by their full path.
PUBLIC_MODULES = ("nnbackend", "nnbackend.kernels")
PUBLIC_NAMES = (
    "nnbackend.estimators.MLPClassifier",
    "nnbackend.estimators.MLPRegressor",
    "nnbackend.backends.dask.chunks.open_npy",
)

# Public names allowed to lack a docstring (none): the build fails on any.
KNOWN_MISSING = frozenset()

log = logging.getLogger("mkdocs.hooks.nnbackend_docs")


# -- the README as the front page --------------------------------------------------


def readme_for_site(text: str) -> str:
    """The README's Markdown with its links into ``docs/`` made relative to the site.

    Parameters
    ----------
    text : str
        README.md's text.

    Returns
    -------
    str
        The same text, ``](docs/PAGE)`` rewritten to ``](PAGE)``.
    """
    return re.sub(r"\]\(docs/", "](", text)


# -- the command line reference ----------------------------------------------------


def _cell(text: str) -> str:
    """``text`` made safe for one cell of a Markdown table."""
    text = " ".join(str(text).split())
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"),
                          ("*", "\\*"), ("_", "\\_")):
        text = text.replace(char, escaped)
    return text


def _flag(action: argparse.Action, formatter) -> str:
    """``--flag VALUE`` (or the positional's name) for one action."""
    if not action.option_strings:
        return formatter._metavar_formatter(action, action.dest)(1)[0]
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    value = formatter._format_args(action, action.dest.upper())
    return ", ".join(f"{option} {value}" for option in action.option_strings)


def _actions_table(parser: argparse.ArgumentParser, group) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in group._group_actions:
        if action.help == argparse.SUPPRESS or isinstance(
                action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        help_text = formatter._expand_help(action) if action.help else ""
        if action.required:
            help_text = f"required. {help_text}".strip()
        rows.append(f"| `{_flag(action, formatter)}` | {_cell(help_text)} |")
    if not rows:
        return []
    return [f"**{group.title[:1].upper() + group.title[1:]}**", "",
            "| flag | what it does |", "|---|---|", *rows, ""]


def _subcommands(parser: argparse.ArgumentParser):
    """``[(name, help, subparser)]`` of ``parser``'s subcommands, in the order added."""
    out, seen = [], set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases share one parser
                    seen.add(id(sub))
                    out.append((name, helps.get(name, ""), sub))
    return out


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """Markdown reference of every subcommand and flag of the ``nnbackend`` command.

    Parameters
    ----------
    parser : argparse.ArgumentParser, optional
        The parser to document; default ``nnbackend.cli._parser()``.

    Returns
    -------
    str
        A section per subcommand: its purpose, its usage line, and a table of
        its flags per argument group, with argparse's help text.
    """
    if parser is None:
        from nnbackend.cli import _parser

        parser = _parser()
    lines = ["```text", " ".join(parser.format_usage().split()).removeprefix("usage: "), "```", "",
             "| command | what it does |", "|---|---|"]
    lines += [f"| `{parser.prog} {name}` | {_cell(help_text or '')} |"
              for name, help_text, _ in _subcommands(parser)]
    lines.append("")
    for group in parser._action_groups:
        lines += _actions_table(parser, group)
    for name, help_text, sub in _subcommands(parser):
        lines += [f"### `{parser.prog} {name}`", ""]
        about = sub.description or help_text or ""
        if about:
            lines += [_cell(about[:1].upper() + about[1:]), ""]
        usage = " ".join(sub.format_usage().split())
        lines += ["```text", usage.removeprefix("usage: "), "```", ""]
        for group in sub._action_groups:
            lines += _actions_table(sub, group)
    return "\n".join(lines)


# -- docstrings of the public API --------------------------------------------------


def _public_objects():
    """``{full name: object}`` of every public function, class and class member."""
    found = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            try:
                obj = getattr(module, name)
            except ImportError:  # an optional dependency (scikit-learn) is missing
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found[f"{module_name}.{name}"] = obj
    for path in PUBLIC_NAMES:
        module_name, _, name = path.rpartition(".")
        try:
            found[path] = getattr(importlib.import_module(module_name), name)
        except ImportError:
            continue
    for path, obj in list(found.items()):
        if not inspect.isclass(obj):
            continue
        for klass in obj.__mro__:
            if not klass.__module__.startswith("nnbackend"):
                continue
            for name, member in vars(klass).items():
                if name.startswith("_") or f"{path}.{name}" in found:
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    found[f"{path}.{name}"] = member
    return found


def missing_docstrings(known=KNOWN_MISSING) -> list[str]:
    """Full names of the public functions, classes and members without a docstring.

    Parameters
    ----------
    known : collection of str
        Names to leave out (those already known to lack one).

    Returns
    -------
    list of str
        Sorted; empty when every public name has a docstring.
    """
    return sorted(path for path, obj in _public_objects().items()
                  if not (obj.__doc__ or "").strip() and path not in known)


# -- MkDocs events -----------------------------------------------------------------


def on_pre_build(config, **kwargs):
    for path in missing_docstrings():
        log.warning(f"public name without a docstring: {path}")


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for rel in RESULT_FIGURES:
        source = RESULTS / rel
        if not source.is_file():
            log.warning(f"benchmark figure not found: benchmarks/results/{rel}")
            continue
        files.append(File.generated(config, f"results/{rel}", abs_src_path=str(source)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri == "index.md":
        return readme_for_site((ROOT / "README.md").read_text(encoding="utf-8"))
    if CLI_MARKER in markdown:
        return markdown.replace(CLI_MARKER, cli_reference())
    return markdown


# ":func:" and its kin before a rendered ``code`` span (docstrings written for Sphinx).
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|data|attr|mod|exc|obj|const):(?=<code)")


def on_page_content(html, page, config, files, **kwargs):
    html = _SPHINX_ROLE.sub("", html)
    return html.replace("<code>~", "<code>")
