import pytest

from dcd.caffeio.caffe_log import parse_test_outputs, parse_train_losses

LOG = """\
I1125 14:00:00.1 1 solver.cpp:218] Iteration 0 (0 iter/s, 0.01s/5 iters), loss = 0.7131
I1125 14:00:00.1 1 solver.cpp:237]     Train net output #0: loss = 0.7131 (* 1 = 0.7131 loss)
I1125 14:00:00.2 1 solver.cpp:218] Iteration 5 (250 iter/s, 0.02s/5 iters), loss = 0.52
I1125 14:00:00.3 1 solver.cpp:218] Iteration 10, loss = 1.5e-01
I1125 14:00:00.4 1 solver.cpp:330] Iteration 10, Testing net (#0)
I1125 14:00:00.5 1 solver.cpp:397]     Test net output #0: accuracy = 0.875
I1125 14:00:00.5 1 solver.cpp:397]     Test net output #1: loss = 0.31 (* 1 = 0.31 loss)
I1125 14:00:00.6 1 solver.cpp:330] Iteration 20, Testing net (#0)
I1125 14:00:00.7 1 solver.cpp:397]     Test net output #0: accuracy = 1
"""


def test_parse_train_losses_reads_both_log_formats():
    assert parse_train_losses(LOG) == [(0, 0.7131), (5, 0.52), (10, 0.15)]


def test_parse_test_outputs_groups_by_iteration():
    assert parse_test_outputs(LOG) == {10: {"accuracy": 0.875, "loss": 0.31},
                                       20: {"accuracy": 1.0}}


def test_parse_nothing():
    assert parse_train_losses("") == [] and parse_test_outputs("") == {}


def test_parse_clipping():
    from dcd.caffeio.caffe_log import parse_clipping
    log = ("I1125 14:00:00.1 1 sgd_solver.cpp:99] Gradient clipping: scaling down gradients "
           "(L2 norm 45.25 > 20) by scale factor 0.441989\n"
           "I1125 14:00:00.2 1 sgd_solver.cpp:99] Gradient clipping: scaling down gradients "
           "(L2 norm 1.2e+03 > 640) by scale factor 0.533\n")
    assert parse_clipping(log) == [(45.25, 20.0, 0.441989), (1200.0, 640.0, 0.533)]
    assert parse_clipping(LOG) == []


def test_signed_nan_and_inf_losses_parse():
    import math
    log = ("I1126 solver.cpp:239] Iteration 0 (0 iter/s, 1s/1 iters), loss = -nan\n"
           "I1126 solver.cpp:239] Iteration 1 (1 iter/s, 1s/1 iters), loss = inf\n"
           "I1126 solver.cpp:239] Iteration 2 (1 iter/s, 1s/1 iters), loss = 0.5\n")
    losses = parse_train_losses(log)
    assert [i for i, _ in losses] == [0, 1, 2]
    assert math.isnan(losses[0][1]) and math.isinf(losses[1][1]) and losses[2][1] == 0.5


# A canned log as `caffe train` writes it: glog prefix, SGD's lr lines, train
# net outputs, two test phases, and a year's turn in the timestamps.
FULL_LOG = """\
I1231 23:59:50.000000 7 solver.cpp:57] Initializing solver from parameters:
I1231 23:59:58.500000 7 solver.cpp:330] Iteration 0, Testing net (#0)
I1231 23:59:59.000000 7 solver.cpp:397]     Test net output #0: accuracy = 0.125
I1231 23:59:59.000000 7 solver.cpp:397]     Test net output #1: loss = 2.1 (* 1 = 2.1 loss)
I1231 23:59:59.500000 7 solver.cpp:218] Iteration 0 (0 iter/s, 9.5s/10 iters), loss = 2.2
I1231 23:59:59.500000 7 solver.cpp:237]     Train net output #0: loss = 2.2 (* 1 = 2.2 loss)
I1231 23:59:59.500000 7 sgd_solver.cpp:105] Iteration 0, lr = 0.01
I0101 00:00:09.500000 7 solver.cpp:218] Iteration 10 (1 iter/s, 10s/10 iters), loss = 1.25
I0101 00:00:09.500000 7 solver.cpp:237]     Train net output #0: loss = 1.25 (* 1 = 1.25 loss)
I0101 00:00:09.500000 7 sgd_solver.cpp:105] Iteration 10, lr = 0.001
I0101 00:00:19.500000 7 solver.cpp:447] Snapshotting to binary proto file snap_iter_20.caffemodel
I0101 00:00:19.750000 7 solver.cpp:310] Iteration 20, loss = 0.5
I0101 00:00:19.750000 7 solver.cpp:330] Iteration 20, Testing net (#0)
I0101 00:00:20.000000 7 solver.cpp:397]     Test net output #0: accuracy = 0.75
I0101 00:00:20.000000 7 solver.cpp:397]     Test net output #1: loss = 0.6 (* 1 = 0.6 loss)
I0101 00:00:20.000000 7 solver.cpp:315] Optimization Done.
"""


