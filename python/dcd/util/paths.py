"""Where things are in a DCD-Caffe checkout."""
import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]  # python/dcd/util/paths.py
BUILD_DIR = REPO_ROOT / "build"
CPU_BUILD_DIR = BUILD_DIR / "cpu"


def caffe_binary():
    """The `caffe` tool: $DCD_CAFFE_BIN, the CPU build's, or the one on PATH."""
    override = os.environ.get("DCD_CAFFE_BIN")
    if override:
        return Path(override)
    built = CPU_BUILD_DIR / "caffe" / "tools" / "caffe"
    if built.exists():
        return built
    on_path = shutil.which("caffe")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        "No caffe executable: build the project first (`make`), or set DCD_CAFFE_BIN.")
