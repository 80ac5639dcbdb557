"""Test helpers shared by the suites: tools/*.py as importable modules."""
import importlib.util

from dcd.util.paths import REPO_ROOT


def load_tool(name):
    """A tools/<name>.py script as a module (tools are scripts, not a
    package), so that tests can call its main(argv)."""
    path = REPO_ROOT / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"tool_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
