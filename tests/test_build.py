"""The build: caffe and pycaffe from the venv, the project's proto block,
a net trained with `caffe train`, and the source step's failure handling."""
import os
import re
import shutil
import subprocess

import pytest

from dcd.util.paths import CPU_BUILD_DIR, REPO_ROOT
from smoke import run_smoke  # tests/smoke.py, a test-only net

VENV_BIN = REPO_ROOT / ".venv" / "bin"
DOWNLOADS = REPO_ROOT / "build" / "downloads"


def test_caffe_version_from_venv():
    proc = subprocess.run([str(VENV_BIN / "caffe"), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "caffe version 1.0.0" in proc.stdout + proc.stderr


def test_import_caffe_from_venv_uses_the_build():
    # A fresh interpreter with no PYTHONPATH: only the venv's link finds pycaffe.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c",
         "import os, caffe, numpy; print(os.path.realpath(caffe.__file__)); "
         "print(numpy.__version__)"],
        capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
    caffe_file, numpy_version = proc.stdout.split()
    assert caffe_file.startswith(str(CPU_BUILD_DIR / "caffe-src" / "python"))
    # numpy 2 (patch 0007): pycaffe imported under the version requirements.txt pins.
    pinned = next(line.split("==")[1].strip() for line in
                  (REPO_ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("numpy=="))
    assert numpy_version == pinned and int(numpy_version.split(".")[0]) >= 2


def test_project_package_is_installed_from_this_checkout():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listed = subprocess.run([str(VENV_BIN / "pip"), "list", "--disable-pip-version-check"],
                            capture_output=True, text=True, env=env)
    assert re.search(r"^dcd-caffe\s", listed.stdout, re.M), listed.stdout
    proc = subprocess.run([str(VENV_BIN / "python"), "-c",
                           "import os, dcd; print(os.path.realpath(dcd.__file__))"],
                          capture_output=True, text=True, env=env, cwd="/")
    assert proc.stdout.strip() == str((REPO_ROOT / "python/dcd/__init__.py").resolve())


def test_pyproject_dependencies_mirror_requirements():
    import tomllib
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    pinned = {line.split("#")[0].strip() for line in
              (REPO_ROOT / "requirements.txt").read_text().splitlines()} - {""}
    assert declared == pinned


def _declared_fields():
    """name -> number of the LayerParameter fields that dcd.proto declares."""
    text = (REPO_ROOT / "caffe_layers" / "proto" / "dcd.proto").read_text()
    block = text.split("// BEGIN LayerParameter fields")[1].split("// END LayerParameter fields")[0]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"optional \w+ (\w+) = (\d+);", block)}


def test_project_proto_block_is_in_caffe_pb2():
    from caffe.net_spec import param_name_dict
    from caffe.proto import caffe_pb2

    declared = _declared_fields()
    assert declared, "dcd.proto declares no LayerParameter fields"
    fields = {f.name: f for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields}
    for name, number in declared.items():
        assert name in fields, f"{name} missing from the built caffe_pb2"
        assert fields[name].number == number
        assert number >= 1801
        # The message type exists and NetSpec finds the field from the layer
        # type (FooParameter -> type Foo -> foo_param; acronyms as Caffe's
        # LRNParameter lrn_param: FrozenBNParameter frozen_bn_param).
        message = fields[name].message_type.name
        assert message.endswith("Parameter")
        layer_type = message[:-len("Parameter")]
        assert param_name_dict()[layer_type] + "_param" == name
        assert layer_type.lower() == name[:-len("_param")].replace("_", "")
    upstream = [f for f in fields.values() if f.name not in declared]
    assert max(f.number for f in upstream) < 1801


@pytest.mark.slow
def test_caffe_train_loss_falls(tmp_path):
    losses, test = run_smoke(tmp_path, iterations=60)
    assert len(losses) >= 10
    first, last = losses[0][1], losses[-1][1]
    assert last < 0.5 * first, losses
    assert test["accuracy"] >= 0.8, test


