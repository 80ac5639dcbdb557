"""dcd.perf.caffe_time: nets edited as text (engine, batch), `caffe time` output
parsed, and the caffe-time paths of tools/benchmark.py and
tools/benchmark_layers.py run on the CPU build with small nets."""
import json

import caffe
import pytest
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from dcd.perf import caffe_time
from dcd.util.paths import REPO_ROOT
from toolhelpers import load_tool

MOTION_224 = REPO_ROOT / "models" / "ucf101" / "motion_224_deploy.prototxt"


def parse(text):
    net = caffe_pb2.NetParameter()
    text_format.Parse(text, net)  # Parse, not Merge: a repeated singular field is an error
    return net


def test_set_engine_marks_every_cudnn_layer_and_nothing_else():
    text = MOTION_224.read_text()
    original, edited = parse(text), parse(caffe_time.set_engine(text, "CAFFE"))
    assert len(edited.layer) == len(original.layer)
    fields = {"Convolution": "convolution_param", "Pooling": "pooling_param",
              "ReLU": "relu_param", "Softmax": "softmax_param"}
    engines = 0
    for before, after in zip(original.layer, edited.layer):
        field = fields.get(after.type)
        if field:
            assert getattr(after, field).engine == 1, after.name  # CAFFE in every Engine enum
            getattr(after, field).ClearField("engine")
            if not before.HasField(field):
                after.ClearField(field)
            engines += 1
        assert after == before, after.name
    assert engines > 100


def test_set_engine_refuses_a_net_that_names_an_engine():
    with pytest.raises(ValueError, match="already names an engine"):
        caffe_time.set_engine(caffe_time.set_engine(MOTION_224.read_text(), "CAFFE"), "CUDNN")
    # the pycaffe timer's way: the new engine replaces the named one
    twice = caffe_time.set_engine(caffe_time.set_engine(MOTION_224.read_text(), "CAFFE"),
                                  "CUDNN", replace=True)
    assert "engine: CAFFE" not in twice
    assert twice.count("engine: CUDNN") == \
        caffe_time.set_engine(MOTION_224.read_text(), "CUDNN").count("engine: CUDNN")


def test_scale_batch_and_layer_types():
    text, shape = caffe_time.scale_batch(MOTION_224.read_text(), 8)
    assert shape == [16, 3, 224, 224]
    assert list(parse(text).layer[0].input_param.shape[0].dim) == [16, 3, 224, 224]
    types = dict(caffe_time.layer_types(text))
    assert types["data"] == "Input" and "SoftDisplacement" in types.values()
    with pytest.raises(ValueError, match="no Input layer"):
        caffe_time.scale_batch('name: "x"\n', 2)


def test_parse_caffe_time_and_failures():
    log = ("I1126 caffe.cpp:407]       data\tforward: 0.0012 ms.\n"
           "I1126 caffe.cpp:410]       data\tbackward: 0.002 ms.\n"
           "I1126 caffe.cpp:407]   conv1/7x7_s2\tforward: 1.5 ms.\n"
           "I1126 caffe.cpp:410]   conv1/7x7_s2\tbackward: 2 ms.\n"
           "I1126 caffe.cpp:415] Average Forward pass: 12.3 ms.\n"
           "I1126 caffe.cpp:417] Average Backward pass: 20 ms.\n")
    got = caffe_time.parse_caffe_time(log)
    assert got["layers"] == [("data", 0.0012, 0.002), ("conv1/7x7_s2", 1.5, 2.0)]
    assert got["forward_ms"] == 12.3 and got["backward_ms"] == 20.0
    with pytest.raises(RuntimeError, match="no 'Average Forward pass'"):
        caffe_time.parse_caffe_time("F1126 check failed")


def test_caffe_time_args_ask_for_the_test_phase():
    args = caffe_time.caffe_time_args("bin/caffe", "net.prototxt", iterations=7)
    assert args == ["bin/caffe", "time", "-model=net.prototxt", "-iterations=7", "-phase=TEST"]
    assert caffe_time.caffe_time_args("c", "m", gpu=1, phase="TRAIN")[-2:] == ["-phase=TRAIN",
                                                                               "-gpu=1"]
    assert not any(a.startswith("-phase") for a in caffe_time.caffe_time_args("c", "m", phase=None))
    with pytest.raises(ValueError, match="phase must be"):
        caffe_time.caffe_time_args("c", "m", phase="test")


def test_run_caffe_time_builds_the_test_phase_net():
    # A layer only in the TRAIN phase with a bottom nobody makes: the net
    # cannot be built in TRAIN, so only a TEST-phase `caffe time` runs.
    from dcd.util.paths import caffe_binary
    text = "\n".join([
        'name: "phase"', "layer {", '  name: "data"', '  type: "Input"', '  top: "data"',
        "  input_param {", "    shape {", "      dim: 2", "      dim: 3", "    }", "  }", "}",
        "layer {", '  name: "relu"', '  type: "ReLU"', '  bottom: "data"', '  top: "out"', "}",
        "layer {", '  name: "train_only"', '  type: "ReLU"', '  bottom: "missing"',
        '  top: "t"', "  include {", "    phase: TRAIN", "  }", "}"]) + "\n"
    got = caffe_time.run_caffe_time(caffe_binary(), text, iterations=2)
    assert [n for n, _, _ in got["layers"]] == ["data", "relu"]
    with pytest.raises(RuntimeError, match="caffe time failed"):
        caffe_time.run_caffe_time(caffe_binary(), text, iterations=2, phase="TRAIN")


