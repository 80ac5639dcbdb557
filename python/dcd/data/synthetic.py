"""MovingPatterns: a generated video data set whose classes are three
independent binary factors, each visible to one component of dynamics only.

- static appearance: the background's colour (warm or cool tint of the same
  random texture), which never moves;
- apparent motion: the object's direction (left or right);
- appearance change: the object's brightness, steady or flickering, while
  it moves.

Class = 4 * background + 2 * direction + flicker (8 classes). Cosine
similarity ignores a brightness scaling, so a displacement map cannot see
the flicker; warping removes the motion, so a warped difference sees only
the flicker; a plain frame difference mixes both. Per-clip brightness levels
are drawn so that a single frame cannot tell steady from flickering.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcd.util.fileio import atomic_path

BACKGROUNDS = ("Warm", "Cool")
DIRECTIONS = ("Left", "Right")
BRIGHTNESS = ("Steady", "Flicker")
CLASS_NAMES = tuple(f"{b}{d}{f}" for b in BACKGROUNDS for d in DIRECTIONS for f in BRIGHTNESS)


@dataclass(frozen=True)
class ClipSpec:
    frames: int = 16
    size: int = 64
    object_size: int = 18
    speed: float = 2.0          # pixels per frame
    flicker_period: int = 1     # frames per bright or dark phase: every pair differs


def factors(label):
    """(background, direction, flicker) bits of a class label."""
    return (label >> 2) & 1, (label >> 1) & 1, label & 1


def _background(kind, rng, size):
    """A smooth random texture, tinted warm (kind 0) or cool (kind 1).

    The two kinds share the texture statistics, so they differ only in
    colour: a single frame shows the tint, while the cosine cost volume of a
    static background (and the difference of warped frames) looks the same
    for both.
    """
    from scipy.ndimage import gaussian_filter
    wave = gaussian_filter(rng.standard_normal((size, size)), rng.uniform(1.5, 3))
    wave = wave / (np.abs(wave).max() + 1e-6)
    # Channel gains in OpenCV's BGR order: warm = more red, cool = more blue.
    tint = np.array([0.55, 0.8, 1.0]) if kind == 0 else np.array([1.0, 0.8, 0.55])
    tint = tint * rng.uniform(0.9, 1.1, size=3)
    return np.clip((0.45 + 0.35 * wave[..., None]) * tint, 0, 1)


def make_clip(label, rng, spec=ClipSpec(), info=None):
    """frames x size x size x 3 uint8 (BGR order does not matter here).

    `info`, a dict, receives the ground truth: object columns `x` and rows
    `y` (top-left), brightness `levels` per frame.
    """
    background, direction, flicker = factors(label)
    n, s, o = spec.frames, spec.size, spec.object_size
    bg = _background(background, rng, s)
    # The object: a high-contrast random texture, the same family for all classes.
    texture = (rng.random((o // 3 + 1, o // 3 + 1, 3)) > 0.5).astype(np.float32)
    texture = np.kron(texture, np.ones((3, 3, 1), np.float32))[:o, :o]
    texture = 0.25 + 0.75 * texture
    travel = spec.speed * (n - 1)
    step = spec.speed if direction == 1 else -spec.speed
    x0 = rng.uniform(2, s - o - 2 - travel)
    if direction == 0:
        x0 += travel
    y0 = int(rng.integers(4, s - o - 4))
    # Brightness per frame: steady at a level inside the flicker's range.
    low, high = sorted(rng.uniform(0.35, 1.0, size=2))
    if high - low < 0.35:
        low, high = max(0.35, high - 0.45), min(1.0, low + 0.45)
    if flicker:
        levels = [high if (t // spec.flicker_period) % 2 == 0 else low for t in range(n)]
    else:
        levels = [rng.uniform(low, high)] * n
    clip = np.empty((n, s, s, 3), np.uint8)
    if info is not None:
        info.update(x=[x0 + step * t for t in range(n)], y=y0, levels=levels, size=o,
                    frame_size=s)
    def composed(xi, level):
        frame = bg.copy()
        frame[y0:y0 + o, xi:xi + o] = texture * level
        return frame

    for t in range(n):
        x = x0 + step * t
        xi = int(np.floor(x))
        frac = x - xi
        # Sub-pixel motion: blend the object composed at the two nearest columns.
        frame = (1 - frac) * composed(xi, levels[t]) + frac * composed(xi + 1, levels[t])
        clip[t] = np.clip(frame * 255 + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
    return clip


def motion_ground_truth(info, t, margin=3):
    """Ground truth of the pair (t, t + 1) of a clip made with make_clip(info=...):
    (v, object, background), v 2 x S x S (v_y, v_x) in pixels, the object's
    motion on the pixels it covers in frame t and 0 elsewhere; `object` those
    pixels; `background` the pixels farther than `margin` from the object in
    both frames (the static part)."""
    s, o, y = info["frame_size"], info["size"], info["y"]
    x0, x1 = info["x"][t], info["x"][t + 1]
    obj = np.zeros((s, s), bool)
    obj[y:y + o, int(np.floor(x0)):int(np.floor(x0)) + o] = True
    near = np.zeros((s, s), bool)
    lo, hi = int(np.floor(min(x0, x1))) - margin, int(np.ceil(max(x0, x1))) + o + margin
    near[max(y - margin, 0):y + o + margin, max(lo, 0):hi] = True
    v = np.zeros((2, s, s), np.float32)
    v[1][obj] = x1 - x0
    return v, obj, ~near


def write_video(path, clip, fps=8):
    """An MJPEG .avi (readable by OpenCV everywhere)."""
    import cv2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = clip.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for frame in clip:
        writer.write(frame)
    writer.release()


def write_dataset(root, per_class=(24, 8, 8), seed=0, spec=ClipSpec(), progress=False):
    """Videos in UCF101's layout and split files under `root`.

    `root/videos/<Class>/v_<Class>_gNN_cNN.avi` and, in UCF101's split-file
    formats under `root/splits/`: `classInd.txt`, split 1 = train / test
    (`trainlist01.txt`, `testlist01.txt`: the figures reported) and split 2 =
    train / val (`trainlist02.txt`, `testlist02.txt`: what solvers watch), for
    per_class = (train, val, test) clips per class. Complete videos are
    kept, so a rerun writes only what is missing.
    """
    from tqdm import tqdm

    root = Path(root)
    splits = root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    (splits / "classInd.txt").write_text(
        "".join(f"{i + 1} {name}\n" for i, name in enumerate(CLASS_NAMES)))
    lists = {"train": [], "val": [], "test": []}
    jobs = []
    for label, name in enumerate(CLASS_NAMES):
        for group, (part, count) in enumerate(zip(("train", "val", "test"), per_class), 1):
            for clip_index in range(1, count + 1):
                rel = f"{name}/v_{name}_g{group:02d}_c{clip_index:02d}.avi"
                lists[part].append((rel, label))
                jobs.append((root / "videos" / rel, label, label * 1000 + group * 100 + clip_index))
    for path, label, clip_seed in tqdm(jobs, desc="MovingPatterns", unit="clip",
                                       disable=not progress):
        if path.exists():
            continue
        rng = np.random.default_rng([seed, clip_seed])
        with atomic_path(path) as tmp:  # a clip appears whole or not at all
            write_video(tmp, make_clip(label, rng, spec))
    train = "".join(f"{r} {l + 1}\n" for r, l in lists["train"])
    for k, held_out in ((1, "test"), (2, "val")):
        (splits / f"trainlist0{k}.txt").write_text(train)
        (splits / f"testlist0{k}.txt").write_text("".join(f"{r}\n" for r, _ in lists[held_out]))
    return root / "videos", splits
