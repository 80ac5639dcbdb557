"""Figure 5 of the paper: a frame pair, OpenCV optical flow (TV-L1 where
opencv-contrib's cv2.optflow exists, else Farneback), the displacement map
from a cost volume with soft assignment, the RGB difference, and that
difference warped by the flow and by the displacement map.

The displacement map is computed by the numpy reference of the layers
(dcd.layers.reference) on simple features: each pixel of the frame (downsampled by
`scale`) described by its zero-mean grey patch, so the cosine similarity of
the cost volume is a normalised cross-correlation. A deploy net's
displacement blob can be used instead (displacement_from_net).

Conventions (those of the DCD layers, docs/LAYERS.md): displacement channel 0 is v_y, channel 1 v_x, in
pixels, the motion of frame t's content towards frame t+1; the warped
difference is F_{t+1} - W(F_t, -V), as the appearance-change branch forms it.
"""
import numpy as np

from dcd.layers import reference


# ------------------------------------------------------------------ colour coding

def _colour_wheel():
    """Middlebury flow colour wheel: hues red-yellow-green-cyan-blue-magenta, 55 steps."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    rows = []
    for n, start, end in segments:
        t = np.arange(n)[:, None] / n
        rows.append((1 - t) * np.array(start) + t * np.array(end))
    return np.concatenate(rows) / 255.0          # 55 x 3, RGB in [0, 1]


def flow_to_colour(flow, max_magnitude=None):
    """H x W x 2 (v_y, v_x) -> H x W x 3 RGB uint8; hue = direction, saturation = speed."""
    vy, vx = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    mag = np.hypot(vx, vy)
    max_magnitude = max_magnitude or max(float(mag.max()), 1e-6)
    r = np.clip(mag / max_magnitude, 0, 1)
    wheel = _colour_wheel()
    n = len(wheel)
    angle = np.arctan2(-vy, -vx) / np.pi          # in [-1, 1]
    pos = (angle + 1) / 2 * (n - 1)
    k0 = np.floor(pos).astype(int)
    k1 = (k0 + 1) % n
    f = (pos - k0)[..., None]
    colour = (1 - f) * wheel[k0] + f * wheel[k1]
    colour = 1 - r[..., None] * (1 - colour)      # white at zero motion
    return (255 * colour).astype(np.uint8)


def colour_wheel_legend(size=101):
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    img = flow_to_colour(np.stack([y, x], axis=-1), max_magnitude=1.0)
    img[np.hypot(x, y) > 1] = 255
    return img


# ------------------------------------------------------------------ motion

def patch_features(gray, patch=5):
    """1 x patch^2 x H x W: each pixel's zero-mean grey neighbourhood (edge-padded)."""
    g = gray.astype(np.float32)
    r = patch // 2
    padded = np.pad(g, r, mode="edge")
    h, w = g.shape
    feats = np.stack([padded[i:i + h, j:j + w] for i in range(patch) for j in range(patch)])
    feats -= feats.mean(axis=0, keepdims=True)
    return feats[None]


def displacement_numpy(frame_a, frame_b, scale=4, max_displacement=4, temperature=reference.TEMPERATURE,
                       patch=5):
    """H x W x 2 (v_y, v_x) in full-resolution pixels, from the numpy cost
    volume; temperature: the nets' by default."""
    import cv2
    h, w = frame_a.shape[:2]
    small = (max(w // scale, 1), max(h // scale, 1))
    ga, gb = (cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), small, interpolation=cv2.INTER_AREA)
              for f in (frame_a, frame_b))
    fa, fb = patch_features(ga, patch), patch_features(gb, patch)
    cost = reference.cost_volume(fa, fb, max_displacement, max_displacement)
    disp = reference.soft_displacement(cost, max_displacement, max_displacement,
                                       temperature=temperature)[0]          # 2 x h x w
    disp = disp.transpose(1, 2, 0)
    full = cv2.resize(disp, (w, h), interpolation=cv2.INTER_LINEAR)
    return full * np.array([h / small[1], w / small[0]], np.float32)


def load_deploy(deploy, weights=None, gpu=None):
    """A pycaffe TEST net from a deploy prototxt (and weights)."""
    import os
    os.environ.setdefault("GLOG_minloglevel", "2")
    from dcd.caffeio.netio import open_net
    return open_net(deploy, weights, gpu)


def net_displacement(net, frames, layer, input_blob=None):
    """The displacement maps (blob `layer`, P x 2 x h x w) of a deploy net fed
    one snippet: `frames`, BGR arrays already at the net's input size, become
    consecutive input rows (mean subtracted); a snippet shorter than the input
    repeats its last frame."""
    from dcd.scoring.protocol import MEAN_BGR
    name = input_blob or net.inputs[0]
    shape = net.blobs[name].data.shape
    rows = [f.astype(np.float32).transpose(2, 0, 1) - np.array(MEAN_BGR, np.float32)[:, None, None]
            for f in frames]
    if rows[0].shape != tuple(shape[1:]):
        raise ValueError(f"frames of shape {rows[0].shape} do not fit the input {shape}")
    rows += [rows[-1]] * (shape[0] - len(rows))
    net.blobs[name].data[...] = np.stack(rows[:shape[0]])
    net.forward(end=layer) if layer in net._layer_names else net.forward()
    return net.blobs[layer].data.copy()


