"""The package's layering: every import goes down the declared layer order.

Every module of ``nnbackend`` is parsed with ``ast``; imports inside
functions count as much as those at the top. A module may import from its
own layer or any layer below, never from one above, and the imports
between modules form no circle. A new module must be given a layer here.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "nnbackend"

# Bottom to top, as DESIGN.md's Architecture lists them. A name matches the
# module itself and everything below it (a package's modules).
LAYERS = [
    ("checks", "kernel_forms", "kernels", "bound"),  # 1. argument checks, array-API kernels (bound)
    ("backends",),                              # 2. namespaces, devices, fast executors
    ("network",),                               # 3. the network's math over (spec, params)
    ("optim",),                                 # 4. (init, update) optimizers
    ("data", "datasets", "datafiles", "tasks", "scaling"),  # 5. plans, checks, data sets, files, scaling
    ("engine",),                                # 6. one epoch: reference loop, executor choice
    ("training",),                              # 7. fit in parts: options, state, callbacks, loop
    ("model", "model_epochs", "model_inputs", "model_pickle", "classifier", "checkpoint", "autoselect"),  # 8. the MLP front end, its inputs, labels, files, auto's choice
    ("estimators",),                            # 9. scikit-learn's MLPClassifier / MLPRegressor
    ("cli", "cli_data", "cli_evaluate", "cli_info", "cli_auto", "calibrate", "plot", "bench", "__main__", ""),  # 10. user-facing; "" is nnbackend/__init__
]

# Layers whose modules import no array library: they use the namespace of
# their inputs (array_api_compat) and the standard alone.
ARRAY_LIBRARIES = {"numpy", "cupy", "torch", "jax", "dask", "array_api_strict"}
NO_ARRAY_LIBRARY = {"checks", "kernel_forms", "kernels", "bound", "network", "optim", "engine", "training"}
# ...with no exception: host-side NumPy (initial weights, shuffles) lives in data.py.
HOST_NUMPY = {}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    rest = module.split(".", 1)[1] if "." in module else ""
    top = rest.split(".", 1)[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module} has no layer in tests/test_layering.py: give it one")


def _imports(module: str, path: pathlib.Path):
    """``(line, imported module)`` for every import in the file, anywhere in it."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # "from . import kernels" imports the module nnbackend.kernels;
            # "from .data import n_rows" the module nnbackend.data.
            out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return out


def _resolve(target, modules):
    """The longest known module ``target`` starts with (a name imported from a
    module is not a module itself), or "" for none."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def _internal_edges():
    modules = _modules()
    edges = {}
    for name, path in modules.items():
        targets = set()
        for line, target in _imports(name, path):
            target = _resolve(target, modules)
            if target and target != name and target.startswith("nnbackend"):
                targets.add((line, target))
        edges[name] = targets
    return modules, edges


def test_every_module_has_a_layer():
    for name in _modules():
        _layer(name)


def test_no_import_goes_up_a_layer():
    modules, edges = _internal_edges()
    upward = [f"{modules[a].relative_to(PACKAGE.parent)}:{line} imports {b} "
              f"(layer {_layer(b) + 1} above {_layer(a) + 1})"
              for a, targets in edges.items() for line, b in sorted(targets)
              if _layer(b) > _layer(a)]
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_no_import_circle():
    _, edges = _internal_edges()
    graph = {a: {b for _, b in targets} for a, targets in edges.items()}
    # A package imports its modules (its registry) and they import each
    # other; a module importing its own package is the circle to catch.
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("layer", sorted(NO_ARRAY_LIBRARY))
def test_core_layers_import_no_array_library(layer):
    found = []
    for name, path in _modules().items():
        if name.split(".")[1:2] != [layer]:
            continue
        for line, target in _imports(name, path):
            root = (target or "").split(".")[0]
            if root in ARRAY_LIBRARIES and not (root == "numpy" and name in HOST_NUMPY):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not found, "array libraries imported outside the backends:\n" + "\n".join(found)


def test_the_checker_sees_an_upward_import(tmp_path):
    """An import inside a function, relative to a package, is found and judged upward."""
    source = tmp_path / "m.py"
    source.write_text("import math\n\ndef f():\n    from ..model import MLP\n")
    [(line, target)] = [i for i in _imports("nnbackend.backends.m", source) if i[1] != "math"]
    assert line == 4 and _resolve(target, _modules()) == "nnbackend.model"
    assert _layer("nnbackend.model") > _layer("nnbackend.backends.m")


MAX_MODULE_LINES = 700
MAX_FUNCTION_BODY_LINES = 100


def _body_lines(function) -> int:
    """Lines of a function's body, its docstring left out."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def test_modules_and_functions_stay_small():
    """Readable units: no module over 700 lines, no function body over 100."""
    too_big = []
    for path in _modules().values():
        source = path.read_text()
        where = path.relative_to(PACKAGE.parent)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{where}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _body_lines(node) > MAX_FUNCTION_BODY_LINES:
                    too_big.append(f"{where}:{node.lineno} {node.name}: a {_body_lines(node)}-line body")
    assert not too_big, "split these:\n" + "\n".join(too_big)
