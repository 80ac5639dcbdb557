"""Import a tools/*.py script as a module (they are not a package)."""
import importlib.util
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[3] / "tools"


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
