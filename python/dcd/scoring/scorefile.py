"""Score files: raw per-video scores of one net on one file list.

Final file (npz, written to a temporary name and renamed into place):

    video_ids  str array (V,)         in file-list order
    labels     int64 (V,)             0-based, from the file list
    scores     float32 (V, S, K, C)   S snippets x K crops x C classes, raw
                                      outputs of the score blob (no averaging)
    meta       JSON string            num_classes, list_file, list_sha1,
                                      protocol, net, weights, ...

Partial file (`<out>.partial`, while a run is in progress): an append-only
sequence of records, the first one the run's meta, then one per finished
video. Each record is MAGIC, header length, data length, CRC32, a JSON
header and the raw score bytes; a record cut short by an interruption fails
its length or CRC check and is dropped on resume (the file is truncated
there), so a video is either wholly recorded or redone, never half-kept.
"""
import hashlib
import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np

from dcd.util.fileio import write_atomic

FORMAT = "dcd-scores-1"
MAGIC = b"DCDR"
_HEAD = struct.Struct("<4sIQI")
# Meta fields that must agree for a partial file to be continued.
# weights_sha1: a caffemodel replaced at the same path must not mix old and new scores.
RESUME_KEYS = ("format", "list_sha1", "net_sha1", "weights", "weights_sha1", "protocol",
               "score_blob")


class ScoreFileError(ValueError):
    """A score file that is unreadable or does not fit the others / the list."""


