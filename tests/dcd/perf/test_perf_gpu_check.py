"""dcd.perf.gpu_check (tools/gpu_check.sh's training step) and dcd.caffeio.buildinfo,
on the CPU: the generated frames, the solver rewritten for the short run,
and the build record of the pycaffe in use."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from dcd.caffeio import buildinfo
from dcd.perf import gpu_check
from dcd.util.paths import REPO_ROOT


def test_make_train_data(tmp_path):
    list_file = gpu_check.make_train_data(tmp_path, classes=3, per_class=2, frames=3)
    entries = [line.split() for line in list_file.read_text().splitlines()]
    assert [int(e[2]) for e in entries] == [0, 0, 1, 1, 2, 2]
    for video, frames, _ in entries:
        images = sorted((tmp_path / video).glob("img_*.jpg"))
        assert len(images) == int(frames) == 3
        assert cv2.imread(str(images[0])).shape == (256, 340, 3)


def original_net():
    net = caffe_pb2.NetParameter()
    text_format.Parse((REPO_ROOT / "models/ucf101/motion_train_val.prototxt").read_text(), net)
    return net


def test_check_solver_keeps_the_recipe_and_swaps_the_data(tmp_path):
    list_file = tmp_path / "list.txt"
    list_file.write_text("v 8 0\n")
    solver_path = gpu_check.check_solver(gpu_check.MOTION_SOLVER, tmp_path / "frames", list_file,
                                         tmp_path, iters=20, iter_size=4)
    solver, original = caffe_pb2.SolverParameter(), caffe_pb2.SolverParameter()
    text_format.Parse(solver_path.read_text(), solver)
    text_format.Parse(gpu_check.MOTION_SOLVER.read_text(), original)
    assert (solver.max_iter, solver.iter_size, solver.display, solver.snapshot) == (20, 4, 1, 0)
    assert solver.test_interval > solver.max_iter and not solver.test_initialization
    for field in ("base_lr", "momentum", "weight_decay", "clip_gradients", "lr_policy"):
        assert getattr(solver, field) == getattr(original, field), field
    net = caffe_pb2.NetParameter()
    text_format.Parse(open(solver.net).read(), net)
    bn = [layer.batch_norm_param.use_global_stats for layer in net.layer
          if layer.type == "BatchNorm"]
    assert bn and not any(bn)
    # partial BN's FrozenBN layers became BatchNorm on batch statistics, with
    # BatchNorm's three (unlearned) parameter specs
    assert not [layer for layer in net.layer if layer.type == "FrozenBN"]
    frozen = [layer for layer in original_net().layer if layer.type == "FrozenBN"]
    layers = {layer.name: layer for layer in net.layer}
    assert frozen and all(layers[f.name].type == "BatchNorm" for f in frozen)
    for f in frozen:
        assert [p.lr_mult for p in layers[f.name].param] == [0, 0, 0]
    data = [layer for layer in net.layer if layer.type == "VideoData"]
    assert len(data) == 2
    for layer in data:
        p = layer.video_data_param
        assert p.source == str(list_file) and p.backend == p.FOLDER
        assert p.root_folder.startswith(str(tmp_path / "frames"))


def test_caffe_build_reads_the_cpu_build():
    info = buildinfo.caffe_build()
    assert info["cuda"] is False and info["cudnn"] is False and info["build_dir"]
    assert buildinfo.pycaffe_gpu_unavailable_reason().endswith("is a CPU_ONLY build")


def test_build_record_of_a_bundle(tmp_path):
    (tmp_path / "python" / "caffe").mkdir(parents=True)
    (tmp_path / "build_info.json").write_text(json.dumps({"cuda": True, "cudnn": True,
                                                          "nccl": False}))
    record = buildinfo._build_record(tmp_path / "python" / "caffe")
    assert record.name == "build_info.json"


def test_summary_counts_steps(tmp_path, capsys):
    for i, (name, status) in enumerate([("gtests", "passed"), ("pycaffe_parity", "skipped")]):
        (tmp_path / f"step_{i:02d}_{name}.json").write_text(json.dumps(
            {"name": name, "status": status, "seconds": 1.5, "note": "x"}))
    assert gpu_check.summary(tmp_path) == 0
    assert "1 passed, 0 failed, 1 skipped" in capsys.readouterr().out
    (tmp_path / "step_02_train.json").write_text(json.dumps(
        {"name": "train", "status": "failed", "seconds": 2, "note": "exit 1"}))
    assert gpu_check.summary(tmp_path) == 1
    assert json.loads((tmp_path / "summary.json").read_text())["counts"]["failed"] == 1


def test_gpu_check_script_help_and_missing_bundle(tmp_path):
    script = REPO_ROOT / "tools" / "gpu_check.sh"
    help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "tools/gpu_check.sh run" in help_text.stdout
    run = subprocess.run([str(script), "run", "--bundle", str(tmp_path / "nope"), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 1 and "no bundle at" in run.stderr
    pack = subprocess.run([str(script), "pack", "--build", str(tmp_path / "nobuild")],
                          capture_output=True, text=True)
    assert pack.returncode == 1 and "run 'make cuda' first" in pack.stderr


def test_packed_libraries_load_the_caffe_binary(tmp_path):
    """The libraries tools/gpu_check.sh packs (GDAL and GDCM as stand-ins)
    satisfy the loader: the CPU build's caffe starts with them first on the
    path, and its GDAL is the stand-in."""
    import os
    from dcd.util.paths import caffe_binary
    caffe = caffe_binary()
    copied, stubbed = gpu_check.pack_libraries([caffe], tmp_path)
    assert "libopencv_imgcodecs.so.406" in copied and "libgdal.so.32" in stubbed
    assert not any(gpu_check.SYSTEM_LIBS.match(name) for name in copied)
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    ldd = subprocess.run(["ldd", str(caffe)], capture_output=True, text=True, env=env).stdout
    assert f"libgdal.so.32 => {tmp_path}/libgdal.so.32" in ldd and "not found" not in ldd
    run = subprocess.run([str(caffe), "--version"], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and "caffe version" in run.stdout + run.stderr


@pytest.mark.slow  # copies the standard library and numpy (~130 MB)
def test_carried_python_imports_pycaffe_on_its_own(tmp_path):
    """tools/gpu_check.sh pack-python: the interpreter the bundle carries for
    the pycaffe step runs the build's pycaffe with an empty environment, from
    its own standard library and numpy, not this machine's."""
    script = REPO_ROOT / "tools" / "gpu_check.sh"
    bundle = tmp_path / "bundle"
    pack = subprocess.run([str(script), "pack-python", "--bundle", str(bundle), "--build",
                           str(REPO_ROOT / "build" / "cpu")], capture_output=True, text=True,
                          cwd=REPO_ROOT)
    assert pack.returncode == 0, pack.stderr
    code = ("import sys, numpy, caffe; from caffe import layers as L; n = caffe.NetSpec(); "
            "n.x = L.Input(shape=dict(dim=[1, 2])); n.y = L.Power(n.x, power=2); "
            "import tempfile; f = tempfile.NamedTemporaryFile('w', suffix='.prototxt', "
            "delete=False); f.write(str(n.to_proto())); f.close(); "
            "net = caffe.Net(f.name, caffe.TEST); net.blobs['x'].data[...] = [[3, -2]]; "
            "print(sys.prefix, numpy.__file__, caffe.__file__, net.forward()['y'].tolist())")
    run = subprocess.run(["env", "-i", f"LD_LIBRARY_PATH={bundle / 'lib'}", "GLOG_minloglevel=2",
                          str(bundle / "python311" / "bin" / "pycaffe-python"), "-c", code],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    prefix, numpy_file, caffe_file, y = run.stdout.split(" ", 3)
    assert prefix == str(bundle / "python311")
    assert numpy_file.startswith(str(bundle / "python311" / "site"))
    assert caffe_file.startswith(str(bundle / "python"))
    assert y.strip() == "[[9.0, 4.0]]"


def test_check_solver_can_keep_partial_bn_frozen(tmp_path):
    list_file = gpu_check.make_train_data(tmp_path / "frames", classes=2, per_class=1, frames=3)
    static = gpu_check.SOLVERS["static"]
    net_name = re.search(r'^net: "([^"]+)"', static.read_text(), re.M).group(1)
    assert 'type: "FrozenBN"' in (REPO_ROOT / net_name).read_text()
    for frozen, out in ((True, tmp_path / "frozen"), (False, tmp_path / "free")):
        out.mkdir()
        gpu_check.check_solver(static, tmp_path / "frames", list_file, out, 10, 2,
                               frozen_bn=frozen)
        text = (out / Path(net_name).name).read_text()
        assert ('type: "FrozenBN"' in text) is frozen
        assert ("use_global_stats: true" in text) is False


def test_gtest_results_from_a_canned_report(tmp_path):
    xml = tmp_path / "gtests.xml"
    xml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<testsuites tests="9" failures="1" errors="0" name="AllTests">\n'
        '  <testsuite name="CostVolumeLayerTest/0" tests="3" failures="0" errors="0"/>\n'
        '  <testsuite name="CostVolumeLayerTest/1" tests="3" failures="0" errors="0"/>\n'
        '  <testsuite name="CuDNNConvolutionLayerTest/0" tests="2" failures="1" errors="0"/>\n'
        '  <testsuite name="CuDNNSoftmaxLayerTest/1" tests="1" failures="0" errors="0"/>\n'
        '</testsuites>\n')
    got = gpu_check.gtest_results(xml)
    assert got["tests"] == 9 and got["failures"] == 1
    assert got["cudnn"] == {"tests": 3, "failures": 1}
    assert got["suites"]["CostVolumeLayerTest"] == [6, 0]
    assert gpu_check.main(["gtests", "--xml", str(xml), "--out", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "gtests.json").read_text())["cudnn"]["tests"] == 3


