"""Decode videos into TSN-style frame folders.

Layout: `<out>/<video_id>/img_00001.jpg ...`, numbered from 1, video_id the
video file's stem. A video's frames are written into `<out>/<video_id>.partial/`
and the folder is renamed to `<out>/<video_id>` after the last frame, so a
folder without the suffix is always complete: reruns skip it, and an
interrupted video (a leftover `.partial`) is decoded again from the start.
"""
import os
import shutil
import sys
import zlib
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dcd.util.fileio import write_atomic

FRAME_PATTERN = "img_{:05d}.jpg"
PARTIAL_SUFFIX = ".partial"
FAILURES_FILE = "extract_failures.txt"
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg",
                    ".m4v", ".flv", ".wmv", ".3gp", ".ogv")
DEFAULT_WIDTH, DEFAULT_HEIGHT = 340, 256  # TSN's frame size
DEFAULT_JPEG_QUALITY = 95  # OpenCV's default, as TSN's dense_flow uses
# Frames a decode may fall short of the container's count (or 1%, if more)
# before the video counts as cut short (docs/ASSUMPTIONS.md).
SHORT_DECODE_SLACK = 2


class DuplicateVideoIdError(ValueError):
    """Two videos share a file stem, so they would share a frame folder."""


@dataclass
class ExtractResult:
    video: str
    video_id: str
    num_frames: int = 0
    skipped: bool = False
    error: str = ""


@dataclass
class ExtractSummary:
    extracted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.failed


def find_videos(root, extensions=VIDEO_EXTENSIONS):
    """Video files under `root` (recursive), sorted; extension match ignores case."""
    extensions = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in filenames
                     if f.lower().endswith(extensions) and not f.startswith("."))
    return sorted(found)


def video_id_of(path):
    return Path(path).stem


def id_problem(video_id):
    """Why a video id cannot be used (file lists are whitespace-separated), or ""."""
    if not video_id or any(c.isspace() for c in video_id):
        return (f"video id {video_id!r} contains whitespace, which a file list "
                "('video_id num_frames label') cannot hold; rename the file")
    return ""


def check_unique_ids(videos, id_of=None):
    """Raise DuplicateVideoIdError listing every stem shared by two or more videos."""
    by_id = defaultdict(list)
    for video in videos:
        by_id[(id_of or video_id_of)(video)].append(str(video))
    duplicates = {vid: paths for vid, paths in by_id.items() if len(paths) > 1}
    if duplicates:
        lines = [f"  {vid}: " + ", ".join(paths) for vid, paths in sorted(duplicates.items())]
        raise DuplicateVideoIdError(
            f"{len(duplicates)} video id(s) (file stems) are shared by several videos; "
            "frame folders are named by stem, so rename them first:\n" + "\n".join(lines))


def target_size(width, height, out_width=DEFAULT_WIDTH, out_height=DEFAULT_HEIGHT,
                short_side=None):
    """Output (width, height): fixed, or scaled so the shorter side is `short_side`."""
    if short_side:
        scale = short_side / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    return out_width, out_height


def short_decode(capture, decoded, max_frames=None):
    """"" or why `decoded` frames are too few: the container declares more.

    Containers that give a count (AVI headers, MP4 sample tables) are trusted
    up to SHORT_DECODE_SLACK; a file cut short keeps its header's count, so a
    half-decoded video is caught. A count of 0 (unknown) checks nothing."""
    import cv2
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    if declared <= 0:
        return ""
    expected = min(declared, max_frames) if max_frames else declared
    if decoded >= expected - max(SHORT_DECODE_SLACK, round(0.01 * expected)):
        return ""
    return (f"decoded {decoded} of the {declared} frames the container declares (a cut or "
            "damaged file?); pass --allow-short to keep the frames that decode")


def is_complete(out_root, video_id):
    return (Path(out_root) / video_id).is_dir()


@contextmanager
def partial_folder(out_root, video_id, result):
    """Yields `<out_root>/<video_id>.partial/`, made empty, to write a video into.

    When the block ends with `result.error` unset, the folder is renamed to
    `<out_root>/<video_id>` (the completion marker); on an error or an
    exception it is removed, so nothing half-written is kept.
    """
    final = Path(out_root) / video_id
    partial = Path(out_root) / (video_id + PARTIAL_SUFFIX)
    # A leftover partial folder is from an interrupted run: start over.
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    done = False
    try:
        yield partial
        done = not result.error
    finally:
        if done:
            os.replace(partial, final)
        else:
            shutil.rmtree(partial, ignore_errors=True)


