"""The package's imports form no circle, and only the entry layer imports the entry points. Read from the source
with ast (no module is imported, so no torch), counting imports inside functions too: a lazy import hides a circle
from Python, not from the reader who has to change one of its modules."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "trocr_lail"
ENTRY_POINTS = {"trocr_lail.cli", "trocr_lail.cli_data", "trocr_lail.run", "trocr_lail.preflight", "trocr_lail.assets"}
ENTRY_LAYER = ENTRY_POINTS | {"trocr_lail"}  # the package's __init__ only registers the pipeline


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Every module ``name`` names in an import statement, relative ones resolved; ``from pkg import mod`` names
    ``pkg.mod`` (checked against the modules that exist by the caller)."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (parent packages of a submodule are not counted: ours are empty)."""
    sources = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph = {}
    for name, path in sources.items():
        names = imported(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py")
        graph[name] = {other for other in names if other in sources and other != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path that ends where it starts, or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_finds_and_names_a_circle():
    # The circle this test was written against: data/validate.py ran the CLI, whose validate command imports it.
    graph = {"trocr_lail.cli": {"trocr_lail.data.validate"}, "trocr_lail.data.validate": {"trocr_lail.cli"},
             "trocr_lail.data.images": set()}
    assert " -> ".join(find_cycle(graph)) == "trocr_lail.cli -> trocr_lail.data.validate -> trocr_lail.cli"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_graph_reads_relative_lazy_and_from_package_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .sub import leaf\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "leaf.py").write_text("def f():\n    from ..top import g\n")
    (package / "top.py").write_text("import pkg.sub.leaf\n")
    graph = import_graph(package)
    assert graph == {"pkg": {"pkg.sub", "pkg.sub.leaf"}, "pkg.sub": set(), "pkg.sub.leaf": {"pkg.top"},
                     "pkg.top": {"pkg.sub.leaf"}}
    assert find_cycle(graph) == ["pkg.sub.leaf", "pkg.top", "pkg.sub.leaf"]


def test_package_has_no_import_circle():
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_lower_layers_never_import_entry_points(entry_point):
    importers = sorted(name for name, targets in import_graph().items()
                       if entry_point in targets and name not in ENTRY_LAYER)
    assert not importers, f"{entry_point} is an entry point, imported from below by {importers}"
