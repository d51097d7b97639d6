"""The library is built in floors: a module imports only from its own floor or below, no two
modules import each other (directly or around a circle), and the generic upper floors name no
particular device, halting policy or machine kind. Checked on the source, imports inside
functions included (an import moved into a function to dodge a cycle is still a cycle)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import difmachine as dm
from difmachine import protocol

PACKAGE = Path(dm.__file__).resolve().parent

# floor -> module prefixes (a prefix ending in "." takes a whole package)
FLOORS = {
    0: [
        "protocol",
        "addressing",
        "_init",
        "_types",
        "errors",
        "checkpoint",
        "specs",
        "plotting",
        "cache",
        "stochastic",
    ],
    1: ["devices.", "controllers", "halting.", "tasks.", "optim"],
    2: ["compiler", "machine", "seq2seq", "neural_gpu"],
    3: ["program"],
    4: ["training", "rundir", "trace", "parallel", "sweep", "testing", "tensorboard"],
    5: ["cli", "__main__", ""],  # "" is the package's __init__: the public API
}
# the generic floors: they work through the protocols and name no particular component
GENERIC = ["compiler", "program", "training", "rundir", "trace", "cli", "sweep"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def floor(module: str) -> int:
    for level in sorted(FLOORS, reverse=True):
        for prefix in FLOORS[level]:
            if (
                module == prefix
                or module == prefix.rstrip(".")
                or (prefix.endswith(".") and module.startswith(prefix))
            ):
                return level
    raise AssertionError(f"difmachine.{module} has no floor: add it to FLOORS in {__file__}")


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The difmachine modules ``name`` imports anywhere in its source."""
    is_package = not name or (PACKAGE / Path(*name.split("."), "__init__.py")).exists()
    package = name.split(".") if is_package and name else ([] if not name else name.split(".")[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                stem = node.module or ""
                if not (stem == "difmachine" or stem.startswith("difmachine.")):
                    continue
                stem = stem.removeprefix("difmachine").lstrip(".")
            # "from .x import y" may import the module x.y; "from .. import y" the module y
            targets = [f"{stem}.{a.name}".lstrip(".") for a in node.names] + (
                [stem] if stem else []
            )
            targets = ["difmachine." + t for t in targets]
        else:
            continue
        for target in targets:
            if target == "difmachine" or target.startswith("difmachine."):
                mod = target.removeprefix("difmachine").lstrip(".")
                if mod in known:
                    found.add(mod)
    found.discard(name)
    return found


GRAPH = None


def graph() -> dict[str, set[str]]:
    global GRAPH
    if GRAPH is None:
        trees = modules()
        GRAPH = {name: imports(name, tree, set(trees)) for name, tree in trees.items()}
    return GRAPH


def test_every_module_has_a_floor_and_imports_none_above_it():
    wrong = [
        f"difmachine.{m} (floor {floor(m)}) imports difmachine.{t} (floor {floor(t)})"
        for m, targets in graph().items()
        for t in sorted(targets)
        if floor(t) > floor(m)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_circles():
    g = graph()
    # a package's __init__ re-exporting its own modules is not a circle with them
    edges = {m: {t for t in ts if not (m and t.startswith(m + "."))} for m, ts in g.items()}
    edges[""] = set()  # the public API sits on top of everything
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def particular_components() -> set[str]:
    """Every concrete device, halting policy and machine kind difmachine defines."""
    bases = (
        protocol.AbstractDevice,
        protocol.AbstractHalting,
        protocol.AbstractMachine,
        protocol.AbstractCompiledMachine,
    )
    names = set()
    for value in vars(dm).values():
        if inspect.isclass(value) and issubclass(value, bases) and value not in bases:
            names.add(value.__name__)
    assert {"NTMMemory", "ACT", "Fixed", "Seq2Seq", "Machine", "Attention"} <= names
    return names


@pytest.mark.parametrize("module", GENERIC)
def test_generic_floors_name_no_particular_component(module):
    trees = modules()
    assert module in trees, f"difmachine.{module} is listed in GENERIC but does not exist"
    named = set()
    for node in ast.walk(trees[module]):
        if isinstance(node, ast.Name):
            named.add(node.id)
        elif isinstance(node, ast.Attribute):
            named.add(node.attr)
        elif isinstance(node, ast.alias):
            named.add(node.asname or node.name.split(".")[-1])
    hits = sorted(named & particular_components())
    assert not hits, f"difmachine.{module} names {', '.join(hits)}; work through the protocols"
