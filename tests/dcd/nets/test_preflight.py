"""The pre-flight check names every missing input of a solver."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: F401  (built by `make`; missing is an error, not a skip)
from dcd.nets.generate import write_models  # noqa: E402
from dcd.nets.preflight import check_solver  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    write_models(root, ("ucf101",), nets=["motion"])
    return root


def test_names_every_missing_file(root):
    with pytest.raises(FileNotFoundError) as err:
        check_solver(root / "models/ucf101/motion_solver.prototxt", root,
                     weights=[str(root / "w.caffemodel")])
    text = str(err.value)
    for missing in ("data/ucf101/ucf101_train_split_1.txt", "data/ucf101/ucf101_val_split_1.txt",
                    "data/ucf101/frames_lmdb", "snapshots", "w.caffemodel"):
        assert missing in text


def test_passes_when_everything_is_there(tmp_path):
    root = tmp_path
    write_models(root, ("ucf101",), nets=["motion"])
    data = root / "data/ucf101"
    (data / "frames_lmdb").mkdir(parents=True)
    for part in ("train", "val"):
        (data / f"ucf101_{part}_split_1.txt").write_text("v 3 0\n")
    (root / "snapshots").mkdir()
    assert check_solver(root / "models/ucf101/motion_solver.prototxt", root)


def test_tool_exit_status(root, tmp_path):
    tool = [sys.executable, str(REPO / "tools/check_solver.py")]
    proc = subprocess.run(tool + [str(tmp_path / "none.prototxt")], capture_output=True, text=True)
    assert proc.returncode == 1 and "none.prototxt" in proc.stderr


@pytest.mark.parametrize("content, reason", [(b"", "is empty (0 bytes)"),
                                             (b"\xff\xff\xff\xff junk", "does not parse")])
def test_weights_that_are_no_caffemodel_are_refused(tmp_path, capsys, content, reason):
    from toolhelpers import load_tool
    write_models(tmp_path, ("ucf101",), nets=["motion"])
    data = tmp_path / "data/ucf101"
    (data / "frames_lmdb").mkdir(parents=True)
    for part in ("train", "val"):
        (data / f"ucf101_{part}_split_1.txt").write_text("v 3 0\n")
    (tmp_path / "snapshots").mkdir()
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(content)
    rc = load_tool("check_solver").main([str(tmp_path / "models/ucf101/motion_solver.prototxt"),
                                         "--root", str(tmp_path), "--weights", str(weights)])
    (line,) = capsys.readouterr().err.splitlines()
    assert rc == 1 and str(weights) in line and reason in line
