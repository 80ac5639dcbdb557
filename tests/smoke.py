"""A tiny end-to-end check of the build: data in an LMDB, a NetSpec net,
`caffe train`, and the loss and accuracy it logs.

Two classes of 16x16 grey images, horizontal vs vertical stripes of random
phase and period under noise: a convolution separates them in a few dozen
iterations, so a falling loss says that data, forward, backward and the
solver all work.
"""
from pathlib import Path

import numpy as np

from dcd.caffeio.caffe_log import caffe_train, parse_test_outputs, parse_train_losses

IMAGE_SIZE = 16


def stripes(label, rng, size=IMAGE_SIZE):
    """One uint8 image of horizontal (label 0) or vertical (label 1) stripes."""
    period = rng.integers(3, 7)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * np.arange(size) / period + phase)
    image = np.tile(wave[:, None], (1, size)) if label == 0 else np.tile(wave[None, :], (size, 1))
    image = 127.5 + 80 * image + rng.normal(0, 25, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_stripes_lmdb(path, count, seed):
    """An LMDB of `count` Caffe Datums (1 x 16 x 16, raw uint8), labels alternating."""
    import lmdb
    from caffe.proto import caffe_pb2

    rng = np.random.default_rng(seed)
    path = Path(path)
    env = lmdb.open(str(path), map_size=64 << 20)
    with env.begin(write=True) as txn:
        for i in range(count):
            label = i % 2
            datum = caffe_pb2.Datum(channels=1, height=IMAGE_SIZE, width=IMAGE_SIZE,
                                    data=stripes(label, rng).tobytes(), label=label)
            txn.put(f"{i:08d}".encode(), datum.SerializeToString())
    env.close()
    return path


def smoke_net(source, batch_size, train):
    """Conv -> ReLU -> pool -> fc(2) with softmax loss (and accuracy when testing)."""
    import caffe
    from caffe import layers as L, params as P

    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=str(source), backend=P.Data.LMDB, batch_size=batch_size,
                             ntop=2, transform_param=dict(scale=1.0 / 255))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3,
                           weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))
    n.relu = L.ReLU(n.conv, in_place=True)
    n.pool = L.Pooling(n.relu, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.fc = L.InnerProduct(n.pool, num_output=2, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    if not train:
        n.accuracy = L.Accuracy(n.fc, n.label)
    return n.to_proto()


def run_smoke(workdir, iterations=60, train_count=256, test_count=64, seed=0):
    """Build the data and net in `workdir`, train with `caffe train`.

    Returns (losses, test_outputs): [(iteration, loss)] and the final test
    phase's {name: value}.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train_db = workdir / "train_lmdb"
    test_db = workdir / "test_lmdb"
    for db, count, s in ((train_db, train_count, seed), (test_db, test_count, seed + 1)):
        if not (db / "data.mdb").exists():
            write_stripes_lmdb(db, count, s)
    (workdir / "train.prototxt").write_text(str(smoke_net(train_db, 32, train=True)))
    (workdir / "test.prototxt").write_text(str(smoke_net(test_db, test_count, train=False)))
    solver = workdir / "solver.prototxt"
    solver.write_text("\n".join([
        f'train_net: "{workdir / "train.prototxt"}"',
        f'test_net: "{workdir / "test.prototxt"}"',
        "test_iter: 1",
        f"test_interval: {iterations}",
        "test_initialization: false",
        "base_lr: 0.05",
        "momentum: 0.9",
        "weight_decay: 0.0005",
        'lr_policy: "fixed"',
        "display: 5",
        f"max_iter: {iterations}",
        "snapshot_after_train: false",
        'solver_mode: CPU',
        f"random_seed: {seed}",
        "",
    ]))
    log = caffe_train(solver, workdir / "train.log")
    tests = parse_test_outputs(log)
    return parse_train_losses(log), tests[max(tests)] if tests else {}
