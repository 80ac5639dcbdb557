"""Score videos with a deploy net through pycaffe, TSN's way (protocol.py),
into a resumable score file (scorefile.py).

One process scores in-line; `workers` > 1 or several GPUs start that many
spawned processes, each with its own net (Caffe nets are not shareable
across processes), fed from a task queue; the main process alone writes the
partial file, so records never interleave.
"""
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcd.caffeio.netio import caffemodel_layer_names, deploy_input, open_net
from dcd.scoring import protocol
from dcd.scoring.readers import FrameReadError, open_reader
from dcd.scoring.scorefile import (FORMAT, ScoreFileError, entries_sha1, file_sha1, open_partial,
                                   partial_path, write_scores)


@dataclass
class EvalConfig:
    net: str
    weights: str = None
    root: str = None
    backend: str = "auto"
    num_snippets: int = protocol.NUM_SNIPPETS
    new_length: int = 1
    ten_crop: bool = True
    frame_size: tuple = protocol.FRAME_SIZE
    score_blob: str = None
    input_blob: str = None
    modality: str = None     # rgb, flow, rgb_flow; None: told by the deploy input
    flow_root: str = None    # rgb_flow: where the flow is, if not in root
    flow_bound: float = 20.0  # rgb_flow: extract_flow.py's --bound
    allow_missing_weights: bool = False  # score although the weights lack learnable layers
    # (net, weights) that net and weights were folded from (tools/eval_net.py
    # --fold-bn): recorded instead of the temporary files, so runs resume
    folded_from: tuple = None
    batch: int = None        # samples per forward; None: as many as the deploy input holds
    read_threads: int = 1    # threads reading and decoding frames (per process)

    def modality_for(self, shape):
        return self.modality or protocol.infer_modality(shape, self.new_length)

    def protocol_meta(self, shape):
        modality = self.modality_for(shape)
        meta = {"num_snippets": self.num_snippets, "new_length": self.new_length,
                "crops": 10 if self.ten_crop else 1, "crop_size": list(shape[2:]),
                "frame_size": list(self.frame_size), "mean_bgr": list(protocol.MEAN_BGR),
                "layout": protocol.input_layout(shape, self.new_length, modality),
                "input_shape": list(shape)}
        if modality != "rgb":
            meta.update(modality=modality, flow_bound=self.flow_bound)
        return meta

    def open_reader(self, shape):
        return open_reader(self.root, self.backend, self.modality_for(shape), self.flow_root,
                           self.flow_bound, threads=self.read_threads)


class EvalInputError(ValueError):
    """Bad input found while scoring (weights, labels, net settings): one line, no traceback."""


def check_labels(list_file, entries, num_classes, net):
    """Refuse labels the net cannot score, naming the list's line (the first
    such line and how many there are)."""
    bad = [e for e in entries if e.label >= num_classes]
    if bad:
        from dcd.data.filelists import line_number
        e = bad[0]
        raise EvalInputError(f"{list_file}:{line_number(list_file, e.video_id)}: video "
                             f"{e.video_id} has label {e.label} but {net} scores {num_classes} "
                             f"classes (labels 0..{num_classes - 1}; {len(bad)} such line(s)): "
                             "a list of another data set or split?")


@dataclass
class EvalSummary:
    out: str
    scored: list = field(default_factory=list)   # video ids scored by this run
    resumed: int = 0                             # videos taken from the partial file
    complete: bool = False                       # final file written


