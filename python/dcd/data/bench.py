"""Throughput of the VideoData layer, wall-clock and per CPU-second."""
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
