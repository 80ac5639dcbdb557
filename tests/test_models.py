"""The committed nets and solvers under models/: they parse, they are what
tools/make_models.py generates, every net runs forward and backward, the
solvers follow the paper, and the UCF101 motion solver trains a few
iterations with `caffe train` on a tiny generated data set."""
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
from nethelpers import forward_backward, random_bninception, unit_bn_stats  # noqa: E402
from dcd.caffeio.netio import load_net  # noqa: E402
from dcd.nets.builder import BRANCH_PREFIX, build  # noqa: E402
from dcd.nets.catalogue import NETS  # noqa: E402
from dcd.nets.datasets import DATASETS  # noqa: E402
from dcd.nets.generate import model_paths, write_models  # noqa: E402

MODELS = REPO / "models"
ALL_NETS = [(d, c) for d in NETS for c in NETS[d]]
PAPER_NETS = [(d, c) for d, c in ALL_NETS if d != "synthetic"]  # BN-Inception, the paper's
PAPER_IDS = [f"{d}-{c.name}" for d, c in PAPER_NETS]
# Running the BN-Inception nets is slow (`make test-fast` leaves them out); the demo's are not.
# The nets trained without TSN (`*_notsn`, one segment) are run as their TSN
# versions: at the segments these tests give, the nets are the same
# (test_notsn_nets_equal_their_tsn_versions_at_given_segments).
RUN_NETS = [pytest.param(d, c, id=f"{d}-{c.name}",
                         marks=[pytest.mark.slow] if d != "synthetic" else [])
            for d, c in ALL_NETS if c.segments != 1]
RUN_PAPER_NETS = [pytest.param(d, c, id=f"{d}-{c.name}", marks=pytest.mark.slow)
                  for d, c in PAPER_NETS if c.segments != 1]
SMALL_CROP = 32  # BN-Inception still ends on a 1x1 map; 4x cheaper than 64


def committed_files():
    """Split 1's files (`--split 2/3` output, if any, is not committed)."""
    return sorted(p for p in MODELS.rglob("*.prototxt") if "_split" not in p.name)


def parse(path):
    msg = caffe_pb2.SolverParameter() if path.name.endswith("_solver.prototxt") \
        else caffe_pb2.NetParameter()
    text_format.Merge(path.read_text(), msg)
    return msg


def test_every_committed_prototxt_parses():
    files = committed_files()
    assert len(files) == 3 * len(ALL_NETS)
    for path in files:
        parse(path)


def test_committed_files_are_what_make_models_writes(tmp_path):
    written = write_models(tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in written) == \
        sorted(p.relative_to(REPO) for p in committed_files())
    for path in written:
        committed = REPO / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), \
            f"{committed} is stale: run tools/make_models.py"


def test_split_option_names_other_lists(tmp_path):
    write_models(tmp_path, ("ucf101",), split=2, nets=["static"])
    net = parse(tmp_path / "models/ucf101/static_split2_train_val.prototxt")
    sources = [layer.video_data_param.source for layer in net.layer if layer.type == "VideoData"]
    assert sources == ["data/ucf101/ucf101_train_split_2.txt", "data/ucf101/ucf101_val_split_2.txt"]
    solver = parse(tmp_path / "models/ucf101/static_split2_solver.prototxt")
    assert solver.net == "models/ucf101/static_split2_train_val.prototxt"
    assert solver.test_iter == [3734]


