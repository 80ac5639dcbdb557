"""TSN's test-time protocol, in plain numpy (no Caffe), so tests can check it.

Per video: `num_snippets` (25) snippets whose first frames are evenly spaced
from frame 1 (TSN's eval_net.py: step = (n - L) // (S - 1)); each snippet is
`new_length` (L) consecutive frames. Each frame is resized to 340x256 if it
is not already, and cut into 10 crops (4 corners and the centre, then the
same five mirrored) or one centre crop; BGR means 104, 117, 123 are
subtracted. Every frame of a snippet is cropped at the same place.

Net input layouts (told by the deploy net's input blob, N x C x H x W):

* "snippet": C == 3, the L frames of one sample are L consecutive rows,
  (samples * L) x 3 x H x W; DCD's nets (the VideoData layer's output).
* "stacked": C == 3 * L with L > 1, the L frames of one sample are stacked
  along the channels (frame 1's BGR, frame 2's BGR, ...), one row per sample;
  TSN's RGB-difference style.

Modalities (dcd.scoring.readers): "rgb" as above; "flow", TSN's flow stream,
2 channels per frame (x, y as stored, mean 128; a mirrored crop inverts x,
255 - x, before the mean), stacked (x1, y1, x2, y2, ...: C == 2 * L);
"rgb_flow", 5 channels per frame (BGR minus the means, then the frame's flow
v_y, v_x in pixels, negated v_x when mirrored), snippet layout (C == 5), the
input of the TV-L1 warping net. Flow frames are resized like RGB frames (the
rgb_flow displacements scaled with them).
"""
import numpy as np

from dcd.data.frames import DEFAULT_HEIGHT, DEFAULT_WIDTH
from dcd.data.video_net import FLOW_MEAN, MEAN_BGR

CHANNELS = {"rgb": 3, "flow": 2, "rgb_flow": 5}
FRAME_SIZE = (DEFAULT_WIDTH, DEFAULT_HEIGHT)  # (width, height)
NUM_SNIPPETS = 25


def snippet_starts(num_frames, num_snippets=NUM_SNIPPETS, new_length=1):
    """1-based first frame of each snippet (TSN eval_net.py's frame ticks)."""
    if num_snippets < 1:
        raise ValueError("num_snippets must be >= 1")
    step = (num_frames - new_length) // (num_snippets - 1) if num_snippets > 1 else 0
    if step <= 0:
        # Too short for distinct ticks: TSN repeats the first snippet.
        return [1] * num_snippets
    return [1 + step * k for k in range(num_snippets)]


def snippet_frames(num_frames, num_snippets=NUM_SNIPPETS, new_length=1):
    """S x L array of 1-based frame indices; past the last frame we repeat it."""
    starts = np.asarray(snippet_starts(num_frames, num_snippets, new_length))
    idx = starts[:, None] + np.arange(new_length)[None, :]
    return np.minimum(idx, num_frames)


def crop_boxes(height, width, crop_h, crop_w, ten_crop=True):
    """[(y, x, mirror)]: 4 corners, centre, then their mirrors (caffe.io.oversample's order)."""
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {crop_w}x{crop_h} is larger than the frame {width}x{height}")
    cy, cx = (height - crop_h) // 2, (width - crop_w) // 2
    if not ten_crop:
        return [(cy, cx, False)]
    corners = [(0, 0), (0, width - crop_w), (height - crop_h, 0),
               (height - crop_h, width - crop_w), (cy, cx)]
    return [(y, x, False) for y, x in corners] + [(y, x, True) for y, x in corners]


def resize_frame(frame, frame_size=FRAME_SIZE, modality="rgb"):
    import cv2
    w, h = frame_size
    if frame.shape[:2] != (h, w):
        if modality == "rgb_flow":  # displacements in pixels scale with the image
            frame = frame * np.array([1, 1, 1, h / frame.shape[0], w / frame.shape[1]],
                                     np.float32)
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    return frame


