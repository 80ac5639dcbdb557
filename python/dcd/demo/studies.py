"""Small measurements behind choices the paper leaves open (docs/ASSUMPTIONS.md)."""
import numpy as np

from dcd.layers import reference as ref


def smooth_features(rng, channels, size, blur=2.0):
    """Random features with spatial correlation, like low-level conv maps."""
    from scipy.ndimage import gaussian_filter
    f = rng.standard_normal((1, channels, size, size))
    return gaussian_filter(f, sigma=(0, 0, blur, blur))


def temperature_sweep(temperatures, shift=(0.4, -1.3), channels=64, size=40,
                      max_displacement=3, noise=0.1, blur=2.0, trials=3, seed=0):
    """End-point error (pixels, interior mean) of SOFT displacement per
    temperature, and of WTA, for a known sub-pixel translation."""
    rng = np.random.default_rng(seed)
    d = max_displacement
    errors = {t: [] for t in temperatures}
    errors["WTA"] = []
    margin = d + 3
    inner = (slice(None), slice(margin, size - margin), slice(margin, size - margin))
    for _ in range(trials):
        fa = smooth_features(rng, channels, size, blur)
        # The next frame's content moved by `shift`: fb(p) = fa(p - shift).
        motion = np.empty((1, 2, size, size))
        motion[:, 0], motion[:, 1] = shift
        fb = ref.bilinear_warp(fa, motion, scale=-1.0)
        fb = fb + noise * fa.std() * rng.standard_normal(fb.shape)
        cost = ref.cost_volume(fa, fb, d, d)
        for key in errors:
            method = "WTA" if key == "WTA" else "SOFT"
            tau = 1.0 if key == "WTA" else key
            v = ref.soft_displacement(cost, d, d, 1, tau, method)
            err = np.hypot(v[:, 0] - shift[0], v[:, 1] - shift[1])[inner[0], inner[1], inner[2]]
            errors[key].append(err.mean())
    return {k: float(np.mean(v)) for k, v in errors.items()}


# ------------------------------------------------ displacement maps on ground truth
#
# The temperature sweep above uses zero-mean Gaussian features. The nets'
# cost volumes see conv1 features instead (after BN + Scale, and after the
# ReLU unless a net takes them before it). The functions below measure the
# end-point error of the displacement map on data with ground truth:
# MovingPatterns clips (python/dcd/data/synthetic.py, object and background) and
# the Middlebury stereo pair that scikit-image ships (disparity).