def file_sha1(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entries_sha1(entries):
    """Hash of the (video_id, label) pairs: identifies the list / split."""
    h = hashlib.sha1()
    for e in entries:
        h.update(f"{e.video_id} {e.label}\n".encode())
    return h.hexdigest()


def partial_path(out):
    return Path(str(out) + ".partial")


# ------------------------------------------------------------------ partial file

def _encode(header, data=b""):
    hb = json.dumps(header, sort_keys=True).encode()
    crc = zlib.crc32(hb + data)
    return _HEAD.pack(MAGIC, len(hb), len(data), crc) + hb + data


def read_partial(path):
    """(meta, {video_id: (label, scores)}, good_length).

    Stops at the first damaged or truncated record; good_length is the byte
    offset up to which the file is sound. Repeated videos keep the first copy.
    """
    blob = Path(path).read_bytes()
    meta, videos, pos = None, {}, 0
    while pos + _HEAD.size <= len(blob):
        magic, hlen, dlen, crc = _HEAD.unpack_from(blob, pos)
        end = pos + _HEAD.size + hlen + dlen
        if magic != MAGIC or end > len(blob):
            break
        hb = blob[pos + _HEAD.size:pos + _HEAD.size + hlen]
        data = blob[pos + _HEAD.size + hlen:end]
        if zlib.crc32(hb + data) != crc:
            break
        header = json.loads(hb)
        if header.get("kind") == "meta":
            if meta is None:
                meta = header["meta"]
        elif header.get("kind") == "video" and meta is not None:
            vid = header["video_id"]
            if vid not in videos:
                scores = np.frombuffer(data, dtype=header["dtype"]).reshape(header["shape"]).copy()
                videos[vid] = (int(header["label"]), scores)
        pos = end
    return meta, videos, pos


class PartialWriter:
    """Appends one record per finished video; fsyncs every `sync_every` seconds."""

    def __init__(self, path, meta, sync_every=10.0):
        self.path = Path(path)
        self.sync_every = sync_every
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self.f = open(self.path, "ab")
        if fresh:
            self.f.write(_encode({"kind": "meta", "meta": meta}))
            self._sync()
        self.last_sync = time.monotonic()

    def append(self, video_id, label, scores):
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        header = {"kind": "video", "video_id": video_id, "label": int(label),
                  "shape": list(scores.shape), "dtype": "<f4"}
        self.f.write(_encode(header, scores.astype("<f4").tobytes()))
        self.f.flush()  # in the OS's hands: survives a killed process
        if time.monotonic() - self.last_sync >= self.sync_every:
            self._sync()

    def _sync(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.last_sync = time.monotonic()

    def close(self):
        if not self.f.closed:
            self._sync()
            self.f.close()


def open_partial(path, meta, restart=False, log=print):
    """Done videos {video_id: (label, scores)} and a writer to append more.

    A partial file from another list, net, weights or protocol is refused
    (ScoreFileError) unless `restart`, which starts it afresh.
    """
    path = Path(path)
    done = {}
    if path.exists() and restart:
        path.unlink()
    if path.exists():
        old_meta, done, good = read_partial(path)
        if old_meta is None:
            log(f"{path}: no readable header, starting afresh")
            path.unlink()
            done = {}
        else:
            diff = [k for k in RESUME_KEYS if old_meta.get(k) != meta.get(k)]
            if diff and not done:
                # Nothing scored to lose (e.g. a run refused for a wrong --new_length).
                log(f"{path} holds no scored video of another run (differs in: "
                    f"{', '.join(diff)}); starting afresh")
                path.unlink()
            elif diff:
                raise ScoreFileError(
                    f"{path} was written by a different run (differs in: {', '.join(diff)}; "
                    f"{len(done)} video(s) scored); pass --restart to discard it and start over")
            elif good < path.stat().st_size:
                log(f"{path}: dropping a damaged tail of {path.stat().st_size - good} bytes "
                    "(an interrupted write); that video is scored again")
                with open(path, "r+b") as f:
                    f.truncate(good)
            if done:
                log(f"resuming: {len(done)} video(s) already scored in {path}")
    return done, PartialWriter(path, meta)


# ------------------------------------------------------------------ final file

def write_scores(out, video_ids, labels, scores, meta):
    """The final npz, atomically (temporary file in the same folder, then os.replace)."""
    import io
    meta = dict(meta, format=FORMAT, num_videos=len(video_ids))
    buffer = io.BytesIO()
    np.savez(buffer, video_ids=np.asarray(video_ids, dtype=str),
             labels=np.asarray(labels, dtype=np.int64),
             scores=np.asarray(scores, dtype=np.float32),
             meta=np.asarray(json.dumps(meta, sort_keys=True)))
    write_atomic(out, buffer.getvalue())


class ScoreFile:
    def __init__(self, path, video_ids, labels, scores, meta):
        self.path, self.video_ids, self.labels = str(path), list(video_ids), labels
        self.scores, self.meta = scores, meta

    @property
    def num_classes(self):
        return self.scores.shape[-1]

    def video_scores(self):
        """V x C: averaged over crops, then over snippets (TSN's default_aggregation_func
        with normalization=False, as its eval_scores.py uses it)."""
        return self.scores.mean(axis=2).mean(axis=1)


def load_scores(path):
    import zipfile
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path}: no such score file (tools/eval_net.py writes it)")
    if path.stat().st_size == 0:
        raise ScoreFileError(f"{path}: empty file, not a score file; score again with "
                             "tools/eval_net.py --overwrite")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"video_ids", "labels", "scores", "meta"} - set(z.files)
            if missing:
                raise ScoreFileError(f"{path}: not a DCD score file (missing {sorted(missing)})")
            ids, labels, scores = z["video_ids"].tolist(), z["labels"], z["scores"]
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ScoreFileError):
            raise
        # A truncated or damaged npz (an interrupted copy): np.load raises any of these.
        raise ScoreFileError(f"{path}: cannot read as a score file ({type(exc).__name__}: "
                             f"{exc}); it is truncated or damaged: copy it again or score "
                             "again with tools/eval_net.py --overwrite") from None
    if scores.ndim != 4 or scores.shape[0] != len(ids) or labels.shape != (len(ids),):
        raise ScoreFileError(f"{path}: inconsistent shapes: {len(ids)} ids, labels "
                             f"{labels.shape}, scores {scores.shape} (expected V x S x K x C)")
    if len(set(ids)) != len(ids):
        raise ScoreFileError(f"{path}: repeated video ids")
    check_scores(path, ids, labels, scores)
    return ScoreFile(path, ids, labels, scores, meta)


def check_scores(path, video_ids, labels, scores):
    """Refuse NaN/inf scores and labels outside 0..C-1, naming the videos:
    either would silently move the accuracies (a NaN never ranks, a label
    beyond the classifier is never right)."""
    num_classes = scores.shape[-1]
    finite = np.isfinite(scores.reshape(len(video_ids), -1)).all(axis=1)
    if not finite.all():
        bad = [video_ids[i] for i in np.nonzero(~finite)[0]]
        raise ScoreFileError(f"{path}: NaN or inf scores for {len(bad)} video(s): "
                             f"{', '.join(bad[:10])}{' ...' if len(bad) > 10 else ''} "
                             "(a diverged net or damaged weights; score again)")
    out = (labels < 0) | (labels >= num_classes)
    if out.any():
        i = int(np.nonzero(out)[0][0])
        raise ScoreFileError(f"{path}: video {video_ids[i]} has label {int(labels[i])} but the "
                             f"scores have {num_classes} classes (labels are 0..{num_classes - 1}; "
                             f"{int(out.sum())} video(s) in all): the list is for another data "
                             "set or net")
