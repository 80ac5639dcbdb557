"""Solvers: clipping on the 256-clip batch's gradient, solvers for N GPUs,
nets with another TSN segment count, and check_solver's warning."""
import subprocess
import sys

import pytest
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from dcd.nets.catalogue import NETS, get_config
from dcd.nets.generate import write_models
from dcd.nets.preflight import solver_warnings
from dcd.nets.solvers import solver
from dcd.util.paths import REPO_ROOT


def _parse(path, msg):
    text_format.Merge(path.read_text(), msg)
    return msg


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_clip_scales_with_iter_size_for_any_gpu_count(gpus):
    for dataset in ("ucf101", "kinetics"):
        for cfg in NETS[dataset]:
            # TSN's released flow solver: batch 128 (UCF101's flow schedule)
            batch = 128 if (dataset, cfg.name) == ("ucf101", "flow") else 256
            if batch % (cfg.batch_size * gpus):
                continue
            s = solver(dataset, cfg, "net.prototxt", gpus=gpus)
            assert s.iter_size * cfg.batch_size * gpus == batch
            assert s.clip_gradients == pytest.approx(20 * s.iter_size)


def test_a_batch_that_does_not_divide_256_is_refused():
    with pytest.raises(ValueError, match="batch_size 16 x 32 GPU"):
        solver("ucf101", get_config("ucf101", "static_1frame"), "net.prototxt", gpus=32)


def test_gpus_option_writes_only_solvers_naming_the_committed_nets(tmp_path):
    written = write_models(tmp_path, ("ucf101",), nets=["motion", "full"], gpus=4,
                           repo_root=REPO_ROOT)
    assert sorted(p.name for p in written) == ["full_solver.prototxt", "motion_solver.prototxt"]
    s = _parse(tmp_path / "models/ucf101/motion_solver.prototxt", caffe_pb2.SolverParameter())
    assert (s.iter_size, s.clip_gradients, s.net) == (8, 160, "models/ucf101/motion_train_val.prototxt")
    s = _parse(tmp_path / "models/ucf101/full_solver.prototxt", caffe_pb2.SolverParameter())
    assert (s.iter_size, s.clip_gradients) == (32, 640)


def test_segments_option_writes_whole_nets(tmp_path):
    written = write_models(tmp_path, ("ucf101",), nets=["motion"], segments=1,
                           repo_root=tmp_path)
    assert sorted(p.name for p in written) == [
        "motion_seg1_deploy.prototxt", "motion_seg1_solver.prototxt",
        "motion_seg1_train_val.prototxt"]
    net = _parse(tmp_path / "models/ucf101/motion_seg1_train_val.prototxt",
                 caffe_pb2.NetParameter())
    assert [l.video_data_param.num_segments for l in net.layer if l.type == "VideoData"] == [1, 1]
    s = _parse(tmp_path / "models/ucf101/motion_seg1_solver.prototxt", caffe_pb2.SolverParameter())
    assert s.net == "models/ucf101/motion_seg1_train_val.prototxt"
    assert s.snapshot_prefix == "snapshots/ucf101_motion_seg1_split1"


def test_make_models_tool_variants(tmp_path):
    tool = [sys.executable, str(REPO_ROOT / "tools/make_models.py")]
    refused = subprocess.run(tool + ["--gpus", "2"], capture_output=True, text=True)
    assert refused.returncode == 2 and "name a folder with --out" in refused.stderr
    ok = subprocess.run(tool + ["--gpus", "2", "--dataset", "ucf101", "--net", "static",
                                "--out", str(tmp_path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    s = _parse(tmp_path / "models/ucf101/static_solver.prototxt", caffe_pb2.SolverParameter())
    assert (s.iter_size, s.clip_gradients) == (32, 640)
    bad = subprocess.run(tool + ["--net", "static_3frames", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no net static_3frames" in bad.stderr


def test_check_solver_warns_about_clipping_the_accumulated_gradient(tmp_path):
    committed = REPO_ROOT / "models/ucf101/motion_solver.prototxt"
    assert solver_warnings(committed) == []
    s = _parse(committed, caffe_pb2.SolverParameter())
    s.clip_gradients = 20  # the first release's setting
    old = tmp_path / "old_solver.prototxt"
    old.write_text(str(s))
    (warning,) = solver_warnings(old)
    assert "clip_gradients 20 with iter_size 32" in warning and "640" in warning
    run = subprocess.run([sys.executable, str(REPO_ROOT / "tools/check_solver.py"), str(old)],
                         capture_output=True, text=True)
    assert "warning:" in run.stderr and "640" in run.stderr


def test_flow_follows_tsns_released_solver():
    s = solver("ucf101", get_config("ucf101", "flow"), "net.prototxt")
    assert s.base_lr == pytest.approx(0.005)  # float32 field
    assert (list(s.stepvalue), s.max_iter) == ([10000, 16000], 18000)
    assert (s.iter_size, s.clip_gradients) == (8, 160)  # 16 x 8 = 128 clips


def test_joint_static_rate_per_data_set():
    from dcd.nets.datasets import DATASETS
    full = get_config("ucf101", "full")
    assert DATASETS["ucf101"].static_lr_mult(full) == pytest.approx(0.2)  # 0.001 / 0.005
    assert DATASETS["kinetics"].static_lr_mult(get_config("kinetics", "full")) == 1.0
    assert DATASETS["ucf101"].static_lr_mult(get_config("ucf101", "full_finetune")) == 1.0
    s = solver("ucf101", get_config("ucf101", "full_finetune"), "net.prototxt")
    assert s.base_lr == pytest.approx(0.001) and (s.stepsize, s.max_iter) == (1500, 4500)
