"""Table 9 timings through `caffe time` instead of pycaffe: the caffe binary
times every layer with CUDA events on a GPU (its own timers on the CPU), and
nothing here imports caffe, so it runs where the binary runs but pycaffe
cannot be imported (another Python, no numpy < 2). Nets are edited as text:
the generated prototxts have protobuf's text layout (one field per line,
two-space indents)."""
import os
import re
import subprocess
import tempfile
from pathlib import Path

from dcd.caffeio.buildinfo import ENGINE_PARAMS
from dcd.layers import TEMPERATURE

_TYPE_TO_PARAM = {t: field for field, types in ENGINE_PARAMS.items() for t in types}


def _layer_blocks(text):
    """[(start, end)] line ranges of the top-level `layer { ... }` blocks."""
    lines = text.split("\n")
    blocks, start, depth = [], None, 0
    for i, line in enumerate(lines):
        if start is None and line.strip() == "layer {" and not line.startswith(" "):
            start, depth = i, 0
        if start is not None:
            depth += line.count("{") - line.count("}")
            if depth == 0:
                blocks.append((start, i))
                start = None
    return lines, blocks


def layer_types(text):
    """[(name, type)] of the net's layers in order."""
    lines, blocks = _layer_blocks(text)
    out = []
    for start, end in blocks:
        body = "\n".join(lines[start:end + 1])
        name = re.search(r'^  name: "([^"]+)"', body, re.M)
        kind = re.search(r'^  type: "([^"]+)"', body, re.M)
        out.append((name.group(1) if name else None, kind.group(1) if kind else None))
    return out


def set_engine(text, engine, replace=False):
    """The prototxt with `engine: <engine>` in every layer that has a cuDNN
    version (inside its existing parameter block, or a new one). A layer that
    already names an engine is refused, or with `replace` given the new one
    (as the pycaffe timer always did)."""
    lines, blocks = _layer_blocks(text)
    inserts = []
    for start, end in blocks:
        kind = next((re.match(r'  type: "([^"]+)"', lines[i]) for i in range(start, end)
                     if lines[i].startswith('  type: "')), None)
        field = _TYPE_TO_PARAM.get(kind.group(1)) if kind else None
        if field is None:
            continue
        block = next((i for i in range(start, end) if lines[i] == f"  {field} {{"), None)
        if block is not None:
            named = [i for i in range(block, end) if re.match(r"    engine: ", lines[i])]
            if named and not replace:
                raise ValueError(f"layer at line {start + 1} already names an engine")
            for i in named:
                lines[i] = f"    engine: {engine}"
            if not named:
                inserts.append((block + 1, [f"    engine: {engine}"]))
        else:
            type_line = next(i for i in range(start, end) if lines[i].startswith('  type: "'))
            inserts.append((type_line + 1, [f"  {field} {{", f"    engine: {engine}", "  }"]))
    for at, new in sorted(inserts, reverse=True):
        lines[at:at] = new
    return "\n".join(lines)


def scale_batch(text, factor):
    """The prototxt with its Input layer's first dimension times `factor`;
    returns (text, input shape after scaling)."""
    lines, blocks = _layer_blocks(text)
    for start, end in blocks:
        body = lines[start:end + 1]
        if '  type: "Input"' not in body:
            continue
        dims = [i for i in range(start, end) if re.match(r"\s+dim: \d+$", lines[i])]
        if not dims:
            break
        shape = [int(lines[i].split(":")[1]) for i in dims]
        shape[0] *= factor
        lines[dims[0]] = re.sub(r"\d+$", str(shape[0]), lines[dims[0]])
        return "\n".join(lines), shape
    raise ValueError("no Input layer with dim: lines (deploy nets written by tools/make_models.py "
                     "have one)")


_LAYER_TIME = re.compile(r"\]\s+(\S+)\s+(forward|backward): ([0-9.eE+-]+) ms\.")
_TOTAL = re.compile(r"Average (Forward|Backward|Forward-Backward)(?: pass)?: ([0-9.eE+-]+) ms\.")


def parse_caffe_time(log):
    """{'layers': [(name, fwd ms, bwd ms)], 'forward_ms', 'backward_ms'} from
    the output of `caffe time`."""
    fwd, bwd, order = {}, {}, []
    for name, which, ms in _LAYER_TIME.findall(log):
        if name not in fwd and name not in bwd:
            order.append(name)
        (fwd if which == "forward" else bwd)[name] = float(ms)
    totals = {k.lower(): float(v) for k, v in _TOTAL.findall(log)}
    if "forward" not in totals:
        raise RuntimeError("caffe time printed no 'Average Forward pass' line:\n" + log[-2000:])
    return {"layers": [(n, fwd.get(n, 0.0), bwd.get(n, 0.0)) for n in order],
            "forward_ms": totals["forward"], "backward_ms": totals.get("backward")}


