"""Optical flow between consecutive frames, stored as TSN's dense_flow stores it.

Layout: `<out>/<video_id>/flow_x_00001.jpg, flow_y_00001.jpg, ...`: pair i is
the flow from frame i to frame i + 1 (i = 1..n-1 for n frames), one grey JPEG
per component. A displacement v (pixels) is clipped to [-bound, bound] and
stored as round(255 * (v + bound) / (2 * bound)), so one grey level is
2 * bound / 255 px (40/255 for the default bound 20) and 127.5 means no motion.

Flow is computed on the frames at the size extract_frames stores them
(340x256 by default), from a video or from an existing frame folder tree,
with the same completion rule: a `.partial` folder renamed when the last pair
is written (dcd.data.frames).
"""
import os
from dataclasses import dataclass
from pathlib import Path

from dcd.data import frames

FLOW_X_PATTERN = "flow_x_{:05d}.jpg"
FLOW_Y_PATTERN = "flow_y_{:05d}.jpg"
DEFAULT_BOUND = 20.0  # TSN's clipping bound, pixels
METHODS = ("tvl1", "farneback")

# OpenCV's own defaults for cv2.optflow.DualTVL1OpticalFlow_create.
TVL1_DEFAULTS = dict(tau=0.25, lambda_=0.15, theta=0.3, nscales=5, warps=5, epsilon=0.01,
                     inner_iterations=30, outer_iterations=10, scale_step=0.8, gamma=0.0,
                     median_filtering=5)
# A cheaper setting (docs/DATA.md gives its cost and its distance to the default).
TVL1_PRESETS = {
    "default": {},
    "light": dict(warps=2, inner_iterations=10, outer_iterations=4),
}
FARNEBACK_DEFAULTS = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5,
                          poly_sigma=1.2)


@dataclass(frozen=True)
class FlowMethod:
    """A picklable description of a flow estimator (workers build their own)."""
    method: str = "tvl1"
    preset: str = "default"
    overrides: tuple = ()  # ((name, value), ...) over the preset, TV-L1 only

    def params(self):
        if self.method == "farneback":
            return dict(FARNEBACK_DEFAULTS)
        params = dict(TVL1_DEFAULTS, **TVL1_PRESETS[self.preset])
        params.update(self.overrides)
        return params

    def describe(self):
        if self.method == "farneback":
            return "Farneback " + ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"TV-L1 ({self.preset}) " + ", ".join(f"{k}={v}" for k, v in self.params().items())


