"""Runtime of deploy nets (the paper's Table 9): ms/frame and FPS of each
branch and of the full model, the displacement-map part measured on its own.

Batch b means b copies of the deploy net's input (its first dimension times
b); batch 1 is the deploy net as written. Frames per forward = input rows x
C / 3 (stacked inputs hold C / 3 frames per row). The displacement-map cost
is the time of net.forward(end=<the first SoftDisplacement layer>), i.e. all
layers up to the displacement map; the branch's own cost is the rest.

Each net is timed in a spawned child process: a net that cannot be
reshaped to a larger batch (a Reshape layer with fixed dims) aborts inside
Caffe (a CHECK failure), which would otherwise kill the whole tool.
"""
import os
from pathlib import Path

import numpy as np

from dcd.util.paths import REPO_ROOT

# Table 9 times displacement maps at 224 x 224: the *_224 nets where
# tools/make_models.py has them, else the branch's default net.
TABLE9_BRANCHES = ("static", "motion", "appchange", "full")


def default_nets(models=REPO_ROOT / "models" / "ucf101"):
    nets = []
    for branch in TABLE9_BRANCHES:
        at_224 = models / f"{branch}_224_deploy.prototxt"
        nets.append(at_224 if at_224.is_file() else models / f"{branch}_deploy.prototxt")
    return nets


DEFAULT_NETS = default_nets()
# Table 3's FPS column: the motion net up to its displacement map, 112x112
# (motion) and 224x224 (motion_224) maps; its TV-L1 row is
# tools/benchmark_flow.py (CPU; the paper's 15 FPS was TSN's GPU TV-L1).
TABLE3_NETS = tuple(REPO_ROOT / "models" / "ucf101" / f"{n}_deploy.prototxt"
                    for n in ("motion", "motion_224"))
# Net file stem (without _deploy and _224) -> Table 9 column.
COLUMNS = {"static": "Static App.", "motion": "Motion", "appchange": "App. Change",
           "full": "Overall"}


def net_name(path):
    stem = Path(path).stem
    return stem[:-len("_deploy")] if stem.endswith("_deploy") else stem


def column(name):
    base = name[:-len("_224")] if name.endswith("_224") else name
    return COLUMNS.get(base, name)


def disp_layers(net):
    return [name for name, layer in zip(net._layer_names, net.layers)
            if layer.type == "SoftDisplacement"]


def _load(path, weights, gpu, engine):
    """caffe.Net of a deploy prototxt on the device, with `engine` set on the
    layers that have a cuDNN implementation unless engine is 'default'."""
    from dcd.caffeio.netio import load_net, open_net, set_device
    if engine == "default":
        return open_net(path, weights, gpu)
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    from dcd.perf.caffe_time import set_engine
    set_device(gpu)
    param = caffe_pb2.NetParameter()
    text_format.Merge(set_engine(Path(path).read_text(), engine, replace=True), param)
    net = load_net(param, caffe.TEST)
    if weights:
        from dcd.caffeio.frozen_bn import load_weights
        load_weights(net, weights)
    return net


