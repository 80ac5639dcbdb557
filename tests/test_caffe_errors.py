"""Caffe-side refusals (caffe_layers/patches/0005-* to 0008-*): a failed check ends
`caffe` and pycaffe with its message as the last line, exit status 1 and no
stack trace (DCD_STACK_TRACE=1 brings glog's trace back); labels outside the
classifier are refused by SoftmaxWithLoss and Accuracy; `--weights` that
leave layers without weights are named in a warning; an oversized
displacement window is refused by layer name before any blob is sized."""
import os
import subprocess
import sys

import pytest

from dcd.util.paths import caffe_binary

TRACE_LINE = "*** Check failure stack trace"


def run(cmd, cwd, trace=False):
    env = {k: v for k, v in os.environ.items() if k != "DCD_STACK_TRACE"}
    env["GLOG_logtostderr"] = "1"
    env["GLOG_minloglevel"] = "0"  # tools/demo.py, imported by other tests, sets 2
    if trace:
        env["DCD_STACK_TRACE"] = "1"
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def write_net(path, num_classes, label, layers, ignore_label=None):
    """Two items of 3 numbers, labels all `label`, an 8-way classifier."""
    loss_param = f"loss_param {{ ignore_label: {ignore_label} }}" if ignore_label is not None else ""
    body = {
        "loss": f"""layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label"
          top: "loss" {loss_param} }}""",
        "accuracy": f"""layer {{ name: "acc" type: "Accuracy" bottom: "score" bottom: "label"
          top: "acc" accuracy_param {{ {"ignore_label: %d" % ignore_label if ignore_label is not None else ""} }} }}""",
    }
    path.write_text(f"""name: "labels"
layer {{ name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param {{ shape {{ dim: 2 dim: 3 }} shape {{ dim: 2 }}
    data_filler {{ type: "gaussian" std: 1 }} data_filler {{ type: "constant" value: {label} }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "score"
  inner_product_param {{ num_output: {num_classes} weight_filler {{ type: "xavier" }} }} }}
{"".join(body[name] + chr(10) for name in layers)}""")
    return path


def write_solver(path, net):
    path.write_text(f'net: "{net}"\nbase_lr: 0.01\nmax_iter: 1\nlr_policy: "fixed"\n'
                    f'display: 1\nsnapshot_after_train: false\nsolver_mode: CPU\n')
    return path


def bad_window_net(path):
    path.write_text("""name: "bad_window"
layer { name: "a" type: "Input" top: "a" top: "b"
  input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "cv" type: "CostVolume" bottom: "a" bottom: "b" top: "cost"
  cost_volume_param { max_displacement: 100000 } }
""")
    return path


WINDOW_MESSAGE = ("CostVolume layer cv: the displacement window of max_displacement_h 100000 "
                  "and max_displacement_w 100000 has")


def test_caffe_tool_prints_message_last_without_trace(tmp_path):
    net = bad_window_net(tmp_path / "bad.prototxt")
    proc = run([caffe_binary(), "time", f"--model={net}", "--iterations=1"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert WINDOW_MESSAGE in last_line(proc.stderr), proc.stderr
    assert "40000400001 displacements" in last_line(proc.stderr)
    assert TRACE_LINE not in proc.stderr
    assert "blob size exceeds INT_MAX" not in proc.stderr


def test_stack_trace_on_demand(tmp_path):
    net = bad_window_net(tmp_path / "bad.prototxt")
    proc = run([caffe_binary(), "time", f"--model={net}", "--iterations=1"], tmp_path, trace=True)
    assert proc.returncode != 0
    assert WINDOW_MESSAGE in proc.stderr
    assert TRACE_LINE in proc.stderr


def test_pycaffe_prints_message_last_without_trace(tmp_path):
    net = bad_window_net(tmp_path / "bad.prototxt")
    code = f"import caffe\ncaffe.Net({str(net)!r}, caffe.TEST)\nprint('not reached')\n"
    proc = run([sys.executable, "-c", code], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert WINDOW_MESSAGE in last_line(proc.stderr), proc.stderr
    assert TRACE_LINE not in proc.stderr
    assert "not reached" not in proc.stdout


@pytest.mark.parametrize("layer,label", [("loss", 12), ("accuracy", 12), ("loss", -1),
                                         ("accuracy", 8)])
def test_label_beyond_classifier_refused(tmp_path, layer, label):
    net = write_net(tmp_path / "net.prototxt", 8, label, [layer])
    solver = write_solver(tmp_path / "solver.prototxt", net)
    proc = run([caffe_binary(), "train", f"--solver={solver}"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    name, kind = {"loss": ("loss", "SoftmaxWithLoss"), "accuracy": ("acc", "Accuracy")}[layer]
    line = last_line(proc.stderr)
    assert f"{kind} layer {name}: label {label} (item 0 of blob 'label') is not a class: " \
           f"the scores have 8 classes, 0..7" in line, proc.stderr
    assert TRACE_LINE not in proc.stderr


@pytest.mark.parametrize("layer", ["loss", "accuracy"])
def test_ignore_label_still_ignored(tmp_path, layer):
    net = write_net(tmp_path / "net.prototxt", 8, 12, [layer], ignore_label=12)
    solver = write_solver(tmp_path / "solver.prototxt", net)
    proc = run([caffe_binary(), "train", f"--solver={solver}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Optimization Done" in proc.stderr


def test_weights_missing_layers_warned(tmp_path):
    import caffe

    # The weights of a net that has "ip" but not "ip2".
    short = tmp_path / "short.prototxt"
    short.write_text("""name: "short"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "score"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
""")
    weights = tmp_path / "short.caffemodel"
    caffe.Net(str(short), caffe.TEST).save(str(weights))
    net = tmp_path / "net.prototxt"
    net.write_text("""name: "full"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "score"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "score" top: "score" }
layer { name: "ip2" type: "InnerProduct" bottom: "score" top: "score2"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "ip3" type: "InnerProduct" bottom: "score2" top: "score3"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score3" bottom: "label" top: "loss" }
""")
    solver = write_solver(tmp_path / "solver.prototxt", net)
    proc = run([caffe_binary(), "train", f"--solver={solver}", f"--weights={weights}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "got no weights" in line]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("W")
    assert (f"Net full: 2 layer(s) with parameters got no weights from {weights} and keep "
            f"their initial values: ip2, ip3.") in warnings[0]

    # Weights of the whole net: no warning.
    full = tmp_path / "full.caffemodel"
    caffe.Net(str(net), caffe.TEST).save(str(full))
    proc = run([caffe_binary(), "train", f"--solver={solver}", f"--weights={full}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "got no weights" not in proc.stderr