class NetScorer:
    """A deploy net that turns a video into its S x K x C raw score array."""

    def __init__(self, cfg, gpu=None):
        os.environ.setdefault("GLOG_minloglevel", "2")
        self.cfg = cfg
        self.input, self.shape = deploy_input(cfg.net, cfg.input_blob)
        # Parsed here first: Caffe aborts the process on an empty or unparsable caffemodel.
        held = caffemodel_layer_names(cfg.weights) if cfg.weights else None
        self.net = open_net(cfg.net, cfg.weights, gpu)
        self.modality = cfg.modality_for(self.shape)
        self.layout = protocol.input_layout(self.shape, cfg.new_length, self.modality)
        self.per_forward = protocol.samples_per_forward(self.shape, cfg.new_length, self.modality)
        if cfg.batch is not None and cfg.batch != self.per_forward:
            self._reshape(cfg.batch)
        self.score_blob = cfg.score_blob or self.net.outputs[-1]
        if self.score_blob not in self.net.blobs:
            raise ValueError(f"no blob {self.score_blob!r} in {cfg.net}")
        if held is not None and not cfg.allow_missing_weights:
            missing = [name for name in self.net.params.keys() if name not in held]
            if missing:  # Caffe leaves them at their fillers: random scores, exit 0
                raise EvalInputError(
                    f"{cfg.weights} lacks {len(missing)} learnable layer(s) of {cfg.net}: "
                    f"{', '.join(missing[:12])}{' ...' if len(missing) > 12 else ''} (weights "
                    "of another net?); pass --allow-missing-weights to score with those "
                    "layers at their random initialisation")

    @property
    def num_classes(self):
        """Scores per sample: the score blob's size per row."""
        return int(np.prod(self.net.blobs[self.score_blob].data.shape[1:]))

    def _reshape(self, batch):
        """Make the input hold `batch` samples (crops of snippets) per forward.
        The deploy nets' layers take any batch (BatchNorm uses its stored
        statistics), so the scores do not change; fewer forwards, larger
        GEMMs."""
        if batch < 1:
            raise ValueError(f"--batch must be at least 1, got {batch}")
        rows = batch * self.cfg.new_length if self.layout == "snippet" else batch
        self.shape = (rows,) + tuple(self.shape[1:])
        self.net.blobs[self.input].reshape(*self.shape)
        self.net.reshape()
        self.per_forward = batch

    def _forward(self, samples):
        """samples: M x L x C x h x w with M <= per_forward -> M x classes."""
        m = len(samples)
        if m < self.per_forward:  # pad the last batch; the padding's outputs are dropped
            pad = np.repeat(samples[-1:], self.per_forward - m, axis=0)
            samples = np.concatenate([samples, pad])
        self.net.blobs[self.input].data[...] = protocol.to_net_rows(samples, self.layout)
        self.net.forward()
        out = self.net.blobs[self.score_blob].data
        out = out.reshape(out.shape[0], -1)
        if out.shape[0] == self.per_forward * self.cfg.new_length != self.per_forward:
            # A net that scores every frame of a snippet: average them (TSN's consensus).
            out = out.reshape(self.per_forward, self.cfg.new_length, -1).mean(axis=1)
        elif out.shape[0] != self.per_forward:
            hint = ""
            if self.layout == "snippet" and out.shape[0] and self.shape[0] % out.shape[0] == 0:
                hint = (f"; the net takes {self.shape[0] // out.shape[0]} frame(s) per snippet: "
                        f"run with --new_length {self.shape[0] // out.shape[0]}")
            raise EvalInputError(f"score blob {self.score_blob} has {out.shape[0]} rows for "
                                 f"{self.per_forward} samples per forward (--new_length "
                                 f"{self.cfg.new_length}){hint}")
        return out[:m].copy()

    def prefetch(self, reader, video_id, num_frames):
        """Start reading the frames score_video(reader, video_id,
        num_frames) will read (VideoReader.prefetch)."""
        reader.prefetch(video_id, protocol.frames_read(num_frames, self.cfg.num_snippets,
                                                       self.cfg.new_length), num_frames)

    def score_video(self, reader, video_id, num_frames):
        cfg = self.cfg
        crop_h, crop_w = self.shape[2], self.shape[3]
        snippets = protocol.iter_snippets(lambda idx: reader(video_id, idx, num_frames),
                                          num_frames, crop_h, crop_w, cfg.num_snippets,
                                          cfg.new_length, cfg.ten_crop, tuple(cfg.frame_size),
                                          modality=self.modality)
        buffer, outputs, per_snippet = [], [], None
        for crops in snippets:
            per_snippet = len(crops)
            buffer.extend(crops)
            while len(buffer) >= self.per_forward:
                outputs.append(self._forward(np.stack(buffer[:self.per_forward])))
                del buffer[:self.per_forward]
        if buffer:
            outputs.append(self._forward(np.stack(buffer)))
        scores = np.concatenate(outputs)
        return scores.reshape(cfg.num_snippets, per_snippet, -1).astype(np.float32)


def _worker(cfg, gpu, tasks, results):
    """Spawned process: score (video_id, num_frames, label) tasks until None."""
    try:
        scorer = NetScorer(cfg, gpu)
        reader = cfg.open_reader(scorer.shape)
    except (EvalInputError, ValueError, FileNotFoundError) as exc:  # bad input: one line
        results.put(("input", None, str(exc)))
        return
    except Exception:  # noqa: BLE001 - reported to the parent
        results.put(("error", None, traceback.format_exc()))
        return
    task = tasks.get()
    while task is not None:
        video_id, num_frames, label = task
        # The next video's frames are read while this one is scored.
        task = tasks.get()
        try:
            scorer.prefetch(reader, video_id, num_frames)
            if task is not None:
                scorer.prefetch(reader, *task[:2])
            results.put(("ok", video_id, scorer.score_video(reader, video_id, num_frames)))
        except FrameReadError as exc:  # bad data, not a bug: one line, no traceback
            results.put(("frame", video_id, str(exc)))
            break
        except EvalInputError as exc:
            results.put(("input", video_id, str(exc)))
            break
        except Exception:  # noqa: BLE001
            results.put(("error", video_id, traceback.format_exc()))
            break
    reader.close()
    results.put(("exit", None, None))


