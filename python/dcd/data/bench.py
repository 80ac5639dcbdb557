"""Throughput of the VideoData layer, wall-clock and per CPU-second, and the
CPU cost of optical flow per frame pair."""
import time

from dcd.data.video_net import video_data
from dcd.netio import load_net


def time_video_data(list_file, root, backend, batch_size=4, num_segments=3, new_length=8,
                    crop_size=224, train=True, batches=20, warmup=3):
    """Frames/s of a VideoData net over `batches` forward passes.

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
                                 crop_size=crop_size, train=train, shuffle=True)
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