@pytest.mark.parametrize("dataset,cfg", RUN_NETS)
def test_train_val_structure_runs_forward_and_backward(dataset, cfg, tmp_path):
    """The train_val net with Input layers for VideoData (2 clips of 2
    segments, SMALL_CROP): the loss is the softmax loss of the branches'
    scores averaged over each clip's snippets (TSN consensus) and then over
    branches, and gradients reach the shared and branch conv1."""
    ds = DATASETS[dataset]
    crop = SMALL_CROP if dataset != "synthetic" else ds.crop
    net = load_net(build(cfg, dataset, "test", crop=crop, segments=2, batch_size=2), caffe.TRAIN)
    unit_bn_stats(net)
    out = forward_backward(net)
    labels = net.blobs["label"].data.astype(int)
    fused = np.mean([net.blobs[BRANCH_PREFIX[b] + "fc-action"].data.reshape(2, -1, ds.classes)
                     .mean(axis=1) for b in cfg.branches], axis=0)
    def softmax_loss(scores):
        log_p = scores - scores.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        return -log_p[[0, 1], labels].mean()
    if len(cfg.branches) > 1 and cfg.branch_losses:  # one loss per branch
        for b in cfg.branches:
            scores = net.blobs[BRANCH_PREFIX[b] + "fc-action"].data.reshape(2, -1, ds.classes)
            assert out[BRANCH_PREFIX[b] + "loss"] == pytest.approx(
                softmax_loss(scores.mean(axis=1)), rel=1e-4)
    else:
        assert out["loss"] == pytest.approx(softmax_loss(fused), rel=1e-4)
    stem = ds.backbone.STEM
    firsts = [BRANCH_PREFIX[b] + stem for b in cfg.branches]
    if cfg.uses_shared_features and not cfg.frozen_stem:  # frozen: lr_mult 0
        firsts.append(stem)
    for name in set(firsts):
        diff = net.params[name][0].diff
        assert np.isfinite(diff).all()
        if not (cfg.method == "WTA" and name == stem and cfg.branches == ("motion",)):
            assert np.abs(diff).sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("cfg", [c for c in NETS["ucf101"] if c.segments == 1],
                         ids=lambda c: c.name)
def test_notsn_nets_equal_their_tsn_versions_at_given_segments(cfg):
    tsn = next(c for c in NETS["ucf101"] if c.name == cfg.name.replace("_notsn", ""))
    for mode in ("test", "deploy"):
        ours, theirs = (build(c, "ucf101", mode, crop=SMALL_CROP, segments=2, batch_size=2)
                        for c in (cfg, tsn))
        ours.name = theirs.name
        assert str(ours) == str(theirs), mode


@pytest.mark.parametrize("dataset,cfg", RUN_PAPER_NETS)
def test_deploy_runs_forward(dataset, cfg, tmp_path):
    committed = parse(MODELS / dataset / f"{cfg.name}_deploy.prototxt")
    assert list(committed.layer[0].input_param.shape[0].dim) == cfg.input_shape(1, 224)
    net = load_net(build(cfg, dataset, "deploy", crop=SMALL_CROP), caffe.TEST)
    unit_bn_stats(net)
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 50, net.blobs["data"].data.shape)
    assert len(net.outputs) == 1, net.outputs
    scores = net.forward()[net.outputs[0]]
    assert scores.shape == (1, 101 if dataset == "ucf101" else 400)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("dataset,cfg", PAPER_NETS, ids=PAPER_IDS)
def test_solver_follows_the_paper(dataset, cfg):
    s = parse(MODELS / dataset / f"{cfg.name}_solver.prototxt")
    assert s.net == model_paths(dataset, cfg.name)["train_val"]
    got = (s.momentum, s.gamma, s.weight_decay)
    assert got == pytest.approx((0.9, 0.1, 5e-4))  # float32 fields
    flow = cfg.branches == ("flow",) and dataset == "ucf101"
    assert s.iter_size * cfg.batch_size == (128 if flow else 256)  # TSN's flow solver: 128
    # 20 on the 256-clip batch's gradient: Caffe clips the sum over iter_size passes
    assert s.clip_gradients == pytest.approx(20 * s.iter_size)
    assert s.snapshot_prefix.startswith("snapshots/")
    if dataset == "kinetics":
        want = (0.01, "step", 40000, [], 110000)
    elif cfg.branches == ("static",):
        want = (0.001, "step", 1500, [], 4500)
    elif cfg.branches == ("flow",):  # TSN's flow stream, its released solver
        want = (0.005, "multistep", 0, [10000, 16000], 18000)
    elif cfg.name.endswith("_finetune"):  # the joint net from trained branches
        want = (0.001, "step", 1500, [], 4500)
    else:
        want = (0.005, "multistep", 0, [10000, 16000], 18000)
    got = (s.base_lr, s.lr_policy, s.stepsize, list(s.stepvalue), s.max_iter)
    assert got == (pytest.approx(want[0]),) + want[1:]