def _tiny_deploy(path):
    import caffe
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3,
                           weight_filler=dict(type="gaussian", std=1.0))
    n.bn = L.BatchNorm(n.conv, batch_norm_param=dict(use_global_stats=True))
    path.write_text(str(n.to_proto()))
    return path


def test_random_weights_with_the_caffe_binary_alone(tmp_path):
    import caffe
    from dcd.util.paths import caffe_binary
    deploy = _tiny_deploy(tmp_path / "tiny_deploy.prototxt")
    out = gpu_check.random_weights(caffe_binary(), deploy, tmp_path / "w.caffemodel")
    net = caffe.Net(str(deploy), caffe.TEST, weights=str(out))
    assert net.params["conv"][0].data.std() > 0.5  # the gaussian filler's, not zeros
    assert not (tmp_path / "w_init").exists()
    broken = tmp_path / "broken_deploy.prototxt"
    broken.write_text('layer { name: "x" type: "NoSuchLayer" top: "x" }\n')
    with pytest.raises(RuntimeError, match="made no weights"):
        gpu_check.random_weights(caffe_binary(), broken, tmp_path / "b.caffemodel")


def test_fold_nets_runs_the_tool_on_random_weights(tmp_path):
    from dcd.util.paths import caffe_binary
    deploy = _tiny_deploy(tmp_path / "static_deploy.prototxt")
    # A stand-in for tools/fold_bn.py with its command line: DEPLOY WEIGHTS --out PATH.
    tool = tmp_path / "fold_stand_in.py"
    tool.write_text("import shutil, sys\n"
                    "deploy, weights, flag, out = sys.argv[1:5]\n"
                    "assert flag == '--out' and weights.endswith('.caffemodel')\n"
                    "shutil.copy(deploy, out)\n")
    folded = gpu_check.fold_nets(caffe_binary(), [deploy], tmp_path / "folded", sys.executable,
                                 gpu=None, fold_tool=tool)
    assert folded == {"static": tmp_path / "folded" / "timed" / "static_deploy.prototxt"}
    assert folded["static"].read_text() == deploy.read_text()
    with pytest.raises(FileNotFoundError, match="missing"):
        gpu_check.fold_nets(caffe_binary(), [deploy], tmp_path / "f2", sys.executable,
                            fold_tool=tmp_path / "nope.py")


