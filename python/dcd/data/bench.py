"""Throughput of the VideoData layer, wall-clock and per CPU-second."""
import tempfile
import time

from dcd.data.video_net import video_data


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
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(str(n.to_proto()))
    net = caffe.Net(f.name, caffe.TRAIN if train else caffe.TEST)
    for _ in range(warmup):
        net.forward()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        net.forward()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    frames = batches * batch_size * num_segments * new_length
    return dict(frames=frames, seconds=wall, cpu_seconds=cpu, fps=frames / wall,
                fps_per_core=frames / cpu)