def write_jpeg(path, image, params):
    """Encode and write one frame; "" or why not, with the OS's reason (a
    full disk, permissions), which cv2.imwrite does not give."""
    import cv2
    from dcd.util.cli import describe_os_error
    ok, data = cv2.imencode(".jpg", image, params)
    if not ok:
        return f"cannot encode {path} as JPEG"
    try:
        with open(path, "wb") as f:
            f.write(data.tobytes())
    except OSError as exc:
        return f"cannot write {describe_os_error(exc, path)}"
    return ""


def open_video(video):
    """An opened cv2.VideoCapture, or None when OpenCV cannot open the file."""
    import cv2
    capture = cv2.VideoCapture(str(video))
    if capture.isOpened():
        return capture
    capture.release()
    return None


def read_resized(capture, width=DEFAULT_WIDTH, height=DEFAULT_HEIGHT, short_side=None,
                 max_frames=None):
    """Yields the capture's frames (BGR), resized as extract_frames stores them."""
    import cv2
    count = 0
    while max_frames is None or count < max_frames:
        ok, frame = capture.read()
        if not ok:
            return
        size = target_size(frame.shape[1], frame.shape[0], width, height, short_side)
        if (frame.shape[1], frame.shape[0]) != size:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        count += 1
        yield frame


def extract_video(video, out_root, width=DEFAULT_WIDTH, height=DEFAULT_HEIGHT,
                  short_side=None, max_frames=None, quality=DEFAULT_JPEG_QUALITY,
                  allow_short=False):
    """Decode one video into `<out_root>/<video_id>/`; returns an ExtractResult.

    Failures (cannot open, no frame decoded, fewer frames than the container
    declares unless `allow_short`, cannot write) come back in
    `result.error` rather than raising, so one bad video does not stop a batch.
    """
    import cv2

    video_id = video_id_of(video)
    result = ExtractResult(str(video), video_id)
    if is_complete(out_root, video_id):
        result.skipped = True
        return result
    capture = open_video(video)
    if capture is None:
        result.error = "OpenCV cannot open the video"
        return result
    try:
        with partial_folder(out_root, video_id, result) as partial:
            params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
            for frame in read_resized(capture, width, height, short_side, max_frames):
                path = partial / FRAME_PATTERN.format(result.num_frames + 1)
                result.error = write_jpeg(path, frame, params)
                if result.error:
                    return result
                result.num_frames += 1
            if result.num_frames == 0:
                result.error = "0 frames decoded"
            elif not allow_short:
                result.error = short_decode(capture, result.num_frames, max_frames)
        return result
    finally:
        capture.release()


# ----------------------------------------------------------------- shards

def parse_shard(text):
    """"K/N" -> (K, N), 0 <= K < N; ValueError with the reason otherwise."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must be K/N with integers 0 <= K < N, got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard must be K/N with 0 <= K < N, got {text!r}")
    return k, n


def shard_of(video_id, num_shards):
    """The shard (0..num_shards-1) a video belongs to: CRC-32 of its id mod N.

    It depends on the id alone, not on which other videos a machine sees, so
    every array job agrees even while the video folder is still filling up.
    """
    return zlib.crc32(video_id.encode("utf-8")) % num_shards


def select_shard(videos, shard, id_of=None):
    """The videos of shard (K, N), in their given order; None selects all."""
    if shard is None:
        return list(videos)
    k, n = shard
    id_of = id_of or video_id_of
    return [v for v in videos if shard_of(id_of(v), n) == k]


def failures_name(shard=None):
    """Each shard lists its own failures, so array jobs do not overwrite each other's."""
    if shard is None:
        return FAILURES_FILE
    stem, ext = os.path.splitext(FAILURES_FILE)
    return f"{stem}.shard-{shard[0]}-of-{shard[1]}{ext}"


# ------------------------------------------- command lines (extract_frames, extract_flow)