def test_train_val_reads_tsn_style_data():
    net = parse(MODELS / "ucf101/motion_train_val.prototxt")
    train, test = [layer for layer in net.layer if layer.type == "VideoData"]
    assert train.video_data_param.root_folder == "data/ucf101/frames_lmdb"
    assert train.video_data_param.backend == caffe_pb2.VideoDataParameter.LMDB
    assert list(train.video_data_param.scale_ratios) == pytest.approx([1, .875, .75, .66])
    assert train.transform_param.mirror and not test.transform_param.mirror
    assert not test.video_data_param.scale_ratios
    assert (train.include[0].phase, test.include[0].phase) == (caffe.TRAIN, caffe.TEST)


def test_full_net_holds_every_branch_layer():
    full = {layer.name for layer in parse(MODELS / "ucf101/full_train_val.prototxt").layer
            if layer.type in ("Convolution", "BatchNorm", "Scale", "InnerProduct")}
    for branch in ("static", "motion", "appchange"):
        net = parse(MODELS / f"ucf101/{branch}_train_val.prototxt")
        names = {layer.name for layer in net.layer
                 if layer.type in ("Convolution", "BatchNorm", "Scale", "InnerProduct")}
        assert names <= full, branch


# --- caffe train on a tiny UCF101-format data set -------------------------

def make_tiny_ucf101(root):
    """Two 8-frame videos of moving noise at 96x72, their Farneback flow,
    the RGB and flow lists and one LMDB of both, laid out as docs/DATA.md
    describes, under root/data/ucf101."""
    import cv2
    from dcd.data import flow
    from dcd.data.filelists import VideoEntry, write_file_list
    from dcd.data.lmdb_store import build_lmdb
    data = root / "data/ucf101"
    rng = np.random.default_rng(0)
    entries, flow_entries = [], []
    estimator = flow.FlowEstimator(flow.flow_method("farneback"))
    for label, video in ((0, "v_ApplyEyeMakeup_g01_c01"), (5, "v_Basketball_g01_c01")):
        folder, flow_folder = data / "frames" / video, data / "flow" / video
        folder.mkdir(parents=True)
        flow_folder.mkdir(parents=True)
        base = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
        clip = [base[:, 2 * i:2 * i + 96] for i in range(8)]
        for i, frame in enumerate(clip):
            cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), frame)
        for i, (x, y) in enumerate(flow.compute_clip_flow(clip, estimator)):
            cv2.imwrite(str(flow_folder / f"flow_x_{i + 1:05d}.jpg"), x)
            cv2.imwrite(str(flow_folder / f"flow_y_{i + 1:05d}.jpg"), y)
        entries.append(VideoEntry(video, 8, label))
        flow_entries.append(VideoEntry(video, 7, label))
    for part in ("train", "val"):
        write_file_list(data / f"ucf101_{part}_split_1.txt", entries)
        write_file_list(data / f"ucf101_flow_{part}_split_1.txt", flow_entries)
    build_lmdb(data / "frames", entries, data / "frames_lmdb", progress=False)
    build_lmdb(data / "flow", flow_entries, data / "frames_lmdb", progress=False, modality="flow")
    return entries


def tiny_copy(root, net_name, max_iter=3):
    """models/ucf101/<net>_{train_val,solver}.prototxt in `root`: the net at
    SMALL_CROP with batch 1, the committed solver cut to `max_iter` CPU
    iterations; returns the solver's path relative to root."""
    from dcd.nets.catalogue import get_config
    net = root / f"models/ucf101/{net_name}_train_val.prototxt"
    net.parent.mkdir(parents=True, exist_ok=True)
    net.write_text(str(build(get_config("ucf101", net_name), "ucf101", "train_val",
                             crop=SMALL_CROP, batch_size=1)))
    solver = parse(MODELS / f"ucf101/{net_name}_solver.prototxt")
    solver.max_iter, solver.iter_size, solver.test_iter[:] = max_iter, 1, [1]
    solver.test_interval, solver.display, solver.snapshot = 2, 1, 0
    solver.clip_gradients = 20 * solver.iter_size
    solver.solver_mode = caffe_pb2.SolverParameter.CPU
    path = f"models/ucf101/{net_name}_solver.prototxt"
    (root / path).write_text(str(solver))
    return path


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    """A repository-shaped folder: tiny data, the motion net at SMALL_CROP with
    batch 1 in models/ucf101/, the committed solver cut to 3 iterations on
    the CPU, snapshots/, and initial weights from a random BN-Inception."""
    from dcd.nets.init_weights import init_weights
    root = tmp_path_factory.mktemp("tiny_repo")
    make_tiny_ucf101(root)
    tiny_copy(root, "motion")
    (root / "snapshots").mkdir()
    imagenet = random_bninception(root / "bn_inception.caffemodel")
    for net in ("motion", "flow", "appchange_tvl1warp"):
        init_weights(imagenet, "ucf101", net, root / f"{net}_init.caffemodel")
    return root