def displacement_from_net(frame_a, frame_b, deploy, weights, layer, gpu=None):
    """The displacement map (blob `layer`, N x 2 x h x w) of a deploy net for the
    pair fed as one snippet (rows 0 and 1 of the input, mean subtracted),
    resized to the frame, in full-resolution pixels (v_y, v_x): H x W x 2."""
    import cv2
    net = load_deploy(deploy, weights, gpu)
    _, _, ih, iw = net.blobs[net.inputs[0]].data.shape
    pair = [cv2.resize(f, (iw, ih), interpolation=cv2.INTER_AREA) for f in (frame_a, frame_b)]
    disp = net_displacement(net, pair, layer)[0].transpose(1, 2, 0)
    h, w = frame_a.shape[:2]
    full = cv2.resize(disp, (w, h), interpolation=cv2.INTER_LINEAR)
    return full * np.array([h / disp.shape[0], w / disp.shape[1]], np.float32)


def optical_flow(frame_a, frame_b):
    """(H x W x 2 (v_y, v_x), method name): TV-L1 when opencv-contrib is there, else Farneback."""
    import cv2
    ga, gb = (cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in (frame_a, frame_b))
    if hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create"):
        flow, name = cv2.optflow.DualTVL1OpticalFlow_create().calc(ga, gb, None), "TV-L1"
    else:
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        name = "Farneback"
    return flow[..., ::-1].copy(), name           # OpenCV gives (dx, dy)


def warped_difference(frame_a, frame_b, disp):
    """F_{t+1} - W(F_t, -V): H x W x 3 float (the appearance-change branch's input)."""
    fa = frame_a.astype(np.float32).transpose(2, 0, 1)[None]
    v = disp.transpose(2, 0, 1)[None].astype(np.float32)
    warped = reference.bilinear_warp(fa, v, scale=-1.0)[0].transpose(1, 2, 0)
    return frame_b.astype(np.float32) - warped


# ------------------------------------------------------------------ the figure

def load_pair(first, second=None, index=1):
    """Two image paths, or a video file / frame folder and a 1-based frame index
    (the pair is frames index and index + 1). Returns BGR arrays."""
    import os
    import cv2
    from dcd.data.frames import FRAME_PATTERN
    if second is not None:
        frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in (first, second)]
        bad = [str(p) for p, f in zip((first, second), frames) if f is None]
    elif os.path.isdir(first):
        paths = [os.path.join(first, FRAME_PATTERN.format(i)) for i in (index, index + 1)]
        frames = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
        bad = [p for p, f in zip(paths, frames) if f is None]
    else:
        cap = cv2.VideoCapture(str(first))
        cap.set(cv2.CAP_PROP_POS_FRAMES, index - 1)
        frames = [cap.read()[1], cap.read()[1]]
        cap.release()
        bad = [f"{first} frame {index + k}" for k, f in enumerate(frames) if f is None]
    if bad:
        raise FileNotFoundError("cannot read " + ", ".join(bad))
    if frames[0].shape != frames[1].shape:
        frames[1] = cv2.resize(frames[1], frames[0].shape[1::-1])
    return frames


def _diff_image(diff, vmax):
    return np.clip(np.abs(diff).mean(axis=2) / vmax, 0, 1)


def figure5(frame_a, frame_b, out, disp=None, disp_label="displacement map (cost volume)",
            **disp_kwargs):
    """Write the Figure 5 panel to `out` (PNG); returns the arrays it shows."""
    from dcd.util.plots import pyplot, quiet_matplotlib

    flow, flow_name = optical_flow(frame_a, frame_b)
    if disp is None:
        disp = displacement_numpy(frame_a, frame_b, **disp_kwargs)
    diff = frame_b.astype(np.float32) - frame_a.astype(np.float32)
    by_flow = warped_difference(frame_a, frame_b, flow)
    by_disp = warped_difference(frame_a, frame_b, disp)
    vmax = max(float(np.percentile(np.abs(diff).mean(axis=2), 99.5)), 1.0)
    speed = max(float(np.percentile(np.hypot(*flow.transpose(2, 0, 1)), 99)),
                float(np.percentile(np.hypot(*disp.transpose(2, 0, 1)), 99)), 1e-3)

    @quiet_matplotlib
    def draw():
        plt = pyplot()
        rgb = lambda f: f[..., ::-1]  # noqa: E731 - OpenCV is BGR
        panels = [
            (rgb(frame_a), "frame t", None), (rgb(frame_b), "frame t+1", None),
            (flow_to_colour(flow, speed), f"optical flow ({flow_name})", None),
            (flow_to_colour(disp, speed), disp_label, None),
            (_diff_image(diff, vmax), "RGB difference", "gray"),
            (_diff_image(by_flow, vmax), f"RGB diff. warped by {flow_name}", "gray"),
            (_diff_image(by_disp, vmax), "RGB diff. warped by displacement map", "gray"),
            (colour_wheel_legend(), f"colour key (|v| = {speed:.1f} px at the rim)", None)]
        fig, axes = plt.subplots(2, 4, figsize=(16, 6.6), dpi=80)
        for ax, (img, title, cmap) in zip(axes.ravel(), panels):
            ax.imshow(img, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
            ax.set_title(title, fontsize=10)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out, dpi=80)
        # Where each panel's image lies in the PNG: (top, bottom, left, right) pixels.
        height = fig.get_size_inches()[1] * 80
        boxes = []
        for ax in axes.ravel():
            e = ax.get_window_extent()
            boxes.append(tuple(int(round(v)) for v in (height - e.y1, height - e.y0, e.x0, e.x1)))
        plt.close(fig)
        return boxes
    boxes = draw()
    return {"flow": flow, "disp": disp, "diff": diff, "warped_by_flow": by_flow,
            "warped_by_disp": by_disp, "flow_method": flow_name,
            "disp_colour": flow_to_colour(disp, speed), "speed": speed,
            "panel_boxes": dict(zip(("frame_a", "frame_b", "flow", "disp", "diff",
                                     "warped_by_flow", "warped_by_disp", "legend"), boxes))}