# What patch 0004's CuDNNConvolutionLayer logs once per shape.
_CUDNN_FWD = re.compile(r"CuDNNConvolution (\S+) bottom .*?: forward (\w+) \((\w+), (\d+) B "
                        r"workspace; (\d+) ranked, pick (\d+)\)")
_CUDNN_BWD = re.compile(r"CuDNNConvolution (\S+) bottom \d+: backward filter (\w+) \((\w+), "
                        r"(\d+) B workspace\), backward data (\w+) \((\w+), (\d+) B workspace\)")
_CUDNN_FALLBACK = re.compile(r"CuDNNConvolution (\S+): no ranked (\S+) algorithm")


def cudnn_algorithms(log):
    """What the cuDNN convolutions picked, from a caffe log: counts of the
    algorithms per direction and of their math types, the largest
    workspace, and the layers that fell back to the no-workspace algorithm
    because no ranked one fitted (`fallbacks`). Empty when the log has no
    cuDNN convolution lines (engine CAFFE, a CPU build, or a build without
    patch 0004)."""
    out = {}

    def count(kind, algo, math, workspace):
        d = out.setdefault(kind, {})
        d[algo] = d.get(algo, 0) + 1
        m = out.setdefault("math", {})
        m[math] = m.get(math, 0) + 1
        out["max_workspace_bytes"] = max(out.get("max_workspace_bytes", 0), int(workspace))

    for layer, algo, math, ws, _, _ in _CUDNN_FWD.findall(log):
        count("forward", algo, math, ws)
    for layer, falgo, fmath, fws, dalgo, dmath, dws in _CUDNN_BWD.findall(log):
        count("backward_filter", falgo, fmath, fws)
        count("backward_data", dalgo, dmath, dws)
    if out or _CUDNN_FALLBACK.search(log):
        out["fallbacks"] = [f"{layer} ({kind})" for layer, kind in _CUDNN_FALLBACK.findall(log)]
    return out


def caffe_time_args(caffe_bin, model, gpu=None, iterations=20, phase="TEST"):
    """The `caffe time` command line. `caffe time` builds the net in the TRAIN
    phase unless told otherwise (Dropout on, BatchNorm without
    use_global_stats normalising by batch statistics); Table 9 times the nets
    as they score, so the phase is TEST unless `phase` says otherwise (None:
    the binary's default)."""
    if phase not in (None, "TRAIN", "TEST"):
        raise ValueError(f"phase must be TRAIN, TEST or None, not {phase!r}")
    cmd = [str(caffe_bin), "time", f"-model={model}", f"-iterations={iterations}"]
    if phase:
        cmd.append(f"-phase={phase}")
    if gpu is not None:
        cmd.append(f"-gpu={gpu}")
    return cmd


def run_caffe_time(caffe_bin, model_text, gpu=None, iterations=20, phase="TEST"):
    """Runs `caffe time` on a prototxt given as text; returns parse_caffe_time()."""
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(model_text)
    try:
        cmd = caffe_time_args(caffe_bin, f.name, gpu, iterations, phase)
        env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        os.unlink(f.name)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        fatal = [x for x in log.splitlines() if x.startswith("F") or "Check failed" in x]
        why = fatal[0].split("] ", 1)[-1] if fatal else "see the log below"
        raise RuntimeError(f"caffe time failed (exit {proc.returncode}): {why}\n{log[-3000:]}")
    result = parse_caffe_time(log)
    result["cudnn_algorithms"] = cudnn_algorithms(log)
    return result


def pycaffe_forward_ms(model_text, gpu=None, iterations=20, warmup=2):
    """Median ms of one forward pass of the net through pycaffe, TEST phase,
    on random input; beside `caffe time`, it shows what a scoring script
    pays (Python's call overhead, the host wait). Raises ImportError where
    this Python cannot import pycaffe."""
    import caffe  # noqa: F401 - the ImportError is the caller's to report
    from dcd.perf.layers import DeviceSync, forward, median_seconds
    from dcd.caffeio.netio import set_device

    set_device(gpu)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(model_text)
    try:
        net = caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)
    import numpy as np
    rng = np.random.RandomState(0)
    for name in net.inputs:
        net.blobs[name].data[...] = rng.uniform(-1, 1, net.blobs[name].data.shape)
    sync = DeviceSync(gpu)
    return 1e3 * median_seconds(lambda: forward(net, sync), iterations, warmup)


def frame_rates(rows, frames, forward_ms, disp_ms=None):
    """One batch's figures, whichever timer measured them: ms per forward and
    per frame, FPS, and with `disp_ms` (the layers up to the displacement map)
    the map's ms per frame and the rest of the branch's."""
    r = {"rows": rows, "frames": frames, "ms_per_forward": forward_ms,
         "ms_per_frame": forward_ms / frames, "fps": 1e3 * frames / forward_ms}
    if disp_ms is not None:
        r["disp_ms_per_frame"] = disp_ms / frames
        r["branch_ms_per_frame"] = r["ms_per_frame"] - r["disp_ms_per_frame"]
    return r


