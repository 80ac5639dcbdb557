"""Small nets and score files for the scoring tests."""
import numpy as np

from dcd.scoring import protocol


def tiny_deploy(path, rows=10, channels=3, size=224, num_classes=2, seed_std=0.1):
    """Input (rows, channels, size, size) -> conv 8 k7 s8 -> global avg pool -> fc -> softmax."""
    import caffe
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[rows, channels, size, size]))
    n.conv = L.Convolution(n.data, num_output=8, kernel_size=7, stride=8,
                           weight_filler=dict(type="gaussian", std=seed_std))
    n.pool = L.Pooling(n.conv, pool=P.Pooling.AVE, global_pooling=True)
    n.fc = L.InnerProduct(n.pool, num_output=num_classes,
                          weight_filler=dict(type="gaussian", std=seed_std))
    n.prob = L.Softmax(n.fc)
    path.write_text(str(n.to_proto()))
    return path


def write_weights(deploy, path, seed=0):
    """Deterministic weights, so two processes (and two runs) score the same."""
    import caffe
    net = caffe.Net(str(deploy), caffe.TEST)
    rng = np.random.RandomState(seed)
    for params in net.params.values():
        for blob in params:
            blob.data[...] = rng.normal(0, 0.05, blob.data.shape)
    net.save(str(path))
    return path


def tiny_bn_deploy(path, weights, rows=10, size=224, num_classes=2, seed=0):
    """tiny_deploy with BatchNorm + Scale after the conv (random statistics,
    factor 2), and its caffemodel: a net for --fold-bn."""
    import caffe
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[rows, 3, size, size]))
    n.conv = L.Convolution(n.data, num_output=8, kernel_size=7, stride=8, bias_term=False,
                           weight_filler=dict(type="gaussian", std=0.1))
    n.bn = L.BatchNorm(n.conv)
    n.scale = L.Scale(n.bn, bias_term=True, in_place=True)
    n.pool = L.Pooling(n.scale, pool=P.Pooling.AVE, global_pooling=True)
    n.fc = L.InnerProduct(n.pool, num_output=num_classes,
                          weight_filler=dict(type="gaussian", std=0.1))
    n.prob = L.Softmax(n.fc)
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    rng = np.random.RandomState(seed)
    for name, params in net.params.items():
        for blob in params:
            blob.data[...] = rng.normal(0, 0.05, blob.data.shape)
    bn = net.params["bn"]
    bn[0].data[...] = rng.normal(0, 20, bn[0].data.shape)      # stored sums, factor 2
    bn[1].data[...] = rng.uniform(50, 200, bn[1].data.shape)
    bn[2].data[...] = 2
    net.params["scale"][0].data[...] = rng.uniform(0.5, 1.5, bn[0].data.shape)
    net.save(str(weights))
    return path, weights


def video_samples(*args, **kwargs):
    """All samples of one video: (S * K) x L x C x h x w, snippet-major, crop-minor."""
    return np.concatenate(list(protocol.iter_snippets(*args, **kwargs)))
