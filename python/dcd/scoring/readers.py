"""Frame readers for scoring: a TSN frame folder tree or the LMDB of docs/DATA.md.

They read only the frames asked for (25 snippets of a few hundred), by
modality: "rgb" frames decoded to BGR (H x W x 3 uint8), "flow" pairs of
tools/extract_flow.py (H x W x 2 uint8, x then y, as stored), and
"rgb_flow", a frame with its flow to the next frame (H x W x 5 float32: BGR,
then v_y, v_x in pixels; the last frame, with no next one, gets zero flow).
"""
import os
import threading
from pathlib import Path

import numpy as np

from dcd.data.flow import DEFAULT_BOUND, FLOW_X_PATTERN, FLOW_Y_PATTERN, dequantize_flow
from dcd.data.frames import FRAME_PATTERN
from dcd.data.jpeg import CorruptFrameError, decode_frame, read_frame
from dcd.data.video_net import MODALITIES
from dcd.util.memory import keep_freed_memory


class FrameReadError(RuntimeError):
    pass


def is_lmdb(root):
    return (Path(root) / "data.mdb").is_file()


class FolderReader:
    """Images of a frame or flow folder tree (`root/<video_id>/<pattern>`)."""

    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no frame folder tree at {root}")
        self._root = str(self.root)

    def image(self, video_id, pattern, index, colour):
        # A string path: pathlib's joins took half of a frame's 10 us of
        # Python here, which reader threads take turns at (the GIL).
        path = os.path.join(self._root, video_id, pattern.format(index))
        try:
            return read_frame(path, colour)
        except FileNotFoundError:
            raise FrameReadError(f"video {video_id}: cannot read frame {path} (missing)") from None
        except CorruptFrameError as exc:
            raise FrameReadError(f"video {video_id}: frame {path}: {exc}") from None

    def close(self):
        pass


class LmdbReader:
    """Opens the environment once per process; keys as in dcd.data.lmdb_store."""

    def __init__(self, root):
        import lmdb
        from caffe.proto import caffe_pb2
        if not is_lmdb(root):
            raise FileNotFoundError(f"no LMDB at {root}")
        self.root = str(root)
        self.env = lmdb.open(self.root, readonly=True, lock=False, subdir=True)
        self._datum = caffe_pb2.Datum
        from google.protobuf.message import DecodeError
        self._decode_error = DecodeError

    def image(self, video_id, pattern, index, colour):
        from dcd.data.lmdb_store import frame_key
        with self.env.begin() as txn:
            value = txn.get(frame_key(video_id, index, pattern))
        name = pattern.format(index)
        if value is None:
            raise FrameReadError(f"video {video_id}: frame {name} is not in {self.root}")
        key = frame_key(video_id, index, pattern).decode()
        datum = self._datum()
        try:
            datum.ParseFromString(value)
        except self._decode_error:
            raise FrameReadError(f"video {video_id}: the value of key {key} in {self.root} is "
                                 "not a Caffe Datum (not an LMDB of tools/build_lmdb.py?)"
                                 ) from None
        try:
            # Colour frames decode straight to BGR (a grey JPEG too, as
            # np.repeat below would give); grey ones keep the image's own
            # channels (colour=None), converted below.
            image = (decode_frame(datum.data, colour or None) if datum.encoded
                     else _raw_datum(datum))
        except CorruptFrameError as exc:
            raise FrameReadError(f"video {video_id}: frame {name} (key {key}) in {self.root}: "
                                 f"{exc}") from None
        except ValueError:  # raw bytes that do not fill channels x height x width
            raise FrameReadError(f"video {video_id}: frame {name} (key {key}) in {self.root} "
                                 "does not decode") from None
        if colour and image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if not colour and image.ndim == 3:
            image = image[:, :, 0]
        return image

    def close(self):
        self.env.close()


def _job_key(video_id, indices, num_frames):
    return video_id, tuple(indices), num_frames


class _ReadJob:
    """The frames of one call, [read(i) for i in indices], read by every
    thread that runs work(): each takes the next unread index until none is
    left. One task per helper per call, not one per frame: a future and a
    thread wake-up per frame cost as much as a third of a decode here (2
    threads gave 1.3x one, against 1.9x for this)."""

    def __init__(self, read, indices):
        self.read, self.indices = read, indices
        self.frames, self.errors = [None] * len(indices), [None] * len(indices)
        self._taken, self._lock = iter(range(len(indices))), threading.Lock()
        self.helpers = []

    def work(self):
        while True:
            with self._lock:
                k = next(self._taken, None)
            if k is None:
                return
            try:
                self.frames[k] = self.read(self.indices[k])
            except Exception as exc:  # noqa: BLE001 - raised by result(), in index order
                self.errors[k] = exc

    def result(self):
        """The frames, once the calling thread has helped read them; raises
        the failure of the first index that failed, as the loop would."""
        self.work()
        for helper in self.helpers:
            helper.result()
        for exc in self.errors:
            if exc is not None:
                raise exc
        return self.frames