def _normalise(crop, mirror, modality, mean):
    """One crop, L x C x h x w float32 before the mean: mirror, then subtract."""
    crop = crop[..., ::-1].copy() if mirror else crop.copy()  # crops overlap: never in place
    if mirror:
        if modality == "flow":
            crop[:, 0] = 255.0 - crop[:, 0]  # TSN: a flipped x flow points the other way
        elif modality == "rgb_flow":
            crop[:, 4] = -crop[:, 4]
    if modality == "flow":
        return crop - np.float32(FLOW_MEAN)
    crop[:, :3] -= np.asarray(mean, np.float32)[:, None, None]
    return crop


def crop_snippet(frames, crop_h, crop_w, ten_crop=True, mean=MEAN_BGR, modality="rgb"):
    """frames: L arrays H x W x C (same size; C as the modality, module doc).

    Returns K x L x C x crop_h x crop_w float32 (K = 10 or 1), mean subtracted.
    """
    stack = np.stack(frames).astype(np.float32).transpose(0, 3, 1, 2)   # L x C x H x W
    out = []
    for y, x, mirror in crop_boxes(stack.shape[2], stack.shape[3], crop_h, crop_w, ten_crop):
        out.append(_normalise(stack[:, :, y:y + crop_h, x:x + crop_w], mirror, modality, mean))
    return np.ascontiguousarray(np.stack(out))


def infer_modality(shape, new_length):
    """The modality a deploy input N x C x H x W reads (module doc)."""
    c = shape[1]
    if c in (3, 3 * new_length):
        return "rgb"
    if c == 2 * new_length:
        return "flow"
    if c == 5:
        return "rgb_flow"
    raise ValueError(f"net input has {c} channels: expected 3 or 3 * new_length = "
                     f"{3 * new_length} (RGB), 2 * new_length = {2 * new_length} (flow) or 5 "
                     "(RGB with flow)")


def input_layout(shape, new_length, modality="rgb"):
    """'snippet' or 'stacked' for a net input N x C x H x W (see module doc)."""
    n, c = shape[0], shape[1]
    per_frame = CHANNELS[modality]
    if c == per_frame and modality != "flow":
        if n % new_length:
            raise ValueError(f"net input has {n} rows, not a multiple of new_length={new_length} "
                             f"(snippet layout: (samples * L) x {per_frame} x H x W)")
        return "snippet"
    if c == per_frame * new_length and modality != "rgb_flow":
        return "stacked"
    raise ValueError(f"net input has {c} channels: {modality} expects "
                     + (f"{per_frame} (snippet layout) or " if modality != "flow" else "")
                     + (f"{per_frame} * new_length = {per_frame * new_length} (stacked layout)"
                        if modality != "rgb_flow" else ""))


def samples_per_forward(shape, new_length, modality="rgb"):
    layout = input_layout(shape, new_length, modality)
    return shape[0] // new_length if layout == "snippet" else shape[0]


def to_net_rows(samples, layout):
    """M x L x 3 x H x W samples -> net rows for the layout."""
    m, l, c, h, w = samples.shape
    if layout == "snippet":
        return samples.reshape(m * l, c, h, w)
    return samples.reshape(m, l * c, h, w)


def frames_read(num_frames, num_snippets=NUM_SNIPPETS, new_length=1):
    """The distinct 1-based frames iter_snippets asks for, ascending (one
    read call per video)."""
    return sorted(set(snippet_frames(num_frames, num_snippets, new_length).ravel().tolist()))


def iter_snippets(frames_by_index, num_frames, crop_h, crop_w, num_snippets=NUM_SNIPPETS,
                  new_length=1, ten_crop=True, frame_size=FRAME_SIZE, mean=MEAN_BGR,
                  modality="rgb"):
    """Yield each snippet's crops, K x L x C x h x w, in snippet order.

    `frames_by_index(list of 1-based indices)` returns those frames (BGR).
    One snippet at a time: 25 x 10 crops of 8-frame snippets would be 1.2 GB.
    """
    idx = snippet_frames(num_frames, num_snippets, new_length)
    unique = frames_read(num_frames, num_snippets, new_length)
    loaded = dict(zip(unique, (resize_frame(f, frame_size, modality)
                               for f in frames_by_index(unique))))
    for row in idx:
        yield crop_snippet([loaded[i] for i in row], crop_h, crop_w, ten_crop, mean, modality)