def conv_features(images, weight, bias=None, stride=1, relu=True, stats=None):
    """N x H x W x 3 BGR uint8 -> N x C x h x w features of one conv layer
    (O x 3 x k x k `weight`, same padding) on mean-subtracted frames, then
    batch normalisation (`stats` = (mean, var, gamma, beta) per channel, or
    the batch's own statistics and unit scale when None), then an optional
    ReLU: what a net's conv1 + BN + Scale (+ ReLU) give the cost volume."""
    from numpy.lib.stride_tricks import sliding_window_view
    from dcd.scoring.protocol import MEAN_BGR
    x = images.astype(np.float32) - np.array(MEAN_BGR, np.float32)
    k = weight.shape[-1]
    r = k // 2
    x = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    win = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # N h w 3 k k
    f = np.einsum("nhwcij,ocij->nohw", win, weight.astype(np.float32), optimize=True)
    if bias is not None:
        f += bias.astype(np.float32)[None, :, None, None]
    if stats is None:
        mean = f.mean(axis=(0, 2, 3), keepdims=True)
        std = np.sqrt(f.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
        f = (f - mean) / std
    else:
        mean, var, gamma, beta = (np.asarray(s, np.float32)[None, :, None, None] for s in stats)
        f = (f - mean) / np.sqrt(var + 1e-5) * gamma + beta
    return np.maximum(f, 0) if relu else f


def moving_pattern_clips(clips=48, seed=0, steps=(3, 7, 11), stream=7):
    """Generated MovingPatterns clips (every class in turn; `stream` keeps the
    random streams of different users apart) with their ground truth: yields
    (clip, t, v_true, object mask, background mask) for each step t, masks
    over frame t; v_true is (0, step) on the object, 0 elsewhere."""
    from dcd.data.synthetic import CLASS_NAMES, ClipSpec, make_clip, motion_ground_truth
    spec = ClipSpec()
    for c in range(clips):
        info = {}
        clip = make_clip(c % len(CLASS_NAMES), np.random.default_rng([seed, stream, c]), spec, info)
        for t in steps:
            yield (clip, t) + tuple(motion_ground_truth(info, t))


def moving_pattern_pairs(clips=48, seed=0, steps=(3, 7, 11)):
    """Frame pairs of moving_pattern_clips with ground truth:
    (frames_a, frames_b, v_true, object mask, background mask)."""
    a, b, vt, obj, bg = [], [], [], [], []
    for clip, t, v, m, back in moving_pattern_clips(clips, seed, steps):
        a.append(clip[t]), b.append(clip[t + 1]), vt.append(v), obj.append(m), bg.append(back)
    return np.stack(a), np.stack(b), np.stack(vt), np.stack(obj), np.stack(bg)


def stereo_pair(scale=8):
    """scikit-image's Middlebury 2014 motorcycle pair, downscaled by `scale`:
    (left, right, v_true, valid mask). The left view's content is found at
    x - d in the right view, so v_true = (0, -d / scale)."""
    import cv2
    from skimage import data
    left, right, disp = data.stereo_motorcycle()
    h, w = left.shape[0] // scale, left.shape[1] // scale
    small = [cv2.resize(im[..., ::-1], (w, h), interpolation=cv2.INTER_AREA)
             for im in (left, right)]
    valid = np.isfinite(disp)
    d = np.where(valid, disp, 0).astype(np.float32)
    # Average disparity per output pixel over its valid input pixels.
    num = cv2.resize(d, (w, h), interpolation=cv2.INTER_AREA)
    den = cv2.resize(valid.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    v = np.zeros((1, 2, h, w), np.float32)
    v[0, 1] = -num / np.maximum(den, 1e-6) / scale
    return small[0][None], small[1][None], v, (den > 0.99)[None]


def displacement_map(fa, fb, dh, dw, temperature, dilation=1, method="SOFT"):
    cost = ref.cost_volume(fa, fb, dh, dw, dilation)
    return ref.soft_displacement(cost, dh, dw, dilation, temperature, method)


def upsample_displacement(v, shape):
    """Displacement maps from a strided feature map to the frame's grid, in frame pixels."""
    import cv2
    n, _, h, w = v.shape
    H, W = shape
    if (h, w) == (H, W):
        return v
    out = np.stack([cv2.resize(m.transpose(1, 2, 0), (W, H), interpolation=cv2.INTER_LINEAR)
                    .transpose(2, 0, 1) for m in v])
    return out * np.array([H / h, W / w], np.float32)[None, :, None, None]


def endpoint_errors(v, v_true, mask):
    """Mean end-point error (px) over `mask` (N x H x W)."""
    err = np.hypot(v[:, 0] - v_true[:, 0], v[:, 1] - v_true[:, 1])
    return float(err[mask].mean())


def motion_errors(v, v_true, obj, bg):
    """Maps N x 2 x H x W against MovingPatterns' truth (pixels): end-point
    error on the object, mean displacement along the true direction on the
    object, and mean |V| on the static background."""
    return {"object_epe": endpoint_errors(v, v_true, obj),
            "object_along": float((v[:, 1] * np.sign(v_true[:, 1]))[obj].mean()),
            "background_v": float(np.hypot(v[:, 0], v[:, 1])[bg].mean())}


def displacement_study(features, temperatures, moving=None, stereo=None, window=3,
                       stereo_window=(2, 8)):
    """End-point errors per feature set and temperature.

    features: {name: function images -> features}; moving /
    stereo: the outputs of moving_pattern_pairs / stereo_pair (None skips).
    Returns rows of dict(features, tau, object_epe, background_v, stereo_epe)."""
    rows = []
    for name, fn in features.items():
        fm = [fn(moving[0]), fn(moving[1])] if moving is not None else None
        fs = [fn(stereo[0]), fn(stereo[1])] if stereo is not None else None
        for tau in temperatures:
            method = "WTA" if tau == "WTA" else "SOFT"
            t = 1.0 if tau == "WTA" else tau
            row = dict(features=name, tau=tau)
            if fm is not None:
                v = upsample_displacement(displacement_map(*fm, window, window, t, method=method),
                        moving[0].shape[1:3])
                errors = motion_errors(v, *moving[2:5])
                row.update(object_epe=errors["object_epe"], background_v=errors["background_v"])
            if fs is not None:
                dh, dw = stereo_window
                v = upsample_displacement(displacement_map(*fs, dh, dw, t, method=method),
                        stereo[0].shape[1:3])
                row["stereo_epe"] = endpoint_errors(v, stereo[2], stereo[3])
            rows.append(row)
    return rows


def caffemodel_blobs(weights, layers):
    """{layer: [numpy arrays]} of the named layers in a .caffemodel."""
    from dcd.nets.init_weights import read_caffemodel
    model = read_caffemodel(weights)
    missing = [name for name in layers if name not in model]
    if missing:
        raise KeyError(f"{weights}: no layer {', '.join(missing)}")
    return {name: model[name][1] for name in layers}


def trained_conv1(weights, name="conv1"):
    """A net's shared conv1 + BN + Scale as conv_features arguments:
    (weight, bias, (mean, var, gamma, beta))."""
    b = caffemodel_blobs(weights, [name, name + "_bn", name + "_scale"])
    factor = b[name + "_bn"][2].ravel()[0]
    factor = 1 / factor if factor else 0
    mean, var = b[name + "_bn"][0] * factor, b[name + "_bn"][1] * factor
    gamma, beta = b[name + "_scale"]
    return b[name][0], b[name][1], (mean, var, gamma, beta)


def learned_temperature(weights, layer="motion/displacement"):
    """The temperature a net learned (SoftDisplacement learn_temperature);
    None when the net has no such layer or the layer a fixed one (no blob)."""
    from dcd.nets.init_weights import read_caffemodel
    blobs = read_caffemodel(weights).get(layer, (None, []))[1]
    return float(blobs[0].ravel()[0]) if blobs else None


def format_displacement_study(rows):
    """Markdown table: one row per feature set and ReLU choice, columns per
    temperature, cells 'object EPE / background |V| / stereo EPE'."""
    taus = list(dict.fromkeys(r["tau"] for r in rows))
    feats = list(dict.fromkeys(r["features"] for r in rows))
    head = "| features | " + " | ".join("WTA" if t == "WTA" else f"tau={t:g}" for t in taus) + " |"
    lines = [head, "|---" + "|---:" * len(taus) + "|"]
    for f in feats:
        cells = []
        for t in taus:
            r = next(r for r in rows if r["features"] == f and r["tau"] == t)
            cells.append(" / ".join(f"{r[k]:.2f}" for k in ("object_epe", "background_v",
                                                              "stereo_epe") if k in r))
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
