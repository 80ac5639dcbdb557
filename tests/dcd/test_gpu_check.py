"""dcd.gpu_check (tools/gpu_check.sh's training step) and dcd.buildinfo,
on the CPU: the generated frames, the solver rewritten for the short run,
and the build record of the pycaffe in use."""
import json
import subprocess

import cv2
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from dcd import buildinfo, gpu_check
from dcd.paths import REPO_ROOT


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
    from dcd.paths import caffe_binary
    caffe = caffe_binary()
    copied, stubbed = gpu_check.pack_libraries([caffe], tmp_path)
    assert "libopencv_imgcodecs.so.406" in copied and "libgdal.so.32" in stubbed
    assert not any(gpu_check.SYSTEM_LIBS.match(name) for name in copied)
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    ldd = subprocess.run(["ldd", str(caffe)], capture_output=True, text=True, env=env).stdout
    assert f"libgdal.so.32 => {tmp_path}/libgdal.so.32" in ldd and "not found" not in ldd
    run = subprocess.run([str(caffe), "--version"], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and "caffe version" in run.stdout + run.stderr
