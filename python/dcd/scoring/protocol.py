"""TSN's test-time protocol, in plain numpy (no Caffe), so tests can check it.

Per video: `num_snippets` (25) snippets whose first frames are evenly spaced
from frame 1 (TSN's eval_net.py: step = (n - L) // (S - 1)); each snippet is
`new_length` (L) consecutive frames. Each frame is resized to 340x256 if it
is not already, and cut into 10 crops (4 corners and the centre, then the
same five mirrored) or one centre crop; BGR means 104, 117, 123 are
subtracted. Every frame of a snippet is cropped at the same place.

Net input layouts (told by the deploy net's input blob, N x C x H x W):

* "snippet": C == 3, the L frames of one sample are L consecutive rows,
  (samples * L) x 3 x H x W; DCD's nets (DESIGN.md, blob layout).
* "stacked": C == 3 * L with L > 1, the L frames of one sample are stacked
  along the channels (frame 1's BGR, frame 2's BGR, ...), one row per sample;
  TSN's RGB-difference style.
"""
import numpy as np

MEAN_BGR = (104.0, 117.0, 123.0)
FRAME_SIZE = (340, 256)  # (width, height), TSN's frame size
NUM_SNIPPETS = 25
CROP_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")


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


def resize_frame(frame, frame_size=FRAME_SIZE):
    import cv2
    w, h = frame_size
    if frame.shape[:2] != (h, w):
        frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    return frame


def crop_snippet(frames, crop_h, crop_w, ten_crop=True, mean=MEAN_BGR):
    """frames: L arrays H x W x 3 (BGR, uint8, same size).

    Returns K x L x 3 x crop_h x crop_w float32 (K = 10 or 1), mean subtracted.
    """
    stack = np.stack(frames).astype(np.float32)            # L x H x W x 3
    stack -= np.asarray(mean, np.float32)
    stack = stack.transpose(0, 3, 1, 2)                    # L x 3 x H x W
    out = []
    for y, x, mirror in crop_boxes(stack.shape[2], stack.shape[3], crop_h, crop_w, ten_crop):
        c = stack[:, :, y:y + crop_h, x:x + crop_w]
        out.append(c[..., ::-1] if mirror else c)
    return np.ascontiguousarray(np.stack(out))


def input_layout(shape, new_length):
    """'snippet' or 'stacked' for a net input N x C x H x W (see module doc)."""
    n, c = shape[0], shape[1]
    if c == 3:
        if n % new_length:
            raise ValueError(f"net input has {n} rows, not a multiple of new_length={new_length} "
                             "(snippet layout: (samples * L) x 3 x H x W)")
        return "snippet"
    if c == 3 * new_length:
        return "stacked"
    raise ValueError(f"net input has {c} channels: expected 3 (snippet layout) or "
                     f"3 * new_length = {3 * new_length} (stacked layout)")


def samples_per_forward(shape, new_length):
    layout = input_layout(shape, new_length)
    return shape[0] // new_length if layout == "snippet" else shape[0]


def to_net_rows(samples, layout):
    """M x L x 3 x H x W samples -> net rows for the layout."""
    m, l, c, h, w = samples.shape
    if layout == "snippet":
        return samples.reshape(m * l, c, h, w)
    return samples.reshape(m, l * c, h, w)


def iter_snippets(frames_by_index, num_frames, crop_h, crop_w, num_snippets=NUM_SNIPPETS,
                  new_length=1, ten_crop=True, frame_size=FRAME_SIZE, mean=MEAN_BGR):
    """Yield each snippet's crops, K x L x 3 x h x w, in snippet order.

    `frames_by_index(list of 1-based indices)` returns those frames (BGR).
    One snippet at a time: 25 x 10 crops of 8-frame snippets would be 1.2 GB.
    """
    idx = snippet_frames(num_frames, num_snippets, new_length)
    unique = sorted(set(idx.ravel().tolist()))
    loaded = dict(zip(unique, (resize_frame(f, frame_size) for f in frames_by_index(unique))))
    for row in idx:
        yield crop_snippet([loaded[i] for i in row], crop_h, crop_w, ten_crop, mean)


def video_samples(*args, **kwargs):
    """All samples of one video: (S * K) x L x 3 x h x w, snippet-major, crop-minor."""
    return np.concatenate(list(iter_snippets(*args, **kwargs)))