def test_cudnn_algorithms_from_a_canned_log():
    # The lines patch 0004's CuDNNConvolutionLayer logs once per shape.
    log = "\n".join([
        "I1204 15:00:00.1 7 cudnn_conv_layer.cpp:150] CuDNNConvolution conv1/7x7_s2 bottom "
        "8 3 224 224 (1204224) group 1: forward IMPLICIT_PRECOMP_GEMM (FMA, 4096 B workspace; "
        "8 ranked, pick 2)",
        "I1204 15:00:00.2 7 cudnn_conv_layer.cpp:150] CuDNNConvolution conv1/subsample bottom "
        "8 64 224 224 (25690112) group 64: forward IMPLICIT_GEMM (FMA, 0 B workspace; "
        "0 ranked, pick 0)",
        "W1204 15:00:00.2 7 cudnn_conv_layer.cpp:140] CuDNNConvolution conv1/subsample: no "
        "ranked forward algorithm fits 100 bytes of workspace in an allowed math type; "
        "IMPLICIT_GEMM",
        "I1204 15:00:00.3 7 cudnn_conv_layer.cpp:230] CuDNNConvolution conv1/7x7_s2 bottom 0: "
        "backward filter ALGO_1 (FMA, 0 B workspace), backward data ALGO_1 (DEFAULT, "
        "65536 B workspace)",
        "I1204 15:00:01 7 caffe.cpp:415] Average Forward pass: 1.5 ms."])
    got = caffe_time.cudnn_algorithms(log)
    assert got["forward"] == {"IMPLICIT_PRECOMP_GEMM": 1, "IMPLICIT_GEMM": 1}
    assert got["backward_filter"] == {"ALGO_1": 1} and got["backward_data"] == {"ALGO_1": 1}
    assert got["math"] == {"FMA": 3, "DEFAULT": 1} and got["max_workspace_bytes"] == 65536
    assert got["fallbacks"] == ["conv1/subsample (forward)"]
    assert caffe_time.cudnn_algorithms("I1204 caffe.cpp:415] Average Forward pass: 1 ms.") == {}


def test_chain_prototxt_is_a_valid_net():
    net = parse(caffe_time.chain_prototxt(8, 12, 2, 3))
    assert [layer.type for layer in net.layer] == ["Input", "Input", "CostVolume",
                                                   "SoftDisplacement", "BilinearWarp"]
    assert net.force_backward and net.layer[2].cost_volume_param.max_displacement == 2


def test_benchmark_layers_caffe_time_on_cpu(tmp_path):
    out = tmp_path / "layers.json"
    tool = load_tool("benchmark_layers")
    assert tool.main(["--caffe-time", "--channels", "4", "--sizes", "12", "--displacements", "1",
                      "--batches", "2", "--json", str(out)]) == 0
    bench = json.loads(out.read_text())
    assert bench["mode"] == "cpu" and bench["build"]["cuda"] is False
    (config,) = bench["configs"]
    assert config["batch"] == 2 and set(config["layers"]) == {"CostVolume", "SoftDisplacement",
                                                               "BilinearWarp"}
    assert config["displacement_map"]["forward_ms_per_frame"] > 0


def test_benchmark_pycaffe_goes_with_caffe_time():
    with pytest.raises(SystemExit):
        load_tool("benchmark").main(["--pycaffe", "--nets", str(MOTION_224)])


def test_benchmark_caffe_time_on_cpu(tmp_path, capsys):
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 24, 24]))      # one frame pair
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=3, pad=1,
                            weight_filler=dict(type="gaussian", std=0.1))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.fa, n.fb = L.Slice(n.conv1, slice_param=dict(axis=0), ntop=2)
    n.cost = L.CostVolume(n.fa, n.fb, cost_volume_param=dict(max_displacement=2))
    n.disp = L.SoftDisplacement(n.cost, soft_displacement_param=dict(max_displacement=2))
    n.pool = L.Pooling(n.disp, pool=P.Pooling.AVE, global_pooling=True)
    n.fc = L.InnerProduct(n.pool, num_output=3, weight_filler=dict(type="gaussian", std=0.1))
    net = tmp_path / "motion_deploy.prototxt"
    net.write_text(str(n.to_proto()))
    out = tmp_path / "bench.json"
    tool = load_tool("benchmark")
    assert tool.main(["--caffe-time", "--nets", str(net), "--batch-sizes", "1", "2",
                      "--iters", "2", "--engine", "CAFFE", "--json", str(out),
                      "--no-progress", "--pycaffe"]) == 0
    bench = json.loads(out.read_text())
    assert bench["timer"] == "caffe time" and bench["engine"] == "CAFFE"
    assert bench["phase"] == "TEST"
    assert bench["cudnn_used"] is False and bench["build"]["cuda"] is False
    r = bench["nets"]["motion"]["results"]["2"]
    assert r["frames"] == 4 and r["fps"] > 0 and 0 < r["disp_ms_per_frame"] <= r["ms_per_frame"]
    assert set(r["layers_forward_ms"]) >= {"cost", "disp", "fc"}
    # pycaffe's forward of the same net beside it (same frames, same phase).
    assert r["phase"] == "TEST" and r["pycaffe_ms_per_frame"] > 0
    assert r["pycaffe_ms_per_forward"] == pytest.approx(4 * r["pycaffe_ms_per_frame"])
    printed = capsys.readouterr().out
    assert "Motion" in printed and "pycaffe forward" in printed
