"""Throughput of the VideoData layer, wall-clock and per CPU-second, and the
CPU cost of optical flow per frame pair."""
import time

from dcd.data.video_net import video_data
from dcd.caffeio.netio import load_net


def time_video_data(list_file, root, backend, batch_size=4, num_segments=3, new_length=8,
                    crop_size=224, train=True, batches=20, warmup=3, decode_threads=None):
    """Frames/s of a VideoData net over `batches` forward passes
    (`decode_threads`: the layer's field; None leaves its default).

    Returns dict(frames, seconds, cpu_seconds, fps, fps_per_core). The
    prefetch thread decodes the next batch while forward() hands out the
    current one, so wall-clock fps is the layer's throughput; cpu_seconds
    is the process's CPU time (all threads), so fps_per_core is frames per
    CPU-second.
    """
    import caffe

    n = caffe.NetSpec()
    n.data, n.label = video_data(list_file, root, backend, batch_size=batch_size,
                                 num_segments=num_segments, new_length=new_length,
                                 crop_size=crop_size, train=train, shuffle=True,
                                 **({} if decode_threads is None else
                                    dict(decode_threads=decode_threads)))
    net = load_net(n.to_proto(), caffe.TRAIN if train else caffe.TEST)
    for _ in range(warmup):
        net.forward()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        net.forward()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    frames = batches * batch_size * num_segments * new_length
    return dict(frames=frames, seconds=wall, cpu_seconds=cpu, fps=frames / wall,
                fps_per_core=frames / cpu)


def time_reader(list_file, root, backend, threads=1, num_snippets=25, seconds=2.0,
                ready=None):
    """Frames/s of eval_net's frame reader (dcd.scoring.readers, what
    tools/eval_net.py reads and decodes frames with) on `threads` read
    threads: every video of `list_file`, TSN's `num_snippets` test frames
    each, the next video asked for ahead as eval_net does, cycled for about
    `seconds` (whole passes) after a warm-up.

    Returns dict(frames, seconds, cpu_seconds, fps, fps_per_core) as
    time_video_data does (cpu_seconds: the process's CPU time, all threads).
    `ready`: called after the warm-up, just before the clock starts.
    """
    from dcd.data.filelists import read_file_list
    from dcd.scoring.protocol import frames_read
    from dcd.scoring.readers import open_reader

    entries = read_file_list(list_file)
    # One call per video with its distinct 1-based frames, as iter_snippets reads.
    calls = [(e.video_id, frames_read(e.num_frames, num_snippets)) for e in entries]
    reader = open_reader(root, backend.lower(), threads=threads)
    try:
        for video_id, indices in calls[:2]:  # warm-up: opens, first reads
            reader(video_id, indices)
        if ready is not None:
            ready()
        frames, wall, cpu = 0, time.perf_counter(), time.process_time()
        deadline = wall + seconds
        # As eval_net scores: the next video is asked for before this one is
        # read (VideoReader.prefetch), until the time is up.
        reader.prefetch(*calls[0])
        k = 0
        while True:
            # Another pass only while time is left; its first video is then
            # asked for before the last of this pass is read.
            more = (k + 1) % len(calls) or time.perf_counter() < deadline
            if more:
                reader.prefetch(*calls[(k + 1) % len(calls)])
            frames += len(reader(*calls[k % len(calls)]))
            if not more:
                break
            k += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        reader.close()
    return dict(frames=frames, seconds=wall, cpu_seconds=cpu, fps=frames / wall,
                fps_per_core=frames / cpu)


def _timed_worker(timer, args, barrier, results):
    try:
        results.put(timer(*args, ready=barrier.wait))
    except BaseException as exc:  # noqa: BLE001 - re-raised in the parent
        barrier.abort()
        results.put(exc)


def _time_in_processes(timer, args, workers, what):
    """timer(*args, ready=...) in `workers` spawned processes at once, the
    clocks started together (each calls `ready` after its warm-up): their
    results. `what` names a process in the error if one dies."""
    import multiprocessing as mp
    import queue
    import threading

    ctx = mp.get_context("spawn")  # as eval_net's pool: no fork after importing caffe
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_timed_worker, args=(timer, args, barrier, results),
                         daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()
    runs = []
    try:
        while len(runs) < workers:
            try:
                runs.append(results.get(timeout=1.0))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"{what} died (exit code {dead[0]})") from None
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    errors = [r for r in runs if isinstance(r, BaseException)]
    if errors:  # the cause, not the others' broken barrier
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)),
                   errors[0])
    return runs