def _raw_datum(datum):
    arr = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
    return arr.transpose(1, 2, 0)


def _open_store(root, backend):
    backend = backend.lower()
    if backend == "auto":
        backend = "lmdb" if is_lmdb(root) else "folder"
    if backend == "lmdb":
        return LmdbReader(root)
    if backend == "folder":
        return FolderReader(root)
    raise ValueError(f"unknown backend {backend!r}")


class VideoReader:
    """reader(video_id, indices) -> images of one modality (module doc)."""

    MAX_QUEUED = 2  # prefetched calls kept (prefetch)

    def __init__(self, root, backend="auto", modality="rgb", flow_root=None,
                 flow_bound=DEFAULT_BOUND, threads=1):
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; choose from {', '.join(MODALITIES)}")
        if threads < 1:
            raise ValueError(f"read threads must be at least 1, got {threads}")
        self.modality, self.flow_bound = modality, flow_bound
        # Frames of a call are read and decoded on `threads` threads (file
        # reads and the JPEG decode release the GIL), as the VideoData layer's
        # decode_threads: the calling thread and threads - 1 helpers
        # (_ReadJob); results keep the order of the indices.
        self.threads, self.pool, self._queued = threads, None, {}
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="frames")
        self.store = _open_store(root, backend)
        self.flow_store = self.store
        if modality == "rgb_flow" and flow_root and str(flow_root) != str(root):
            self.flow_store = _open_store(flow_root, backend)

    def _flow(self, store, video_id, index):
        return np.stack([store.image(video_id, p, index, colour=False)
                         for p in (FLOW_X_PATTERN, FLOW_Y_PATTERN)], axis=-1)

    def _one(self, video_id, i, num_frames):
        if self.modality == "rgb":
            return self.store.image(video_id, FRAME_PATTERN, i, colour=True)
        if self.modality == "flow":
            return self._flow(self.store, video_id, i)
        frame = self.store.image(video_id, FRAME_PATTERN, i, colour=True)
        if num_frames is not None and i >= num_frames:
            v = np.zeros(frame.shape[:2] + (2,), np.float32)  # no next frame
        else:
            q = self._flow(self.flow_store, video_id, i)
            v = dequantize_flow(q[..., 0], q[..., 1], self.flow_bound)[..., ::-1]
            if v.shape[:2] != frame.shape[:2]:
                raise FrameReadError(f"video {video_id}: flow {i} is {v.shape[1]}x"
                                     f"{v.shape[0]}, its frame {frame.shape[1]}x"
                                     f"{frame.shape[0]}")
        return np.concatenate([frame.astype(np.float32), v], axis=-1)

    def __call__(self, video_id, indices, num_frames=None):
        job = self._queued.pop(_job_key(video_id, indices, num_frames), None)
        if job is None:
            if self.pool is None or len(indices) < 2:
                return [self._one(video_id, i, num_frames) for i in indices]
            job = self._start(video_id, indices, num_frames)
        return job.result()

    def prefetch(self, video_id, indices, num_frames=None):
        """Start reading the frames of a later call reader(video_id,
        indices, num_frames) on the helper threads; that call then joins in
        and returns them (or raises the failure the frames give, as
        without prefetching). Calls are read in the order they were asked
        for, so scoring asks for the next video before it scores the
        current one: the helpers decode on while the caller crops and runs
        the net, and between two videos no thread waits for the others to
        finish a video. A no-op on one thread. At most MAX_QUEUED calls are
        kept; the oldest unclaimed one is dropped."""
        if self.pool is None or len(indices) < 2:
            return
        key = _job_key(video_id, indices, num_frames)
        if key in self._queued:
            return
        while len(self._queued) >= self.MAX_QUEUED:
            self._queued.pop(next(iter(self._queued)))
        self._queued[key] = self._start(video_id, indices, num_frames)

    def _start(self, video_id, indices, num_frames):
        job = _ReadJob(lambda i: self._one(video_id, i, num_frames), list(indices))
        job.helpers = [self.pool.submit(job.work)
                       for _ in range(min(self.threads, len(indices)) - 1)]
        return job

    def close(self):
        self._queued.clear()
        if self.pool is not None:
            self.pool.shutdown()
        self.store.close()
        if self.flow_store is not self.store:
            self.flow_store.close()


def open_reader(root, backend="auto", modality="rgb", flow_root=None, flow_bound=DEFAULT_BOUND,
                threads=1):
    """backend: 'auto' (LMDB if root holds data.mdb), 'folder' or 'lmdb';
    `threads` read and decode a call's frames. Sets the process's allocator
    to keep freed frames for reuse (dcd.util.memory.keep_freed_memory)."""
    keep_freed_memory()
    return VideoReader(root, backend, modality, flow_root, flow_bound, threads)


def default_read_threads(processes=1):
    """The VideoData layer's decode_threads default shared out over scoring
    processes: the cores this process may use, at most 8, over `processes`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8) // max(1, processes))