def flow_method(method="tvl1", preset="default", **overrides):
    """FlowMethod after checking names: method in METHODS, preset in
    TVL1_PRESETS, overrides among TVL1_DEFAULTS' keys (None values ignored)."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose from {', '.join(METHODS)}")
    if preset not in TVL1_PRESETS:
        raise ValueError(f"unknown TV-L1 preset {preset!r}; choose from {', '.join(TVL1_PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - set(TVL1_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown TV-L1 parameter(s): {', '.join(sorted(unknown))}")
    if method == "farneback" and (overrides or preset != "default"):
        raise ValueError("TV-L1 presets and parameters do not apply to Farneback")
    return FlowMethod(method, preset, tuple(sorted(overrides.items())))


class FlowEstimator:
    """Callable (prev_grey, next_grey) -> H x W x 2 float32 flow (x, y), in
    pixels: prev(p) matches next(p + flow(p))."""

    def __init__(self, method=None):
        import cv2
        self.method = method or FlowMethod()
        p = self.method.params()
        if self.method.method == "tvl1":
            self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(
                tau=p["tau"], lambda_=p["lambda_"], theta=p["theta"], nscales=p["nscales"],
                warps=p["warps"], epsilon=p["epsilon"], innnerIterations=p["inner_iterations"],
                outerIterations=p["outer_iterations"], scaleStep=p["scale_step"],
                gamma=p["gamma"], medianFiltering=p["median_filtering"])
        else:
            self._tvl1 = None

    def __call__(self, prev_grey, next_grey):
        import cv2
        if self._tvl1 is not None:
            return self._tvl1.calc(prev_grey, next_grey, None)
        p = self.method.params()
        return cv2.calcOpticalFlowFarneback(prev_grey, next_grey, None, p["pyr_scale"],
                                            p["levels"], p["winsize"], p["iterations"],
                                            p["poly_n"], p["poly_sigma"], 0)


def to_grey(image):
    import cv2
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def quantize_flow(flow, bound=DEFAULT_BOUND):
    """H x W x 2 flow (x, y) in pixels -> (x, y) uint8 images, as dense_flow does:
    clip to [-bound, bound], map linearly to 0..255, round."""
    import numpy as np
    q = np.rint((np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound)))
    q = q.astype(np.uint8)
    return np.ascontiguousarray(q[..., 0]), np.ascontiguousarray(q[..., 1])


def dequantize_flow(x, y, bound=DEFAULT_BOUND):
    """(x, y) grey images -> H x W x 2 float32 flow in pixels (inverse of quantize_flow)."""
    import numpy as np
    q = np.stack([x, y], axis=-1).astype(np.float32)
    return q * np.float32(2 * bound / 255.0) - np.float32(bound)


def compute_flow_pair(prev, next_, estimator=None, bound=DEFAULT_BOUND):
    """Flow from `prev` to `next_` (BGR or grey uint8 of one size), quantised:
    returns the (x, y) uint8 images that extract_flow writes."""
    if prev.shape[:2] != next_.shape[:2]:
        raise ValueError(f"frames differ in size: {prev.shape[:2]} vs {next_.shape[:2]}")
    estimator = estimator or FlowEstimator()
    return quantize_flow(estimator(to_grey(prev), to_grey(next_)), bound)


def compute_clip_flow(clip, estimator=None, bound=DEFAULT_BOUND):
    """[(x, y)] for the consecutive pairs of a list of frames (len(clip) - 1 pairs)."""
    estimator = estimator or FlowEstimator()
    greys = [to_grey(f) for f in clip]
    return [quantize_flow(estimator(a, b), bound) for a, b in zip(greys, greys[1:])]


# ------------------------------------------------------------- extraction

def _write_flows(frame_iter, partial, result, method, bound, quality):
    """Flows of consecutive frames into `partial`; sets result.num_frames to the pair count."""
    import cv2
    estimator = FlowEstimator(method)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    prev, frames_seen = None, 0
    for frame in frame_iter:
        grey = to_grey(frame)
        frames_seen += 1
        if prev is not None:
            if grey.shape != prev.shape:
                result.error = (f"frame {frames_seen} is {grey.shape[1]}x{grey.shape[0]}, "
                                f"frame 1 was {prev.shape[1]}x{prev.shape[0]}")
                return frames_seen
            x, y = quantize_flow(estimator(prev, grey), bound)
            index = result.num_frames + 1
            for pattern, image in ((FLOW_X_PATTERN, x), (FLOW_Y_PATTERN, y)):
                path = partial / pattern.format(index)
                result.error = frames.write_jpeg(path, image, params)
                if result.error:
                    return frames_seen
            result.num_frames = index
        prev = grey
    if frames_seen < 2:
        result.error = f"{frames_seen} frame(s) decoded; flow needs 2"
    return frames_seen


def extract_video_flow(video, out_root, width=frames.DEFAULT_WIDTH, height=frames.DEFAULT_HEIGHT,
                       short_side=None, max_frames=None, quality=frames.DEFAULT_JPEG_QUALITY,
                       method=None, bound=DEFAULT_BOUND, allow_short=False):
    """Flow of one video into `<out_root>/<video_id>/`, on its frames resized as
    extract_frames resizes them (`max_frames` frames give max_frames - 1 pairs).
    Returns an ExtractResult whose num_frames is the number of flow pairs."""
    video_id = frames.video_id_of(video)
    result = frames.ExtractResult(str(video), video_id)
    if frames.is_complete(out_root, video_id):
        result.skipped = True
        return result
    capture = frames.open_video(video)
    if capture is None:
        result.error = "OpenCV cannot open the video"
        return result
    try:
        with frames.partial_folder(out_root, video_id, result) as partial:
            seen = _write_flows(frames.read_resized(capture, width, height, short_side,
                                                    max_frames),
                                partial, result, method, bound, quality)
            if not result.error and not allow_short:
                result.error = frames.short_decode(capture, seen, max_frames)
        return result
    finally:
        capture.release()


def folder_id_of(folder):
    return Path(folder).name


def find_frame_folders(frames_root):
    """Complete frame folders (`<root>/<video_id>/img_*.jpg`, no `.partial`), sorted."""
    with os.scandir(frames_root) as it:
        return sorted(Path(e.path) for e in it
                      if e.is_dir() and not e.name.endswith(frames.PARTIAL_SUFFIX)
                      and not e.name.startswith("."))


def _read_frame_folder(folder, max_frames):
    from dcd.data.jpeg import CorruptFrameError, read_frame
    index = 1
    while max_frames is None or index <= max_frames:
        path = Path(folder) / frames.FRAME_PATTERN.format(index)
        if not path.exists():
            return
        # Colour, then to_grey: the same grey as from a decoded video.
        try:
            image = read_frame(path, colour=True)
        except CorruptFrameError as exc:
            raise ValueError(f"frame {index} ({path}): {exc}") from None
        yield image
        index += 1


def extract_folder_flow(folder, out_root, max_frames=None, quality=frames.DEFAULT_JPEG_QUALITY,
                        method=None, bound=DEFAULT_BOUND):
    """Flow of a frame folder (`img_00001.jpg` ... as extract_frames writes
    them, at their stored size) into `<out_root>/<folder name>/`."""
    video_id = folder_id_of(folder)
    result = frames.ExtractResult(str(folder), video_id)
    if frames.is_complete(out_root, video_id):
        result.skipped = True
        return result
    with frames.partial_folder(out_root, video_id, result) as partial:
        try:
            _write_flows(_read_frame_folder(folder, max_frames), partial, result, method,
                         bound, quality)
        except ValueError as exc:
            result.error = str(exc)
    return result


def extract_all_flow(inputs, out_root, from_frames=False, workers=1, progress=True, shard=None,
                     **options):
    """Flow for every video (or frame folder, `from_frames`) not yet complete
    in `out_root`; the batch rules (workers, shards, failure list) are
    dcd.data.frames.extract_all's. Returns its ExtractSummary."""
    if from_frames:
        sizes = [k for k in ("width", "height", "short_side") if options.pop(k, None) is not None]
        if sizes:
            raise ValueError(f"from_frames uses the frames' stored size; drop {', '.join(sizes)}")
        return frames.extract_all(inputs, out_root, workers=workers, progress=progress,
                                  shard=shard, extract=extract_folder_flow, id_of=folder_id_of,
                                  desc="flow", **options)
    return frames.extract_all(inputs, out_root, workers=workers, progress=progress, shard=shard,
                              extract=extract_video_flow, desc="flow", **options)


def read_flow_folder(flow_root, video_id):
    """[(x, y)] uint8 images of a stored video's flow, in pair order."""
    import cv2
    from dcd.data.filelists import count_frames
    folder = Path(flow_root) / video_id
    pairs = []
    for i in range(1, count_frames(flow_root, video_id, "flow") + 1):
        pair = tuple(cv2.imread(str(folder / p.format(i)), cv2.IMREAD_GRAYSCALE)
                     for p in (FLOW_X_PATTERN, FLOW_Y_PATTERN))
        pairs.append(pair)
    return pairs