def run_eval(list_file, cfg, out, workers=1, gpus=None, limit=None, restart=False,
             progress=True, log=None):
    """Score every listed video into `out` (npz). Resumable through `<out>.partial`.

    `limit`: score at most that many new videos, then stop without writing
    the final file (for batches of work, and to test resuming).
    """
    from tqdm import tqdm
    from dcd.data.filelists import read_file_list, unique_entries

    log = log or (lambda m: print(m, file=sys.stderr))
    entries = unique_entries(read_file_list(list_file), log)
    input_name, shape = deploy_input(cfg.net, cfg.input_blob)
    net, weights = cfg.folded_from or (cfg.net, cfg.weights)
    meta = {"format": FORMAT, "list_file": str(Path(list_file).resolve()),
            "list_sha1": entries_sha1(entries), "net": str(Path(net).resolve()),
            "net_sha1": file_sha1(cfg.net), "fold_bn": cfg.folded_from is not None,
            "weights": str(Path(weights).resolve()) if weights else None,
            "weights_sha1": file_sha1(cfg.weights) if cfg.weights else None,
            "root": str(cfg.root), "protocol": cfg.protocol_meta(shape),
            "score_blob": cfg.score_blob, "input_blob": input_name}
    summary = EvalSummary(str(out))
    gpus = list(gpus or [])
    n_proc = max(workers, len(gpus))
    scorer = None
    if n_proc <= 1:  # bad weights or settings are refused before a partial file exists
        scorer = NetScorer(cfg, gpus[0] if gpus else None)
        check_labels(list_file, entries, scorer.num_classes, cfg.net)
    done, writer = open_partial(partial_path(out), meta, restart=restart, log=log)
    summary.resumed = len(done)
    pending = [e for e in entries if e.video_id not in done]
    if limit is not None:
        pending = pending[:limit]
    bar = tqdm(total=len(entries), initial=len(done), unit="video", desc="eval",
               disable=not progress)
    by_id = {e.video_id: e for e in entries}

    def record(video_id, scores):
        if not done and not summary.scored:  # the first scores tell the class count
            check_labels(list_file, entries, scores.shape[-1], cfg.net)
        writer.append(video_id, by_id[video_id].label, scores)
        done[video_id] = (by_id[video_id].label, scores)
        summary.scored.append(video_id)
        bar.update()

    try:
        if n_proc <= 1:
            reader = cfg.open_reader(scorer.shape)
            try:
                # The next video's frames are read while this one is scored.
                for k, e in enumerate(pending):
                    for ahead in pending[k:k + 2]:
                        scorer.prefetch(reader, ahead.video_id, ahead.num_frames)
                    record(e.video_id, scorer.score_video(reader, e.video_id, e.num_frames))
            finally:
                reader.close()
        elif pending:
            _run_pool(cfg, pending, n_proc, gpus, record)
    finally:
        writer.close()
        bar.close()

    if len(done) < len(entries):
        log(f"{len(done)} of {len(entries)} videos scored; partial results kept in "
            f"{partial_path(out)} (run again to continue)")
        return summary
    shapes = {done[e.video_id][1].shape for e in entries}
    if len(shapes) != 1:
        raise ScoreFileError(f"score arrays differ in shape across videos: {sorted(shapes)}")
    scores = np.stack([done[e.video_id][1] for e in entries])
    meta["num_classes"] = int(scores.shape[-1])
    write_scores(out, [e.video_id for e in entries], [e.label for e in entries], scores, meta)
    partial_path(out).unlink()
    summary.complete = True
    return summary


def _run_pool(cfg, pending, n_proc, gpus, record):
    import multiprocessing as mp
    ctx = mp.get_context("spawn")  # fork after importing caffe is unsafe
    tasks, results = ctx.Queue(), ctx.Queue()
    for e in pending:
        tasks.put((e.video_id, e.num_frames, e.label))
    for _ in range(n_proc):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(cfg, gpus[i % len(gpus)] if gpus else None, tasks, results))
             for i in range(n_proc)]
    for p in procs:
        p.start()
    alive, error = n_proc, None
    try:
        while alive:
            kind, video_id, payload = results.get()
            if kind == "ok":
                record(video_id, payload)
            elif kind == "exit":
                alive -= 1
            elif kind == "frame":
                error = FrameReadError(payload)
                break
            elif kind == "input":
                error = EvalInputError(payload)
                break
            else:
                error = f"worker failed{' on video ' + video_id if video_id else ''}:\n{payload}"
                break
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    if isinstance(error, (FrameReadError, EvalInputError)):
        raise error
    if error:
        raise RuntimeError(error)
