"""dcd.caffe_time: nets edited as text (engine, batch), `caffe time` output
parsed, and the caffe-time paths of tools/benchmark.py and
tools/benchmark_layers.py run on the CPU build with small nets."""
import json

import caffe
import pytest
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from dcd import caffe_time
from dcd.paths import REPO_ROOT, load_tool

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
                      "--no-progress"]) == 0
    bench = json.loads(out.read_text())
    assert bench["timer"] == "caffe time" and bench["engine"] == "CAFFE"
    assert bench["cudnn_used"] is False and bench["build"]["cuda"] is False
    r = bench["nets"]["motion"]["results"]["2"]
    assert r["frames"] == 4 and r["fps"] > 0 and 0 < r["disp_ms_per_frame"] <= r["ms_per_frame"]
    assert set(r["layers_forward_ms"]) >= {"cost", "disp", "fc"}
    assert "Motion" in capsys.readouterr().out