def test_parse_log_rows_with_seconds_lr_and_outputs():
    from dcd.caffeio.caffe_log import parse_log
    rows = parse_log(FULL_LOG)
    assert [r["iteration"] for r in rows] == [0, 10, 20]
    assert rows[0] == {"iteration": 0, "seconds": 8.5, "test/accuracy": 0.125, "test/loss": 2.1,
                       "loss": 2.2, "train/loss": 2.2, "lr": 0.01}
    assert rows[1] == {"iteration": 10, "seconds": 19.5, "loss": 1.25, "train/loss": 1.25,
                       "lr": 0.001}
    # Across midnight of 31 December: 29.75 s after the first line, not minus a year.
    assert rows[2]["seconds"] == pytest.approx(29.75)
    assert rows[2]["test/accuracy"] == 0.75 and rows[2]["loss"] == 0.5
    # The old views are read from the same rows.
    assert parse_train_losses(FULL_LOG) == [(0, 2.2), (10, 1.25), (20, 0.5)]
    assert parse_test_outputs(FULL_LOG)[20] == {"accuracy": 0.75, "loss": 0.6}


def test_plot_log_cli_writes_csv_and_png(tmp_path, capsys):
    import csv

    import cv2

    from toolhelpers import load_tool
    a, b = tmp_path / "static.log", tmp_path / "motion.log"
    a.write_text(FULL_LOG)
    b.write_text(LOG)
    tool = load_tool("plot_log")
    assert tool.main([str(a), str(b), "--out", str(tmp_path / "curves")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "curves" / "static.csv")))
    assert list(rows[0])[:4] == ["iteration", "seconds", "lr", "loss"]
    assert [r["iteration"] for r in rows] == ["0", "10", "20"]
    assert rows[1]["lr"] == "0.001" and rows[1]["test/accuracy"] == ""
    assert rows[2]["test/accuracy"] == "0.75"
    other = list(csv.DictReader(open(tmp_path / "curves" / "motion.csv")))
    assert [r["loss"] for r in other] == ["0.7131", "0.52", "0.15", ""]
    img = cv2.imread(str(tmp_path / "curves" / "training_curves.png"))
    assert img is not None and img.shape[1] > 800
    # Not a training log: one line naming it, and nothing written.
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    assert tool.main([str(a), str(bad), "--out", str(tmp_path / "none")]) == 2
    assert "notes.txt: no training iterations" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_demo_report_lines_show_the_curves(tmp_path):
    from types import SimpleNamespace

    from dcd.demo.pipeline import training_curves
    cfg = SimpleNamespace(data=tmp_path)
    assert training_curves(cfg) == []                      # nothing trained yet
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "static.log").write_text(FULL_LOG)
    (tmp_path / "runs" / "motion.log").write_text(LOG)
    lines = training_curves(cfg)
    assert "## Training curves" in lines and "![training curves](training_curves.png)" in lines
    assert (tmp_path / "training_curves.png").stat().st_size > 0
    (tmp_path / "runs" / "cut.log").write_text("I1231 23:59:50.000000 7 caffe.cpp:1] start\n")
    assert "cut.log: no training iterations" in training_curves(cfg)[-1]


def test_parse_iteration_speed():
    from dcd.caffeio.caffe_log import parse_iteration_speed
    log = ("I1204 15:00:01.0 1 solver.cpp:218] Iteration 0 (0 iter/s, 4.5s/1 iters), loss = 4.6\n"
           "I1204 15:00:02.0 1 solver.cpp:218] Iteration 1 (1.25 iter/s, 0.8s/1 iters), loss = 4.5\n"
           "I1204 15:00:04.0 1 solver.cpp:218] Iteration 3 (1 iter/s, 2s/2 iters), loss = nan\n"
           "I1204 15:00:04.0 1 solver.cpp:237]     Train net output #0: loss = 4.5\n")
    assert parse_iteration_speed(log) == [(0, 4.5), (1, 0.8), (3, 1.0)]
    assert parse_iteration_speed("Iteration 3, loss = 1") == []
