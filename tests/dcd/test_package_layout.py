"""The package's architecture: subpackages in layers, imports one way, no cycles."""
import ast
from pathlib import Path

import dcd

PACKAGE = Path(dcd.__file__).parent
# Lower layers never import higher ones (python/dcd/__init__.py describes each).
LAYERS = ["util", "caffeio", "layers", "data", "nets", "scoring", "perf", "paper", "demo"]


def modules():
    """{dotted module name: path} for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path, known):
    """The package's modules that a module imports, at any depth (function-level imports too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dcd":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in known else node.module)
    return {m for m in out if m in known}


def graph():
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def find_cycle(edges):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def subpackage(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycle_between_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_subpackages_import_only_lower_layers():
    wrong = []
    for module, deps in graph().items():
        here = subpackage(module)
        for dep in deps:
            there = subpackage(dep)
            if here and there and here != there and LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{module} imports {dep} ({here} is below {there})")
    assert not wrong, "\n".join(wrong)


def test_every_module_lives_in_a_subpackage_of_a_known_layer():
    loose = [m for m in modules() if m != "dcd" and subpackage(m) not in LAYERS]
    assert not loose, f"modules outside {LAYERS}: {loose}"


def test_package_docstring_maps_every_subpackage():
    doc = dcd.__doc__
    missing = [name for name in LAYERS if f"{name}/" not in doc and f"`{name}`" not in doc]
    assert not missing, f"python/dcd/__init__.py does not describe {missing}"
