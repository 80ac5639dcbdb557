"""The displacement study's pieces: ground truth of MovingPatterns and of the
stereo pair (checked by warping), conv1 features read from a caffemodel
(against pycaffe), and the study telling good settings from bad ones."""
import numpy as np

from dcd.layers import reference
from dcd.demo import studies
from dcd.nets.init_weights import filter_bank_conv1


def _warp_error(a, b, v, mask):
    """Mean |b(p + v(p)) - a(p)| over mask: small when v is a's motion into b."""
    fb = b.astype(np.float32).transpose(0, 3, 1, 2)
    warped = reference.bilinear_warp(fb, v.astype(np.float32))
    diff = np.abs(warped - a.astype(np.float32).transpose(0, 3, 1, 2)).mean(axis=1)
    return diff[mask].mean()


def test_moving_pattern_ground_truth_moves_the_object():
    a, b, v, obj, bg = studies.moving_pattern_pairs(clips=8, steps=(5,))
    assert obj.any(axis=(1, 2)).all() and not (obj & bg).any()
    assert set(np.abs(v[:, 1][obj]).round(3)) == {2.0} and (v[:, 0] == 0).all()
    steady = slice(0, None, 2)        # clip c has class c: even classes do not flicker
    a, b, v, obj = a[steady], b[steady], v[steady], obj[steady]
    right = _warp_error(a, b, v, obj)
    assert right < 0.5 * _warp_error(a, b, 0 * v, obj)
    assert right < 0.5 * _warp_error(a, b, -v, obj)      # the sign matters


def test_stereo_ground_truth_matches_the_views():
    left, right, v, valid = studies.stereo_pair(scale=8)
    assert valid.mean() > 0.5 and (v[:, 1][valid] < 0).all()
    inner = valid.copy()
    inner[:, :, :12] = False                              # content leaving the view
    right_v = _warp_error(left, right, v, inner)
    assert right_v < 0.7 * _warp_error(left, right, 0 * v, inner)
    assert right_v < 0.7 * _warp_error(left, right, -v, inner)


def test_trained_conv1_features_match_pycaffe(tmp_path):
    import caffe
    from caffe import layers as L
    from dcd.caffeio.netio import load_net
    from dcd.nets.blocks import conv_bn_relu
    n = caffe.NetSpec()
    n.data = L.Input(input_param=dict(shape=dict(dim=[2, 3, 20, 20])))
    conv_bn_relu(n, n.data, "conv1", "conv1/relu", 6, 3, pad=1, keep_pre_relu=True)
    net = load_net(n.to_proto(), caffe.TEST)
    rng = np.random.default_rng(0)
    for name in ("conv1", "conv1_scale"):
        for blob in net.params[name]:
            blob.data[...] = rng.normal(0, 0.3, blob.data.shape)
    bn = net.params["conv1_bn"]
    bn[0].data[...] = rng.normal(0, 20, 6) * 4            # running sums, factor 4
    bn[1].data[...] = rng.uniform(100, 400, 6) * 4
    bn[2].data[...] = 4
    weights = tmp_path / "w.caffemodel"
    net.save(str(weights))
    images = rng.integers(0, 256, (2, 20, 20, 3)).astype(np.uint8)
    from dcd.scoring.protocol import MEAN_BGR
    net.blobs["data"].data[...] = images.transpose(0, 3, 1, 2) - np.array(MEAN_BGR)[:, None, None]
    net.forward()
    w, b, stats = studies.trained_conv1(str(weights))
    for relu, blob in ((False, "conv1_bn"), (True, "conv1/relu")):
        ours = studies.conv_features(images, w, b, relu=relu, stats=stats)
        np.testing.assert_allclose(ours, net.blobs[blob].data, rtol=1e-3, atol=1e-3)


def test_study_tells_a_good_matcher_and_temperature_from_bad_ones():
    moving = studies.moving_pattern_pairs(clips=4, steps=(5,))
    bank = filter_bank_conv1()
    feats = {relu: lambda im, relu=relu: studies.conv_features(im, bank, stride=2, relu=relu)
             for relu in (False, True)}
    rows = studies.displacement_study(feats, [1.0, 0.02], moving)
    got = {(r["features"], r["tau"]): r for r in rows}
    good = got[(False, 0.02)]
    assert good["object_epe"] < 0.4 and good["background_v"] < 0.3
    assert got[(False, 1.0)]["object_epe"] > 2 * good["object_epe"]   # pulled to 0
    assert got[(True, 0.02)]["object_epe"] > good["object_epe"]
    table = studies.format_displacement_study(rows)
    assert "tau=0.02" in table and table.count("\n") == 3