@pytest.mark.slow
def test_motion_solver_trains_with_caffe(tiny_repo, monkeypatch):
    monkeypatch.setenv("GLOG_minloglevel", "0")  # the losses are INFO lines
    from dcd.caffeio.caffe_log import caffe_train, parse_test_outputs, parse_train_losses
    from dcd.nets.preflight import check_solver
    solver = "models/ucf101/motion_solver.prototxt"
    check_solver(tiny_repo / solver, tiny_repo, [tiny_repo / "motion_init.caffemodel"])
    log = caffe_train(solver, tiny_repo / "train.log", ["--weights=motion_init.caffemodel"],
                      cwd=tiny_repo)
    losses = parse_train_losses(log)
    assert [it for it, _ in losses][:3] == [0, 1, 2]
    assert all(np.isfinite(loss) for _, loss in losses)
    assert "accuracy" in parse_test_outputs(log)[2]
    assert (tiny_repo / "snapshots/ucf101_motion_split1_iter_3.caffemodel").exists()


@pytest.mark.slow
@pytest.mark.parametrize("net", ["flow", "appchange_tvl1warp"])
def test_flow_solvers_train_with_caffe(tiny_repo, net, monkeypatch):
    """TSN's flow stream (FLOW) and the TV-L1 warping net (RGB_FLOW) read
    the tiny data set's flow from the shared LMDB and train."""
    from dcd.caffeio.caffe_log import caffe_train, parse_train_losses
    solver = tiny_copy(tiny_repo, net)
    log = caffe_train(solver, tiny_repo / f"{net}.log", [f"--weights={net}_init.caffemodel"],
                      cwd=tiny_repo)
    losses = parse_train_losses(log)
    assert [it for it, _ in losses][:3] == [0, 1, 2]
    assert all(np.isfinite(loss) for _, loss in losses)


def test_missing_list_is_named(tiny_repo, tmp_path):
    from dcd.caffeio.caffe_log import caffe_train
    lists = tiny_repo / "data/ucf101/ucf101_train_split_1.txt"
    moved = tmp_path / "moved.txt"
    lists.rename(moved)
    try:
        with pytest.raises(RuntimeError, match="cannot open list data/ucf101/ucf101_train_split_1.txt"):
            caffe_train("models/ucf101/motion_solver.prototxt", tmp_path / "fail.log", cwd=tiny_repo)
    finally:
        moved.rename(lists)