def measure_net(path, batch_sizes=(1, 8), iters=5, warmup=2, gpu=None, disp_layer=None,
                weights=None, report=None, engine="default"):
    """Time one net in this process; calls report(batch, result) as each batch is done.

    Each timed pass ends by waiting for the device (dcd.perf.layers.DeviceSync)
    and copies nothing back, so GPU times are the device's.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    from dcd.perf.caffe_time import frame_rates
    from dcd.perf.layers import DeviceSync, forward, median_seconds
    from dcd.caffeio.netio import deploy_input
    net = _load(path, weights, gpu, engine)
    sync = DeviceSync(gpu)
    name, shape = deploy_input(path)
    found = disp_layers(net)
    if disp_layer and disp_layer not in net._layer_names:
        raise ValueError(f"{path}: no layer named {disp_layer!r}")
    disp = disp_layer if disp_layer in net._layer_names else (found[0] if found else None)
    rng = np.random.RandomState(0)
    results = {}
    for b in batch_sizes:
        rows = shape[0] * b
        net.blobs[name].reshape(rows, *shape[1:])
        net.reshape()
        net.blobs[name].data[...] = rng.uniform(-128, 128, net.blobs[name].data.shape)
        frames = rows * shape[1] // 3
        total = median_seconds(lambda: forward(net, sync), iters, warmup)
        t = median_seconds(lambda: forward(net, sync, end=disp), iters, warmup) if disp else None
        r = frame_rates(rows, frames, 1e3 * total, None if t is None else 1e3 * t)
        results[b] = r
        if report:
            report(b, r)
    return {"input_shape": list(shape), "disp_layer": disp, "results": results}


def _child(kw, conn):
    # A pipe, not a queue: send() returns once the bytes are written, so the
    # results of batches done before a Caffe abort still reach the parent.
    try:
        out = measure_net(report=lambda b, r: conn.send(("batch", b, r)), **kw)
        conn.send(("done", None, {k: v for k, v in out.items() if k != "results"}))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", None, f"{type(exc).__name__}: {exc}"))
    conn.close()


def run_benchmark(paths, batch_sizes=(1, 8), iters=5, warmup=2, gpu=None, disp_layer=None,
                  weights=None, progress=True, engine="default"):
    """{'device', 'build', 'engine', 'nets': {name: {...}}} for each deploy
    prototxt, each timed in a child process."""
    from dcd.caffeio.buildinfo import caffe_build
    import multiprocessing as mp
    from tqdm import tqdm

    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError("deploy net(s) not found: " + ", ".join(missing))
    weights = list(weights or [None] * len(paths))
    ctx = mp.get_context("spawn")
    build = caffe_build()
    out = {"device": device_name(gpu), "mode": "gpu" if gpu is not None else "cpu",
           "build": build, "engine": engine,
           "cudnn_used": bool(gpu is not None and build["cudnn"] and engine != "CAFFE"),
           "batch_sizes": list(batch_sizes), "iters": iters, "nets": {}}
    for path, w in tqdm(list(zip(paths, weights)), desc="benchmark", unit="net",
                        disable=not progress):
        entry = {"path": str(path), "results": {}}
        recv, send = ctx.Pipe(duplex=False)
        kw = dict(path=str(path), batch_sizes=tuple(batch_sizes), iters=iters, warmup=warmup,
                  gpu=gpu, disp_layer=disp_layer, weights=w, engine=engine)
        p = ctx.Process(target=_child, args=(kw, send))
        p.start()
        send.close()  # the parent's copy: EOF once the child is gone
        while True:
            try:
                kind, b, payload = recv.recv()
            except EOFError:
                p.join()
                entry["error"] = (f"the timing process died (exit code {p.exitcode}; "
                                  "a Caffe CHECK failure, e.g. a net that cannot be "
                                  "reshaped to a larger batch)")
                break
            if kind == "batch":
                entry["results"][str(b)] = payload
            elif kind == "done":
                entry.update(payload)
                break
            else:
                entry["error"] = payload
                break
        p.join()
        out["nets"][net_name(path)] = entry
    return out


def run_benchmark_caffe_time(paths, batch_sizes=(1, 8), iters=20, gpu=None, disp_layer=None,
                             progress=True, engine="default", caffe_bin=None, pycaffe=False):
    """run_benchmark's result, timed by the caffe binary's `caffe time` (CUDA
    events per layer on a GPU, TEST phase) instead of pycaffe; needs no
    pycaffe. With `pycaffe`, each batch also gets the forward timed through
    pycaffe, where this Python can import it."""
    from tqdm import tqdm
    from dcd.caffeio.buildinfo import build_info_near
    from dcd.perf import caffe_time
    from dcd.util.paths import caffe_binary

    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError("deploy net(s) not found: " + ", ".join(missing))
    caffe_bin = caffe_bin or caffe_binary()
    build = build_info_near(caffe_bin)
    out = {"device": device_name(gpu), "mode": "gpu" if gpu is not None else "cpu",
           "build": dict(build, caffe=str(caffe_bin)), "engine": engine,
           "cudnn_used": bool(gpu is not None and build.get("cudnn") and engine != "CAFFE"),
           "timer": "caffe time", "phase": "TEST", "batch_sizes": list(batch_sizes),
           "iters": iters, "nets": {}}
    for path in tqdm(list(paths), desc="benchmark", unit="net", disable=not progress):
        entry = {"path": str(path), "results": {}}
        try:
            res = caffe_time.measure_net(caffe_bin, path, batch_sizes, iters, gpu, engine,
                                         disp_layer, pycaffe=pycaffe)
            entry.update(res)
            entry["results"] = {str(b): r for b, r in res["results"].items()}
        except (RuntimeError, ValueError) as exc:
            entry["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            entry["error_log"] = str(exc)[-3000:]
        out["nets"][net_name(path)] = entry
    return out


def format_pycaffe(bench):
    """Lines of pycaffe's forward ms per frame beside `caffe time`'s, for the
    batches that have both; '' when none has."""
    lines = []
    for name, entry in bench["nets"].items():
        for b, r in entry.get("results", {}).items():
            if "pycaffe_ms_per_frame" in r:
                lines.append(f"{name:<14} batch {b:>3}: caffe time {r['ms_per_frame']:.4g} ms/frame,"
                             f" pycaffe forward {r['pycaffe_ms_per_frame']:.4g} ms/frame")
            elif "pycaffe_error" in r and not lines:
                return r["pycaffe_error"]
    return "\n".join(lines)


def device_name(gpu):
    from dcd.caffeio.buildinfo import device_name as name
    return name(gpu)