def test_gpu_check_run_says_why_folding_is_skipped(tmp_path):
    """The script end to end on the CPU build, with only the fold step: the
    missing tool is a skip with its reason, and the results come back."""
    from dcd.util.paths import CPU_BUILD_DIR
    bundle = tmp_path / "bundle"
    (bundle / "bin").mkdir(parents=True)
    (bundle / "bin" / "caffe").symlink_to(CPU_BUILD_DIR / "caffe" / "tools" / "caffe")
    (bundle / "bin" / "test.testbin").symlink_to(CPU_BUILD_DIR / "caffe" / "tools" / "caffe")
    env = dict(os.environ, DCD_FOLD_BN=str(tmp_path / "no_fold_bn.py"), TMPDIR=str(tmp_path))
    run = subprocess.run([str(REPO_ROOT / "tools" / "gpu_check.sh"), "run", "--bundle",
                          str(bundle), "--out", str(tmp_path / "out"), "--only", "fold",
                          "--python", sys.executable], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {s["name"]: s for s in
             json.loads((tmp_path / "out" / "summary.json").read_text())["steps"]}
    assert steps["table9_folded"]["status"] == "skipped"
    assert steps["table9_folded"]["note"] == f"skipped: {tmp_path / 'no_fold_bn.py'} missing"
    assert (tmp_path / "out" / "environment.json").is_file()
