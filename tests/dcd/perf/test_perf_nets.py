"""tools/benchmark.py on small generated nets (a static one and one with a
cost volume + soft displacement)."""
import json
import os

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe
from caffe import layers as L, params as P  # noqa: E402

from dcd.perf import nets as benchmark  # noqa: E402
from scoring_helpers import tiny_deploy  # noqa: E402
from toolhelpers import load_tool  # noqa: E402


def motion_deploy(path, slice_point=None):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 32, 32]))      # one frame pair, snippet layout
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=3, pad=1,
                            weight_filler=dict(type="gaussian", std=0.1))
    n.fa, n.fb = L.Slice(n.conv1, slice_param=dict(axis=0, **(
        {"slice_point": [slice_point]} if slice_point else {})), ntop=2)
    n.cost = L.CostVolume(n.fa, n.fb, cost_volume_param=dict(max_displacement=2))
    n.disp = L.SoftDisplacement(n.cost, soft_displacement_param=dict(max_displacement=2))
    n.conv2 = L.Convolution(n.disp, num_output=4, kernel_size=3,
                            weight_filler=dict(type="gaussian", std=0.1))
    n.pool = L.Pooling(n.conv2, pool=P.Pooling.AVE, global_pooling=True)
    n.fc = L.InnerProduct(n.pool, num_output=3, weight_filler=dict(type="gaussian", std=0.1))
    path.write_text(str(n.to_proto()))
    return path


def test_benchmark_tool_on_small_nets(tmp_path, capsys):
    static = tiny_deploy(tmp_path / "static_deploy.prototxt", rows=4, size=32)
    motion = motion_deploy(tmp_path / "motion_deploy.prototxt")
    # Slices off one fixed row: at batch 2 its cost volume bottoms differ and Caffe aborts.
    fixed = motion_deploy(tmp_path / "fixed_deploy.prototxt", slice_point=1)
    out = tmp_path / "bench.json"
    tool = load_tool("benchmark")
    rc = tool.main(["--nets", str(static), str(motion), str(fixed), "--batch-sizes", "1", "2",
                    "--iters", "2", "--warmup", "1", "--json", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 1, text                          # one net failed: non-zero
    bench = json.loads(out.read_text())
    f = bench["nets"]["fixed"]
    assert "1" in f["results"] and "2" not in f["results"] and "died" in f["error"]
    assert "note: fixed: the timing process died" in text
    s, m = bench["nets"]["static"], bench["nets"]["motion"]
    assert s["disp_layer"] is None and m["disp_layer"] == "disp"
    assert s["results"]["1"]["frames"] == 4 and s["results"]["2"]["frames"] == 8
    r = m["results"]["2"]
    assert r["frames"] == 4 and r["fps"] > 0
    # Timed apart from the whole net, so no order between the two is asserted
    # (under load the part measured slower than the whole).
    assert 0 < r["disp_ms_per_frame"] < float("inf") and 0 < r["ms_per_frame"] < float("inf")
    # Paper's layout: columns by branch, paper rows beside ours.
    assert "Static App." in text and "Motion" in text
    assert "(15.4)+3.33" in text and "840" in text
    assert "ours ms/frame (batch 2)" in text


def test_missing_default_nets_fail_clearly(tmp_path, capsys):
    tool = load_tool("benchmark")
    assert tool.main(["--nets", str(tmp_path / "nope_deploy.prototxt")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        benchmark.run_benchmark([tmp_path / "nope.prototxt"])


def test_unknown_disp_layer_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no layer named"):
        benchmark.measure_net(motion_deploy(tmp_path / "m.prototxt"), batch_sizes=(1,),
                              iters=1, warmup=0, disp_layer="nope")


def test_engine_caffe_and_build_in_json(tmp_path):
    motion = motion_deploy(tmp_path / "motion_deploy.prototxt")
    out = tmp_path / "bench.json"
    tool = load_tool("benchmark")
    assert tool.main(["--nets", str(motion), "--batch-sizes", "1", "--iters", "1",
                      "--warmup", "0", "--engine", "CAFFE", "--json", str(out),
                      "--no-progress"]) == 0
    bench = json.loads(out.read_text())
    assert bench["engine"] == "CAFFE" and bench["cudnn_used"] is False
    assert bench["build"]["cuda"] is False and bench["device"].startswith("CPU")
    assert bench["nets"]["motion"]["results"]["1"]["disp_ms_per_frame"] > 0


def test_default_nets_prefer_the_224_maps(tmp_path):
    for name in ("static", "motion", "motion_224", "appchange", "full"):
        (tmp_path / f"{name}_deploy.prototxt").write_text("")
    names = [p.name for p in benchmark.default_nets(tmp_path)]
    assert names == ["static_deploy.prototxt", "motion_224_deploy.prototxt",
                     "appchange_deploy.prototxt", "full_deploy.prototxt"]
    assert benchmark.column("motion_224") == "Motion" and benchmark.column("x") == "x"


def test_benchmark_fold_bn(tmp_path, capsys):
    from scoring_helpers import tiny_bn_deploy
    deploy, weights = tiny_bn_deploy(tmp_path / "static_deploy.prototxt",
                                     tmp_path / "static.caffemodel", rows=2, size=32)
    out = tmp_path / "bench.json"
    rc = load_tool("benchmark").main(["--nets", str(deploy), "--weights", str(weights),
                                      "--batch-sizes", "1", "--iters", "1", "--warmup", "0",
                                      "--fold-bn", "--json", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr()
    bench = json.loads(out.read_text())
    assert bench["fold_bn"] is True and bench["nets"]["static"]["results"]["1"]["frames"] == 2


def test_table3_times_the_committed_motion_nets():
    """Table 3's FPS column: 112x112 (motion) and 224x224 (motion_224) maps."""
    from dcd.perf.nets import TABLE3_NETS
    assert [p.name for p in TABLE3_NETS] == ["motion_deploy.prototxt", "motion_224_deploy.prototxt"]
    assert all(p.is_file() for p in TABLE3_NETS)
