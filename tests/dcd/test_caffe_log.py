from dcd.caffe_log import parse_test_outputs, parse_train_losses

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
    from dcd.caffe_log import parse_clipping
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


def test_parse_iteration_speed():
    from dcd.caffe_log import parse_iteration_speed
    log = ("I1204 15:00:01.0 1 solver.cpp:218] Iteration 0 (0 iter/s, 4.5s/1 iters), loss = 4.6\n"
           "I1204 15:00:02.0 1 solver.cpp:218] Iteration 1 (1.25 iter/s, 0.8s/1 iters), loss = 4.5\n"
           "I1204 15:00:04.0 1 solver.cpp:218] Iteration 3 (1 iter/s, 2s/2 iters), loss = nan\n"
           "I1204 15:00:04.0 1 solver.cpp:237]     Train net output #0: loss = 4.5\n")
    assert parse_iteration_speed(log) == [(0, 4.5), (1, 0.8), (3, 1.0)]
    assert parse_iteration_speed("Iteration 3, loss = 1") == []
