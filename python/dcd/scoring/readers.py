"""Frame readers for scoring: a TSN frame folder tree or the LMDB of docs/DATA.md.

Both read only the frames asked for (25 of a few hundred), decoded to BGR.
"""
from pathlib import Path

import numpy as np

from dcd.data.frames import FRAME_PATTERN


class FrameReadError(RuntimeError):
    pass


def is_lmdb(root):
    return (Path(root) / "data.mdb").is_file()


class FolderReader:
    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no frame folder tree at {root}")

    def __call__(self, video_id, indices):
        import cv2
        frames = []
        for i in indices:
            path = self.root / video_id / FRAME_PATTERN.format(i)
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise FrameReadError(f"video {video_id}: cannot read frame {path}")
            frames.append(frame)
        return frames

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

    def __call__(self, video_id, indices):
        from dcd.data.lmdb_store import decode_jpeg, frame_key
        frames = []
        with self.env.begin() as txn:
            for i in indices:
                value = txn.get(frame_key(video_id, i))
                if value is None:
                    raise FrameReadError(f"video {video_id}: frame {i} is not in {self.root}")
                datum = self._datum()
                datum.ParseFromString(value)
                frame = decode_jpeg(datum.data) if datum.encoded else _raw_datum(datum)
                if frame is None:
                    raise FrameReadError(f"video {video_id}: frame {i} does not decode")
                if frame.ndim == 2:
                    frame = np.repeat(frame[:, :, None], 3, axis=2)
                frames.append(frame)
        return frames

    def close(self):
        self.env.close()


def _raw_datum(datum):
    arr = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
    return arr.transpose(1, 2, 0)


def open_reader(root, backend="auto"):
    """backend: 'auto' (LMDB if root holds data.mdb), 'folder' or 'lmdb'."""
    backend = backend.lower()
    if backend == "auto":
        backend = "lmdb" if is_lmdb(root) else "folder"
    if backend == "lmdb":
        return LmdbReader(root)
    if backend == "folder":
        return FolderReader(root)
    raise ValueError(f"unknown backend {backend!r}")