def _configure(source_dir, build_dir, env=None, **defs):
    """Run CMake's configure step; returns (returncode, stdout, stderr with
    CMake's line wrapping undone)."""
    cmd = ["cmake", "-S", str(source_dir), "-B", str(build_dir),
           f"-DPYTHON_EXECUTABLE={VENV_BIN / 'python'}"]
    cmd += [f"-D{k}={v}" for k, v in defs.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout, " ".join(proc.stderr.split())


@pytest.fixture
def cached_downloads(tmp_path):
    files = sorted(DOWNLOADS.glob("caffe_*"))
    if len(files) != 3:
        pytest.fail(f"expected the three cached source package files in {DOWNLOADS}; run make first")
    copy = tmp_path / "downloads"
    copy.mkdir()
    for f in files:
        shutil.copy(f, copy / f.name)
    return copy


@pytest.mark.slow
def test_checksum_mismatch_stops_and_moves_the_file_aside(tmp_path, cached_downloads):
    orig = next(cached_downloads.glob("*.orig.tar.gz"))
    with open(orig, "ab") as f:
        f.write(b"\0")
    build = tmp_path / "b"
    rc, _, err = _configure(REPO_ROOT, build, DCD_DOWNLOAD_DIR=cached_downloads)
    assert rc != 0
    assert f"Checksum mismatch for {orig}" in err
    assert "Run the build again to download it afresh" in err
    assert not orig.exists() and orig.with_name(orig.name + ".bad-checksum").exists()
    assert not (build / "caffe-src").exists()


@pytest.mark.slow
def test_failed_download_stops_with_advice(tmp_path):
    downloads = tmp_path / "empty"
    build = tmp_path / "b"
    # Port 9 on loopback (discard) refuses the connection at once.
    rc, _, err = _configure(REPO_ROOT, build,
                            env={"DCD_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"},
                            DCD_DOWNLOAD_DIR=downloads)
    assert rc != 0
    assert "apt-get update of the bullseye source index failed" in err
    assert "-DCAFFE_SOURCE_DIR=<path>" in err
    assert not (downloads.exists() and list(downloads.glob("caffe_*")))
    assert not (build / "caffe-src").exists()


@pytest.mark.slow
def test_clean_checkout_configures_to_the_same_tree(tmp_path, cached_downloads):
    """What git tracks (plus new, non-ignored files) configures from scratch to a
    tree identical to this build's, and a stale or half-made tree is not reused."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout
    clone = tmp_path / "clone"
    for rel in filter(None, listed.decode().split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    build = clone / "build" / "cpu"
    # A stale tree without a stamp, and a half-made one, as an interrupted run leaves them.
    (build / "caffe-src").mkdir(parents=True)
    (build / "caffe-src" / "stale-marker").write_text("old")
    (build / "caffe-src.partial").mkdir()
    (build / "caffe-src.partial" / "half").write_text("x")

    rc, out, err = _configure(clone, build, DCD_DOWNLOAD_DIR=cached_downloads)
    assert rc == 0, out[-3000:] + err[-3000:]
    tree, ours = build / "caffe-src", CPU_BUILD_DIR / "caffe-src"
    assert not (tree / "stale-marker").exists()
    assert not (build / "caffe-src.partial").exists()
    for rel in ("src/caffe/proto/caffe.proto", ".dcd-spliced-files", ".dcd-tree-stamp",
                "src/caffe/util/io.cpp", "src/caffe/common.cpp"):
        assert (tree / rel).read_bytes() == (ours / rel).read_bytes(), rel
    for rel in (tree / ".dcd-spliced-files").read_text().split():
        assert (tree / rel).resolve() == (clone / "caffe_layers" / rel)


def test_every_patch_is_applied_to_the_tree():
    """The tree the build compiled carries every caffe_layers/patches/*.patch,
    in order, as its stamp and a reverse dry run say; patch 0004's cuDNN
    convolution has neither per-group streams nor the sync kernel."""
    import hashlib
    tree = CPU_BUILD_DIR / "caffe-src"
    stamp = (tree / ".dcd-tree-stamp").read_text()
    patches = sorted((REPO_ROOT / "caffe_layers" / "patches").glob("*.patch"))
    assert [p.name for p in patches][:4] == [
        "0001-protobuf-3.21-SetTotalBytesLimit.patch", "0002-cuda13-removed-device-properties.patch",
        "0003-cudnn-8-9-convolution-algorithm-queries.patch",
        "0004-cudnn-convolution-setup-once-per-shape.patch"]
    listed = re.findall(r"^patch=([^:]+):([0-9a-f]+)$", stamp, re.M)
    assert listed == [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in patches]
    last = subprocess.run(["patch", "-p1", "--dry-run", "--reverse", "--force", "-i",
                           str(patches[-1])], cwd=tree, capture_output=True, text=True)
    assert last.returncode == 0, last.stdout + last.stderr
    conv_cu = (tree / "src/caffe/layers/cudnn_conv_layer.cu").read_text()
    conv_cpp = (tree / "src/caffe/layers/cudnn_conv_layer.cpp").read_text()
    assert "sync_conv_groups" not in conv_cu and "handle_[" not in conv_cu
    assert "cudnnSetConvolutionGroupCount" in conv_cpp and "ShapesUnchanged" in conv_cpp


def _caffe_compile_command():
    """The C++ compiler and the flags the build compiled libcaffe's sources
    with (CMake's flags.make for the caffe target), as an argument list."""
    import shlex
    cache = (CPU_BUILD_DIR / "CMakeCache.txt").read_text()
    compiler = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.+)$", cache, re.M).group(1)
    flags = (CPU_BUILD_DIR / "caffe/src/caffe/CMakeFiles/caffe.dir/flags.make").read_text()
    args = [compiler]
    for key in ("CXX_DEFINES", "CXX_INCLUDES", "CXX_FLAGS"):
        args += shlex.split(re.search(rf"^{key} = (.*)$", flags, re.M).group(1))
    return args


@pytest.mark.parametrize("source", ["src/caffe/layers/cost_volume_layer.cpp",
                                    "src/caffe/layers/soft_displacement_layer.cpp",
                                    "src/caffe/util/linear_resize.cpp"])
def test_compiles_without_the_x86_dispatch(source):
    """CostVolume's and SoftDisplacement's plain loops and LinearResize's
    cv::resize-only build, what a build without GCC/Clang on x86-64
    compiles alone (DCD_NO_X86_DISPATCH), still compile: the x86 build never
    does, so code that only the vector paths declare would go unnoticed."""
    path = CPU_BUILD_DIR / "caffe-src" / source
    run = subprocess.run(_caffe_compile_command() + ["-DDCD_NO_X86_DISPATCH", "-fsyntax-only",
                                                     str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