@pytest.mark.slow
def test_clipping_with_the_shipped_motion_solver(tiny_repo, tmp_path):
    """The shipped UCF101 motion solver's settings (iter_size 32, clip 640)
    against the first release's clip 20, on the CPU copy (batch 1 at a 32
    crop, so 32 passes per update), one update each from the same weights
    and data: whether and how hard Caffe clips, read from its log."""
    from dcd.caffeio.caffe_log import caffe_train, parse_clipping, parse_train_losses
    shipped = parse(MODELS / "ucf101/motion_solver.prototxt")
    assert (shipped.iter_size, shipped.clip_gradients) == (32, 640)
    fired = {}
    for clip in (20, shipped.clip_gradients):
        s = parse(tiny_repo / "models/ucf101/motion_solver.prototxt")
        s.iter_size, s.clip_gradients, s.test_interval = shipped.iter_size, clip, 1000
        s.max_iter, s.random_seed = 1, 3
        path = tiny_repo / f"models/ucf101/motion_clip{clip:g}_solver.prototxt"
        path.write_text(str(s))
        log = caffe_train(str(path.relative_to(tiny_repo)), tmp_path / f"clip{clip:g}.log",
                          ["--weights=motion_init.caffemodel"], cwd=tiny_repo)
        assert [it for it, _ in parse_train_losses(log)] == [0, 1]
        fired[clip] = parse_clipping(log)
        print(f"\nclip_gradients {clip:g}: clipped {len(fired[clip])} of {s.max_iter} updates; "
              f"(L2 norm of the summed gradient, scale factor): "
              f"{[(round(n, 1), round(f, 5)) for n, _, f in fired[clip]]}")
    old, new = fired[20], fired[shipped.clip_gradients]
    assert len(old) == 1 and old[0][1] == 20  # the update was shrunk
    assert all(t == 640 for _, t, _ in new)
    # Same weights and data: the first update has the same gradient; the new
    # threshold bounds the batch gradient at 20, the old one at 20 / 32.
    norm0 = old[0][0]
    new_scale = new[0][2] if new and new[0][0] == pytest.approx(norm0, rel=1e-3) else 1.0
    assert new_scale == pytest.approx(min(1.0, 32 * old[0][2]), rel=1e-3)


def test_fresh_clone_without_data_names_the_missing_list(tmp_path):
    """The committed BN-Inception motion net, CPU copy of its solver, no
    data: caffe stops at the data layer naming the list."""
    from dcd.caffeio.caffe_log import caffe_train
    (tmp_path / "models/ucf101").mkdir(parents=True)
    (tmp_path / "snapshots").mkdir()
    net = "models/ucf101/motion_train_val.prototxt"
    (tmp_path / net).write_text((MODELS / "ucf101/motion_train_val.prototxt").read_text())
    s = parse(MODELS / "ucf101/motion_solver.prototxt")
    s.solver_mode = caffe_pb2.SolverParameter.CPU
    (tmp_path / "models/ucf101/motion_cpu_solver.prototxt").write_text(str(s))
    with pytest.raises(RuntimeError, match="cannot open list data/ucf101/ucf101_train_split_1.txt"):
        caffe_train("models/ucf101/motion_cpu_solver.prototxt", tmp_path / "fail.log",
                    cwd=tmp_path)


def test_snapshots_folder_is_in_the_repository():
    assert (REPO / "snapshots").is_dir() and (REPO / "snapshots/.gitignore").is_file()


def test_readme_sizes_are_current():
    from dcd.nets.stats import STATS_BEGIN, STATS_END, all_stats, stats_markdown, trunk_stats
    text = (MODELS / "README.md").read_text()
    section = text[text.index(STATS_BEGIN):text.index(STATS_END) + len(STATS_END)]
    assert section == stats_markdown(trunk_stats(), all_stats()), "run tools/model_stats.py"


@pytest.mark.parametrize("cfg", NETS["synthetic"], ids=[c.name for c in NETS["synthetic"]])
def test_demo_nets_deploy_and_solver(cfg, tmp_path):
    """models/synthetic: the small-trunk nets of `make demo`."""
    committed = parse(MODELS / "synthetic" / f"{cfg.name}_deploy.prototxt")
    assert list(committed.layer[0].input_param.shape[0].dim) == cfg.input_shape(1, 56)
    net = load_net(build(cfg, "synthetic", "deploy"), caffe.TEST)
    assert net.forward()[net.outputs[0]].shape == (1, 8)
    s = parse(MODELS / "synthetic" / f"{cfg.name}_solver.prototxt")
    # The static net runs half the rate for half the iterations (the data set's comment).
    static = cfg.name == "static"
    assert (s.solver_mode, s.iter_size, s.max_iter, s.base_lr) == \
        (s.CPU, 1, 200 if static else 400, pytest.approx(0.005 if static else 0.01))
    train_val = parse(MODELS / "synthetic" / f"{cfg.name}_train_val.prototxt")
    mirrors = [layer.transform_param.mirror for layer in train_val.layer if layer.type == "VideoData"]
    assert mirrors == [False, False]  # a flip would swap the direction classes