def add_batch_arguments(parser, size_what="output", max_frames_help="keep only the first N "
                        "frames of each video (tests, quick looks)",
                        workers_help="parallel decoding processes"):
    """The options both extraction tools share: frame size, JPEG quality,
    frame limit, worker processes, shard, progress bar."""
    parser.add_argument("--width", type=int,
                        help=f"{size_what} width (default: {DEFAULT_WIDTH})")
    parser.add_argument("--height", type=int,
                        help=f"{size_what} height (default: {DEFAULT_HEIGHT})")
    parser.add_argument("--short-side", type=int, metavar="N",
                        help="instead of --width/--height: scale so the shorter side is N, "
                             "keeping the aspect ratio")
    parser.add_argument("--quality", type=int, default=DEFAULT_JPEG_QUALITY,
                        help="JPEG quality (default: %(default)s)")
    parser.add_argument("--max-frames", type=int, metavar="N", help=max_frames_help)
    parser.add_argument("--allow-short", action="store_true",
                        help="keep a video that decodes to fewer frames than its container "
                             "declares (default: it fails, as a cut or damaged file)")
    parser.add_argument("--workers", type=int, default=1,
                        help=workers_help + " (default: %(default)s)")
    parser.add_argument("--shard", metavar="K/N",
                        help="only the videos of shard K of N (0 <= K < N; a fixed partition "
                             "by video id, for cluster array jobs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def batch_shard(parser, args):
    """Check the shared options (parser.error on a conflict); returns the shard or None."""
    for flag in ("width", "height", "short_side", "max_frames"):
        value = getattr(args, flag)
        if value is not None and value < 1:  # 0 must not silently mean "the default"
            parser.error(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if not 0 <= args.quality <= 100:
        parser.error(f"--quality must be 0..100, got {args.quality}")
    if args.short_side and (args.width or args.height):
        parser.error("--short-side excludes --width/--height")
    try:
        return parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        parser.error(str(exc))


def report_batch(summary, out, shard, tool):
    """The batch's one-line summary on stdout, then the failed videos on
    stderr; returns the tool's exit status."""
    total = len(summary.extracted) + len(summary.skipped) + len(summary.failed)
    where = f" of shard {shard[0]}/{shard[1]}" if shard else ""
    print(f"{tool}: {total} videos{where}: {len(summary.extracted)} extracted, "
          f"{len(summary.skipped)} already complete, {len(summary.failed)} failed")
    if not summary.failed:
        return 0
    for result in sorted(summary.failed, key=lambda r: r.video):
        print(f"  FAILED {result.video}: {result.error}", file=sys.stderr)
    print(f"  (listed in {Path(out) / failures_name(shard)})", file=sys.stderr)
    return 1


def _worker_init():
    import cv2
    cv2.setNumThreads(1)  # parallelism comes from the worker processes


def _extract_star(job):
    extract, video, out_root, id_of, options = job
    try:
        return extract(video, out_root, **options)
    except Exception as exc:  # noqa: BLE001 -- report, keep the batch going
        return ExtractResult(str(video), id_of(video), error=f"{type(exc).__name__}: {exc}")


def extract_all(videos, out_root, workers=1, progress=True, shard=None, extract=extract_video,
                id_of=video_id_of, desc="extract", **options):
    """Extract every video (skipping complete ones) and write the failure list.

    `extract(video, out_root, **options)` does one video (a module-level
    function, so worker processes can load it) and `id_of` names its folder.
    `shard` = (K, N) keeps only the videos of shard K (see `shard_of`); ids
    are checked for duplicates over all videos first.
    `<out_root>/extract_failures.txt` (per shard: `failures_name`) lists this
    run's failures ("path<TAB>reason"); it is removed when none failed.
    Failed videos are retried on the next run.
    """
    from tqdm import tqdm

    videos = [Path(v) for v in videos]
    check_unique_ids(videos, id_of)
    videos = select_shard(videos, shard, id_of)
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    summary = ExtractSummary()
    todo = []
    for video in videos:
        if id_problem(id_of(video)):  # refused before any frame is written
            summary.failed.append(ExtractResult(str(video), id_of(video),
                                                error=id_problem(id_of(video))))
        elif is_complete(out_root, id_of(video)):
            summary.skipped.append(ExtractResult(str(video), id_of(video), skipped=True))
        else:
            todo.append((extract, video, str(out_root), id_of, options))

    bar = tqdm(total=len(videos), initial=len(summary.skipped), unit="video",
               desc=desc, disable=not progress)
    try:
        if workers <= 1 or len(todo) <= 1:
            results = map(_extract_star, todo)
            pool = None
        else:
            import multiprocessing
            # spawn: forking a process that has loaded OpenCV can deadlock.
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)
            results = pool.imap_unordered(_extract_star, todo)
        try:
            for result in results:
                if result.error:
                    summary.failed.append(result)
                    bar.write(f"FAILED {result.video}: {result.error}", file=sys.stderr)
                elif result.skipped:
                    summary.skipped.append(result)
                else:
                    summary.extracted.append(result)
                bar.update(1)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        bar.close()

    failures_path = out_root / failures_name(shard)
    if summary.failed:
        text = "".join(f"{r.video}\t{r.error}\n" for r in sorted(summary.failed, key=lambda r: r.video))
        write_atomic(failures_path, text)
    elif failures_path.exists():
        failures_path.unlink()
    return summary