def measure_net(caffe_bin, path, batch_sizes=(1, 8), iterations=20, gpu=None, engine="default",
                disp_layer=None, pycaffe=False, phase="TEST"):
    """benchmark.measure_net's result through `caffe time`: per batch, ms per
    frame and FPS of the forward pass, and the displacement map's share (the
    layers up to the first SoftDisplacement layer, or `disp_layer`). With
    `pycaffe`, also the forward through pycaffe (pycaffe_ms_per_forward and
    _per_frame), or why it could not be timed (pycaffe_error)."""
    text = Path(path).read_text()
    if engine != "default":
        text = set_engine(text, engine)
    names = [n for n, _ in layer_types(text)]
    disp = disp_layer or next((n for n, t in layer_types(text) if t == "SoftDisplacement"), None)
    if disp is not None and disp not in names:
        raise ValueError(f"{path}: no layer named {disp!r}")
    results, shape = {}, None
    for b in batch_sizes:
        scaled, shape_b = scale_batch(text, b)
        shape = shape or [shape_b[0] // b] + shape_b[1:]
        timed = run_caffe_time(caffe_bin, scaled, gpu, iterations, phase)
        frames = shape_b[0] * shape_b[1] // 3
        layers_ms = {n: f for n, f, _ in timed["layers"]}
        disp_ms = (sum(layers_ms.get(n, 0.0) for n in names[:names.index(disp) + 1])
                   if disp else None)
        r = dict(frame_rates(shape_b[0], frames, timed["forward_ms"], disp_ms), phase=phase,
                 layers_forward_ms=layers_ms)
        if timed["cudnn_algorithms"]:
            r["cudnn_algorithms"] = timed["cudnn_algorithms"]
        if pycaffe:
            try:
                ms = pycaffe_forward_ms(scaled, gpu, iterations)
                r["pycaffe_ms_per_forward"] = ms
                r["pycaffe_ms_per_frame"] = ms / frames
            except ImportError as exc:
                r["pycaffe_error"] = f"pycaffe not importable here: {exc}"
        results[b] = r
    return {"input_shape": shape, "disp_layer": disp, "results": results, "timer": "caffe time"}


def chain_prototxt(channels, size, max_displacement, batch, dilation=1,
                   temperature=TEMPERATURE):
    """The three DCD layers as the appearance-change branch wires them, on
    Input features (what dcd.perf.layers times through pycaffe), as prototxt text."""
    shape = "\n".join(f"      dim: {d}" for d in (batch, channels, size, size))
    window = f"max_displacement: {max_displacement}\n    dilation: {dilation}"

    def layer(name, kind, bottoms, body=""):
        lines = ["layer {", f'  name: "{name}"', f'  type: "{kind}"']
        lines += [f'  bottom: "{b}"' for b in bottoms] + [f'  top: "{name}"']
        return "\n".join(lines + ([body] if body else []) + ["}"])

    inputs = [layer(n, "Input", [], f"  input_param {{\n    shape {{\n{shape}\n    }}\n  }}")
              for n in ("feat_a", "feat_b")]
    return "\n".join(['name: "dcd_chain"', "force_backward: true", *inputs,
                      layer("cost", "CostVolume", ["feat_a", "feat_b"],
                            f"  cost_volume_param {{\n    {window}\n  }}"),
                      layer("disp", "SoftDisplacement", ["cost"],
                            f"  soft_displacement_param {{\n    {window}\n"
                            f"    temperature: {temperature}\n  }}"),
                      layer("warped", "BilinearWarp", ["feat_a", "disp"],
                            "  bilinear_warp_param {\n    displacement_scale: -1\n  }")]) + "\n"


def time_layers(caffe_bin, channels, size, max_displacement, batch, gpu=None, iterations=20):
    """Per-layer forward and backward ms per frame (a frame = one feature-map
    pair) of the chain net, from `caffe time`, plus the displacement map
    (CostVolume + SoftDisplacement forward)."""
    timed = run_caffe_time(caffe_bin, chain_prototxt(channels, size, max_displacement, batch),
                           gpu, iterations)
    layers = {}
    for name, fwd, bwd in timed["layers"]:
        kind = {"cost": "CostVolume", "disp": "SoftDisplacement", "warped": "BilinearWarp"}.get(name)
        if kind:
            layers[kind] = {"forward_ms_per_frame": fwd / batch,
                            "backward_ms_per_frame": bwd / batch,
                            "forward_fps": 1e3 * batch / fwd if fwd > 0 else None}
    disp_ms = layers["CostVolume"]["forward_ms_per_frame"] + \
        layers["SoftDisplacement"]["forward_ms_per_frame"]
    return {"channels": channels, "size": size, "max_displacement": max_displacement,
            "batch": batch, "layers": layers,
            "displacement_map": {"forward_ms_per_frame": disp_ms,
                                 "forward_fps": 1e3 / disp_ms if disp_ms > 0 else None},
            "net_forward_ms": timed["forward_ms"], "net_backward_ms": timed["backward_ms"]}
