"""An LMDB of encoded video frames, one Caffe Datum per frame.

Key scheme (read by the C++ VideoData layer; documented in docs/DATA.md):

    "{video_id}/img_{i:05d}.jpg"  (i = 1..n)  -> Datum(channels, height, width,
                                                encoded=True, data=<JPEG file bytes>,
                                                label=<video label>)
    "__video__/{video_id}"                    -> ASCII decimal n

and for optical flow (modality "flow", tools/extract_flow.py's JPEGs):

    "{video_id}/flow_x_{i:05d}.jpg", "{video_id}/flow_y_{i:05d}.jpg"
                                   (i = 1..m)  -> Datum(1, height, width, encoded JPEG, label)
    "__flow__/{video_id}"                      -> ASCII decimal m (flow pairs)

A video is written in one transaction, its marker last, so a reader sees
either the whole video with its marker or nothing of it. A video's frames and
its flow have separate markers and may share one LMDB. Builds are resumable:
videos whose marker and label already match the file list are skipped.
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dcd.data.filelists import MODALITIES, unique_entries
from dcd.data.flow import FLOW_X_PATTERN, FLOW_Y_PATTERN
from dcd.data.frames import FRAME_PATTERN
from dcd.data.jpeg import jpeg_problem

MARKER_PREFIX = "__video__/"
# Per modality: the file/key patterns of one frame index, and the marker prefix.
PATTERNS = {"rgb": (FRAME_PATTERN,), "flow": (FLOW_X_PATTERN, FLOW_Y_PATTERN)}
MARKER_PREFIXES = {"rgb": MARKER_PREFIX, "flow": "__flow__/"}
DEFAULT_MAP_SIZE = 1 << 30  # grown by doubling when full
DECODE_CHECKS = ("all", "sample", "none")


def frame_key(video_id, index, pattern=FRAME_PATTERN):
    return f"{video_id}/{pattern.format(index)}".encode()


def marker_key(video_id, modality="rgb"):
    return f"{MARKER_PREFIXES[modality]}{video_id}".encode()


def _check_modality(modality):
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES)}")


class BadFrameError(RuntimeError):
    """A frame that is missing or not a decodable JPEG; names the video and file."""

    def __init__(self, video_id, path, reason):
        super().__init__(f"video {video_id}: frame {path}: {reason}")
        self.video_id, self.path, self.reason = video_id, str(path), reason


def _caffe_pb2():
    from caffe.proto import caffe_pb2
    return caffe_pb2


# ------------------------------------------------------------------ JPEG checks

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_geometry(data):
    """(height, width, channels) from a JPEG's frame header, or a reason string.

    A cheap structural check done on every frame: the start and end markers
    must be present (a truncated file lacks the end marker, and OpenCV would
    still decode it, filling the rest with grey) and a frame header must come
    before the scan.
    """
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return "not a JPEG (no start-of-image marker)"
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker)"
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return f"corrupt JPEG (bad marker at byte {pos})"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SOF_MARKERS:
            if pos + 10 > len(data):
                break
            height = int.from_bytes(data[pos + 5:pos + 7], "big")
            width = int.from_bytes(data[pos + 7:pos + 9], "big")
            channels = data[pos + 9]
            if height == 0 or width == 0 or channels not in (1, 3):
                return f"unsupported JPEG frame header ({width}x{height}, {channels} channels)"
            return height, width, channels
        if marker == 0xDA:
            break
        pos += 2 + length
    return "corrupt JPEG (no frame header)"


def decode_jpeg(data):
    import cv2
    import numpy as np
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def _decode_indices(n, decode_check):
    if decode_check == "all":
        return range(n)
    if decode_check == "sample":
        return sorted({0, n // 2, n - 1})
    return ()


def read_video_jpegs(frames_root, video_id, num_frames, decode_check="all", modality="rgb"):
    """The video's JPEG bytes and geometry; BadFrameError on the first bad frame.

    Bytes come in key order: frame 1..n (rgb), or flow_x 1, flow_y 1, flow_x 2, ... (flow).
    """
    _check_modality(modality)
    folder = Path(frames_root) / video_id
    patterns = PATTERNS[modality]
    frames, paths, geometry = [], [], None
    for i in range(1, num_frames + 1):
        for pattern in patterns:
            path = folder / pattern.format(i)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise BadFrameError(video_id, path, "missing (the list claims "
                                    f"{num_frames} frames)") from None
            shape = jpeg_geometry(data)
            if isinstance(shape, str):
                raise BadFrameError(video_id, path, shape)
            if decode_check != "none":
                # libjpeg's corrupt-data warnings (dcd.data.jpeg); the structural
                # check above does not see damaged entropy-coded data.
                problem = jpeg_problem(data)
                if problem:
                    raise BadFrameError(video_id, path, problem)
            if geometry is None:
                geometry = shape
            elif shape != geometry:
                raise BadFrameError(video_id, path,
                                    f"size {shape} differs from the first frame's {geometry}")
            frames.append(data)
            paths.append(path)
    per = len(patterns)
    for i in _decode_indices(num_frames, decode_check):
        for j in range(i * per, (i + 1) * per):
            image = decode_jpeg(frames[j])
            if image is None or image.shape[:2] != geometry[:2]:
                raise BadFrameError(video_id, paths[j], "undecodable JPEG")
    return frames, geometry


def _keys(video_id, num_frames, modality):
    """Frame keys in the order read_video_jpegs returns their bytes."""
    return [frame_key(video_id, i, p) for i in range(1, num_frames + 1) for p in PATTERNS[modality]]


# ------------------------------------------------------------------ the build

@dataclass
class BuildReport:
    written: list = field(default_factory=list)     # video ids written this run
    skipped: list = field(default_factory=list)     # already complete
    bad: list = field(default_factory=list)         # (video_id, reason), with skip_bad
    frames_written: int = 0
    map_size: int = 0


def _stored_count(txn, video_id, modality="rgb"):
    value = txn.get(marker_key(video_id, modality))
    return None if value is None else int(value)


def _stored_label(txn, video_id, caffe_pb2, modality="rgb"):
    value = txn.get(frame_key(video_id, 1, PATTERNS[modality][0]))
    if value is None:
        return None
    datum = caffe_pb2.Datum()
    datum.ParseFromString(value)
    return datum.label


def _put_record(txn, key, value):
    """One put; a separate function so tests can interrupt a transaction midway."""
    txn.put(key, value)


def _write_video(txn, video_id, frames, geometry, label, caffe_pb2, modality="rgb"):
    height, width, channels = geometry
    per = len(PATTERNS[modality])
    count = len(frames) // per
    old_count = _stored_count(txn, video_id, modality) or 0
    for key, data in zip(_keys(video_id, count, modality), frames):
        datum = caffe_pb2.Datum(channels=channels, height=height, width=width,
                                encoded=True, data=data, label=label)
        _put_record(txn, key, datum.SerializeToString())
    # A shorter re-extraction must not leave the old tail behind.
    for key in _keys(video_id, old_count, modality)[count * per:]:
        txn.delete(key)
    _put_record(txn, marker_key(video_id, modality), str(count).encode())


def verify_video(txn, video_id, expected, label, caffe_pb2, modality="rgb"):
    """Re-read a stored video: marker, every frame key, labels, and decode the middle frame.

    `expected` is the frames' bytes (a list, as read_video_jpegs returns
    them) or a frame count (flow: pair count).
    """
    per = len(PATTERNS[modality])
    count = len(expected) // per if isinstance(expected, list) else expected
    stored = _stored_count(txn, video_id, modality)
    if stored != count:
        raise RuntimeError(f"verify {video_id}: {MARKER_PREFIXES[modality]} marker says "
                           f"{stored}, expected {count} frames")
    datum = caffe_pb2.Datum()
    middle = (count + 1) // 2
    for j, key in enumerate(_keys(video_id, count, modality)):
        i = j // per + 1
        what = f"frame {i}" if modality == "rgb" else f"{('flow_x', 'flow_y')[j % per]} {i}"
        value = txn.get(key)
        if value is None:
            raise RuntimeError(f"verify {video_id}: {what} missing from the LMDB")
        if isinstance(expected, list) or i == middle:
            datum.ParseFromString(value)
            if datum.label != label:
                raise RuntimeError(f"verify {video_id}: {what} has label {datum.label}, "
                                   f"expected {label}")
            if isinstance(expected, list) and datum.data != expected[j]:
                raise RuntimeError(f"verify {video_id}: {what} bytes differ from the file")
            if i == middle:
                image = decode_jpeg(datum.data)
                if image is None or image.shape[:2] != (datum.height, datum.width):
                    raise RuntimeError(f"verify {video_id}: {what} does not decode to "
                                       f"{datum.height}x{datum.width}")


def build_lmdb(frames_root, entries, lmdb_path, verify=True, skip_bad=False,
               decode_check="all", map_size=DEFAULT_MAP_SIZE, progress=True, log=None,
               modality="rgb"):
    """Write every listed video into the LMDB at `lmdb_path`; returns a BuildReport.

    One write transaction per video, its marker last; a full map is doubled
    and the video retried. A bad frame raises BadFrameError unless `skip_bad`,
    which logs the video and goes on. `modality` "flow": `frames_root` is a
    flow root, the entries' counts are flow pairs, keys flow_x/flow_y and
    the marker `__flow__/` (frames_written then counts x and y images).
    """
    import lmdb
    from tqdm import tqdm

    _check_modality(modality)
    if decode_check not in DECODE_CHECKS:
        raise ValueError(f"decode_check must be one of {DECODE_CHECKS}")
    caffe_pb2 = _caffe_pb2()
    entries = unique_entries(entries)
    if not entries:
        raise ValueError("no videos to write (empty file list)")
    bar = tqdm(entries, unit="video", desc="lmdb", disable=not progress)
    log = log or (lambda message: bar.write(message, file=sys.stderr))
    report = BuildReport()
    env = _open_for_writing(lmdb_path, map_size)
    try:
        for entry in bar:
            with env.begin() as txn:
                done = (_stored_count(txn, entry.video_id, modality) == entry.num_frames
                        and _stored_label(txn, entry.video_id, caffe_pb2, modality) == entry.label)
                if done and verify:
                    verify_video(txn, entry.video_id, entry.num_frames, entry.label, caffe_pb2,
                                 modality)
            if done:
                report.skipped.append(entry.video_id)
                continue
            try:
                frames, geometry = read_video_jpegs(frames_root, entry.video_id,
                                                    entry.num_frames, decode_check, modality)
            except BadFrameError as exc:
                if not skip_bad:
                    raise
                report.bad.append((entry.video_id, str(exc)))
                log(f"skipped bad video: {exc}")
                continue
            while True:
                try:
                    with env.begin(write=True) as txn:
                        _write_video(txn, entry.video_id, frames, geometry, entry.label, caffe_pb2,
                                     modality)
                    break
                except lmdb.MapFullError:
                    # The failed transaction was aborted by the context manager.
                    env.set_mapsize(env.info()["map_size"] * 2)
            if verify:
                with env.begin() as txn:
                    verify_video(txn, entry.video_id, frames, entry.label, caffe_pb2, modality)
            report.written.append(entry.video_id)
            report.frames_written += len(frames)
            bar.set_postfix(frames=report.frames_written, refresh=False)
    finally:
        report.map_size = env.info()["map_size"]
        env.close()
        bar.close()
    return report


def _open_for_writing(lmdb_path, map_size):
    """The LMDB environment to build into: a new or empty folder, or an
    existing LMDB (resumed). Anything else is refused (ValueError naming it)
    before a byte is written, so no one's folder gets an LMDB mixed into it."""
    import lmdb
    path = Path(lmdb_path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not an LMDB folder; choose a new folder")
    if path.is_dir() and not (path / "data.mdb").is_file():
        others = sorted(e.name for e in path.iterdir())
        if others:
            raise ValueError(f"--out {path} is a folder that is not an LMDB (no data.mdb; it "
                             f"holds {', '.join(others[:5])}{' ...' if len(others) > 5 else ''});"
                             " choose a new or empty folder")
    path.mkdir(parents=True, exist_ok=True)
    try:
        return lmdb.open(str(path), map_size=map_size, subdir=True)
    except lmdb.Error as exc:  # e.g. MDB_INVALID: a damaged or foreign data.mdb
        raise ValueError(f"--out {path}: cannot open as an LMDB ({exc}); is data.mdb damaged? "
                         "build into a new folder") from None


# ------------------------------------------------------------------ readers

def _open_readonly(lmdb_path):
    import lmdb
    if not Path(lmdb_path).is_dir():
        raise FileNotFoundError(f"no LMDB at {lmdb_path}")
    return lmdb.open(str(lmdb_path), readonly=True, subdir=True)


def list_videos(lmdb_path, modality="rgb"):
    """{video_id: frame count (flow: pair count)} for every complete video in the LMDB."""
    _check_modality(modality)
    env = _open_readonly(lmdb_path)
    prefix = MARKER_PREFIXES[modality].encode()
    videos = {}
    try:
        with env.begin() as txn:
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    videos[key[len(prefix):].decode()] = int(value)
    finally:
        env.close()
    return videos


def read_video_datums(lmdb_path, video_id, modality="rgb"):
    """The video's Datums in key order (flow: x1, y1, x2, ...); KeyError if the
    video is not (completely) stored."""
    _check_modality(modality)
    caffe_pb2 = _caffe_pb2()
    env = _open_readonly(lmdb_path)
    try:
        with env.begin() as txn:
            count = _stored_count(txn, video_id, modality)
            if count is None:
                raise KeyError(f"video {video_id} ({modality}) is not in {lmdb_path}")
            datums = []
            for key in _keys(video_id, count, modality):
                datum = caffe_pb2.Datum()
                datum.ParseFromString(txn.get(key))
                datums.append(datum)
    finally:
        env.close()
    return datums


def read_video_frames(lmdb_path, video_id, modality="rgb"):
    """(frames, label): the video's frames decoded to HxWxC uint8 BGR arrays, and its label.

    Flow: frames are (x, y) pairs of H x W uint8 grey images.
    """
    datums = read_video_datums(lmdb_path, video_id, modality)
    images = [decode_jpeg(d.data) for d in datums]
    if modality == "flow":
        images = list(zip(images[0::2], images[1::2]))
    return images, datums[0].label