def _summed(runs):
    """Processes' runs as one: frames and CPU seconds summed, fps the sum of
    their rates."""
    frames, cpu = sum(r["frames"] for r in runs), sum(r["cpu_seconds"] for r in runs)
    return dict(frames=frames, seconds=max(r["seconds"] for r in runs), cpu_seconds=cpu,
                fps=sum(r["fps"] for r in runs), fps_per_core=frames / cpu)


def time_reader_workers(list_file, root, backend, workers=2, num_snippets=25, seconds=2.0):
    """time_reader in `workers` processes at once, one read thread each:
    how `tools/eval_net.py --workers` reads (each scoring process opens its
    own reader). The clocks start together (after every warm-up); frames and
    CPU seconds are summed, fps is the sum of the processes' rates.

    Returns dict(frames, seconds, cpu_seconds, fps, fps_per_core)."""
    args = (list_file, str(root), backend, 1, num_snippets, seconds)
    return _summed(_time_in_processes(time_reader, args, workers, "a reader process"))


def time_bare_decode(encoded, seconds=2.0, ready=None):
    """Frames per CPU-second of bare cv2.imdecode (colour, OpenCV on one
    thread) over the JPEG byte strings `encoded`, cycled for about `seconds`:
    the baseline the data layer's per-core rate is compared with. `ready`:
    called after the warm-up, just before the clock starts.

    Returns dict(frames, seconds, cpu_seconds, fps, fps_per_core)."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    buffers = [np.frombuffer(b, np.uint8) for b in encoded]
    for b in buffers[:8]:  # warm-up
        cv2.imdecode(b, cv2.IMREAD_COLOR)
    if ready is not None:
        ready()
    frames, cpu, wall = 0, time.process_time(), time.perf_counter()
    deadline = wall + seconds
    while time.perf_counter() < deadline:
        for b in buffers:
            if cv2.imdecode(b, cv2.IMREAD_COLOR) is None:
                raise ValueError("a benchmark frame does not decode")
        frames += len(buffers)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return dict(frames=frames, seconds=wall, cpu_seconds=cpu, fps=frames / wall,
                fps_per_core=frames / cpu)


def decode_scaling(encoded, workers=2, seconds=1.0):
    """How this machine's cores scale right now: bare decode's frames/s in
    `workers` processes at once over the same in one process (started the
    same way). Near `workers` where that many cores are free; a neighbour
    busy on one of them shows as less."""
    one = _summed(_time_in_processes(time_bare_decode, (encoded, seconds), 1,
                                     "a decode process"))
    many = _summed(_time_in_processes(time_bare_decode, (encoded, seconds), workers,
                                      "a decode process"))
    return many["fps"] / one["fps"]


def sample_jpegs(frames_root, limit=200):
    """Up to `limit` JPEG byte strings from the frame folders under
    `frames_root` (the frames the data layer benchmarks read)."""
    from pathlib import Path

    paths = sorted(Path(frames_root).glob("*/img_*.jpg"))
    step = max(1, len(paths) // limit)
    return [p.read_bytes() for p in paths[::step][:limit]]


def time_flow(frames_bgr, settings, threads=1):
    """CPU seconds per frame pair of each flow setting on the consecutive pairs of
    `frames_bgr`, and its mean end-point error against the first setting.

    `settings`: [(name, FlowMethod)]. OpenCV runs with `threads` threads, and
    process CPU time is measured, so the figure is the cost of a pair on one core
    when threads == 1. Returns [dict(name, cpu_per_pair, wall_per_pair, epe,
    mean_magnitude)].
    """
    import cv2
    import numpy as np

    from dcd.data.flow import FlowEstimator, to_grey

    cv2.setNumThreads(threads)
    greys = [to_grey(f) for f in frames_bgr]
    pairs = list(zip(greys, greys[1:]))
    results, reference = [], None
    for name, method in settings:
        estimate = FlowEstimator(method)
        estimate(*pairs[0])  # warm-up (allocations)
        wall, cpu = time.perf_counter(), time.process_time()
        flows = [estimate(a, b) for a, b in pairs]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if reference is None:
            reference = flows
        epe = np.mean([np.linalg.norm(f - r, axis=-1).mean() for f, r in zip(flows, reference)])
        results.append(dict(name=name, cpu_per_pair=cpu / len(pairs), wall_per_pair=wall / len(pairs),
                            epe=float(epe),
                            mean_magnitude=float(np.mean([np.linalg.norm(f, axis=-1).mean()
                                                          for f in flows]))))
    return results
