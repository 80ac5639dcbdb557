"""Pieces of tools/gpu_check.sh that are easier in Python: the generated
training data and the short `caffe train` run of the UCF101 motion solver,
and the summary of all steps. Nothing here imports caffe (the device's
Python cannot import the pycaffe built here); it needs numpy, scipy and
OpenCV.

    python -m dcd.perf.gpu_check libs --out DIR BINARY...   (tools/gpu_check.sh pack)
    python -m dcd.perf.gpu_check train --caffe BIN --out DIR [--gpu 0|all] [--iters 20]
                                  [--solver static|motion|PATH] [--frozen-bn]
    python -m dcd.perf.gpu_check weights --caffe BIN --deploy NET --out W.caffemodel [--gpu 0]
    python -m dcd.perf.gpu_check environment --out DIR [--bundle DIR]
    python -m dcd.perf.gpu_check gtests --xml gtests.xml --out DIR
    python -m dcd.perf.gpu_check summary --out DIR
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dcd.util.paths import REPO_ROOT

MOTION_SOLVER = REPO_ROOT / "models" / "ucf101" / "motion_solver.prototxt"
SOLVERS = {"motion": MOTION_SOLVER,
           "static": REPO_ROOT / "models" / "ucf101" / "static_solver.prototxt"}

# Libraries a GPU machine has itself or through NVIDIA's wheels: the C
# runtime, the driver and CUDA's libraries. Everything else the binaries
# load is packed.
SYSTEM_LIBS = re.compile(r"^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|"
                         r"libgcc_s\.|libstdc\+\+\.|libcuda\.|libcudart\.|libcublas|libcurand\.|"
                         r"libcudnn|libnccl\.|libnvrtc|libnvJitLink)")
# Debian's OpenCV image codecs link GDAL and GDCM (geodata, DICOM), whose own
# dependencies are two thirds of the binaries' 220 MB closure; Caffe decodes
# JPEG and PNG only. They are replaced by stand-ins that define what the
# codecs import, so the loader is satisfied; calling one would crash.
STUBBED_LIBS = ("libgdal.so.32", "libgdcmMSFF.so.3.0", "libgdcmDSED.so.3.0")


def _needed(path):
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\).*\[(.+)\]", out)


def _resolved(binaries):
    """{soname: path} as the loader here resolves the binaries' libraries."""
    out = subprocess.run(["ldd", *map(str, binaries)], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            if m.group(2) == "not" and not SYSTEM_LIBS.match(m.group(1)):
                raise FileNotFoundError(f"ldd: {m.group(1)} not found (needed by {binaries})")
            found[m.group(1)] = m.group(2)
    return found


def _dynamic_symbols(path, defined):
    """{name: (nm type letter, size)} of a library's dynamic symbols."""
    flag = "--defined-only" if defined else "--undefined-only"
    out = subprocess.run(["nm", "-D", "-S", flag, str(path)], capture_output=True,
                         text=True).stdout
    symbols = {}
    for line in out.splitlines():
        parts = line.split()
        name = parts[-1].split("@")[0]
        kind = parts[-2]
        size = int(parts[1], 16) if len(parts) == 4 else 0
        symbols[name] = (kind, size)
    return symbols


def stub_library(real, users, out_path):
    """A library with `real`'s SONAME defining every symbol that `users`
    import from it: functions as a bare `ret`, data as zeroed storage of
    the real size."""
    soname = re.search(r"\(SONAME\).*\[(.+)\]",
                       subprocess.run(["readelf", "-d", str(real)], capture_output=True,
                                      text=True).stdout).group(1)
    provided = _dynamic_symbols(real, defined=True)
    wanted = set()
    for user in users:
        wanted |= set(_dynamic_symbols(user, defined=False)) & set(provided)
    lines = [".text"]
    data = [".data"]
    for i, name in enumerate(sorted(wanted)):
        kind, size = provided[name]
        if kind.upper() in ("T", "W", "I"):
            lines += [f'.globl "{name}"', f'.type "{name}", @function', f'"{name}":', "  ret"]
        else:
            data += [f'.globl "{name}"', f'.type "{name}", @object', f'.size "{name}", {max(size, 8)}',
                     ".balign 16", f'"{name}":', f"  .zero {max(size, 8)}"]
    asm = Path(str(out_path) + ".s")
    asm.write_text("\n".join(lines + data) + "\n")
    subprocess.run(["gcc", "-shared", "-nostdlib", "-o", str(out_path), f"-Wl,-soname,{soname}",
                    str(asm)], check=True)
    asm.unlink()
    return len(wanted)


def pack_libraries(binaries, out_dir):
    """Copies every library the binaries load, except SYSTEM_LIBS, into
    out_dir; STUBBED_LIBS become stand-ins. Returns (copied, stubbed)."""
    out_dir = Path(out_dir)
    paths = _resolved(binaries)
    seen, todo, copied, stubs = set(), list(binaries), [], {}
    while todo:
        path = todo.pop()
        for name in _needed(path):
            if SYSTEM_LIBS.match(name):
                continue
            if name in STUBBED_LIBS:
                stubs.setdefault(name, set()).add(str(path))
                continue
            if name in seen:
                continue
            seen.add(name)
            shutil.copy2(paths[name], out_dir / name)
            copied.append(name)
            todo.append(paths[name])
    for name, users in stubs.items():
        stub_library(paths[name], sorted(users), out_dir / name)
    return copied, sorted(stubs)


def make_train_data(root, classes=8, per_class=2, frames=8, seed=0):
    """MovingPatterns clips as UCF101-style frame folders (340x256 JPEGs,
    img_00001.jpg ...) and a file list `video num_frames label`; returns the
    list's path. Labels 0..classes-1 fit the 101-way classifier."""
    import cv2
    import numpy as np
    from dcd.data.frames import DEFAULT_HEIGHT, DEFAULT_WIDTH
    from dcd.data.synthetic import ClipSpec, make_clip

    root = Path(root)
    rng = np.random.default_rng(seed)
    spec = ClipSpec(frames=frames, size=128, object_size=36, speed=4.0)
    lines = []
    for label in range(classes):
        for k in range(per_class):
            video = f"v_{label:02d}_{k:02d}"
            folder = root / video
            folder.mkdir(parents=True, exist_ok=True)
            for t, frame in enumerate(make_clip(label % 8, rng, spec)):
                frame = cv2.resize(frame, (DEFAULT_WIDTH, DEFAULT_HEIGHT), interpolation=cv2.INTER_LINEAR)
                cv2.imwrite(str(folder / f"img_{t + 1:05d}.jpg"), frame)
            lines.append(f"{video} {frames} {label}")
    list_file = root / "train_list.txt"
    list_file.write_text("\n".join(lines) + "\n")
    return list_file


def frozen_bn_to_batch_statistics(net_text):
    """Every FrozenBN layer of a generated prototxt as a BatchNorm on batch
    statistics: FrozenBN's gamma and beta are not learned, so from random
    weights (gamma 1, beta 0) BatchNorm alone is what the layer does with
    its statistics replaced. Text edits (no caffe here): the type, and the
    parameter specs cut to BatchNorm's three."""
    blocks = re.split(r"(?m)^(?=layer \{)", net_text)
    for i, block in enumerate(blocks):
        if '\n  type: "FrozenBN"\n' not in block:
            continue
        block = block.replace('\n  type: "FrozenBN"\n', '\n  type: "BatchNorm"\n')
        block = re.sub(r"  frozen_bn_param \{\n(?:    .*\n)*?  \}\n", "", block)
        params = list(re.finditer(r"  param \{\n(?:    .*\n)*?  \}\n", block))
        for m in reversed(params[3:]):
            block = block[:m.start()] + block[m.end():]
        blocks[i] = block
    return "".join(blocks)


def check_solver(solver, data_root, list_file, out_dir, iters=20, iter_size=4, cpu=False,
                 frozen_bn=False):
    """The solver and its train_val with the data layers on `list_file`
    (FOLDER backend), `iters` iterations, every loss printed, no snapshots or
    tests, BatchNorm on batch statistics (random weights) unless `frozen_bn`
    keeps partial BN as generated (for timing: the losses of frozen zero
    statistics are not finite); returns the new solver's path. Everything
    else (net, lr, momentum, clipping) stays as generated."""
    solver = Path(solver)
    text = solver.read_text()
    net = REPO_ROOT / re.search(r'^net: "([^"]+)"', text, re.M).group(1)
    net_text = net.read_text()
    net_text = re.sub(r'source: "[^"]*"', f'source: "{list_file}"', net_text)
    net_text = re.sub(r'root_folder: "[^"]*"', f'root_folder: "{data_root}/"', net_text)
    net_text = net_text.replace("backend: LMDB", "backend: FOLDER")
    # Partial BN freezes BN at ImageNet statistics (tools/init_weights.py);
    # from random weights those are zero and the loss is NaN at once, so the
    # check normalises with batch statistics.
    if not frozen_bn:
        net_text = net_text.replace("use_global_stats: true", "use_global_stats: false")
        net_text = frozen_bn_to_batch_statistics(net_text)
    out_dir = Path(out_dir)
    out_net = out_dir / net.name
    out_net.write_text(net_text)
    settings = {"net": f'"{out_net}"', "max_iter": iters, "iter_size": iter_size, "display": 1,
                "average_loss": 1, "snapshot": 0, "test_interval": iters + 1000,
                "test_iter": 1}
    for key, value in settings.items():
        text, n = re.subn(rf"^{key}: .*$", f"{key}: {value}", text, flags=re.M)
        if n == 0:
            text += f"{key}: {value}\n"
    text = re.sub(r"^snapshot_prefix: .*\n", "", text, flags=re.M)
    text = re.sub(r"^# Generated by .*\n", f"# {solver.name} rewritten by dcd.perf.gpu_check for a "
                  "short check run.\n", text, count=1, flags=re.M)
    if cpu:
        text = re.sub(r"^solver_mode: .*$", "solver_mode: CPU", text, flags=re.M)
    out_solver = out_dir / solver.name
    out_solver.write_text(text)
    return out_solver


def run_train(caffe_bin, out_dir, gpu="0", iters=20, iter_size=4, solver=MOTION_SOLVER,
              frozen_bn=False):
    """Generates data, runs `caffe train` and judges the losses: finite, and
    the mean of the last 5 below the mean of the first 5. With `frozen_bn`
    (a timing run, partial BN as generated) only the exit status and the
    number of iterations are judged. Records seconds per iteration from
    Caffe's own timing (the median of the display intervals after the
    first, which includes the start-up) and per forward-backward pass
    (seconds per iteration / iter_size)."""
    from dcd.caffeio.caffe_log import parse_iteration_speed, parse_train_losses

    solver = Path(SOLVERS.get(str(solver), solver))
    out_dir = Path(out_dir)
    work = out_dir / "train_work"
    work.mkdir(parents=True, exist_ok=True)
    list_file = work / "frames" / "train_list.txt"
    if not list_file.is_file():
        list_file = make_train_data(work / "frames")
    run_dir = work / solver.stem
    run_dir.mkdir(exist_ok=True)
    new_solver = check_solver(solver, work / "frames", list_file, run_dir, iters, iter_size,
                              cpu=gpu is None, frozen_bn=frozen_bn)
    tag = f"train_gpu_{gpu}" if solver == MOTION_SOLVER and not frozen_bn else \
        f"train_speed_{solver.stem.removesuffix('_solver')}"
    log_path = out_dir / f"{tag}.log"
    cmd = [str(caffe_bin), "train", f"--solver={new_solver}"] + \
        ([f"--gpu={gpu}"] if gpu is not None else [])
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                              env=dict(os.environ, GLOG_logtostderr="1"))
    seconds = time.time() - start
    log_text = log_path.read_text(errors="replace")
    losses = [loss for _, loss in parse_train_losses(log_text)]
    speed = [s for _, s in parse_iteration_speed(log_text)]
    steady = sorted(speed[1:] or speed)
    per_iter = steady[len(steady) // 2] if steady else None
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    k = min(5, len(losses) // 2)
    falling = finite and k > 0 and sum(losses[-k:]) / k < sum(losses[:k]) / k
    ok = proc.returncode == 0 and len(losses) >= iters and (frozen_bn or (finite and falling))
    result = {"command": " ".join(cmd), "solver": solver.name, "exit_code": proc.returncode,
              "seconds": seconds, "iterations_logged": len(losses), "losses": losses,
              "finite": finite, "falling": falling, "iter_size": iter_size,
              "frozen_bn": frozen_bn, "seconds_per_iteration": per_iter,
              "seconds_per_pass": per_iter / iter_size if per_iter else None,
              "seconds_per_iteration_all": speed, "ok": ok, "log": log_path.name}
    (out_dir / f"{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def random_weights(caffe_bin, deploy, out, gpu=None):
    """A caffemodel of `deploy` with its fillers' random weights, made by the
    caffe binary alone (no pycaffe): `caffe train` of a solver on the net
    with max_iter 0 snapshots the initialised net."""
    out = Path(out)
    work = out.parent / (out.stem + "_init")
    work.mkdir(parents=True, exist_ok=True)
    solver = work / "solver.prototxt"
    solver.write_text(f'net: "{Path(deploy).resolve()}"\nbase_lr: 0\nlr_policy: "fixed"\n'
                      f'max_iter: 0\ndisplay: 0\nsnapshot_after_train: true\n'
                      f'snapshot_prefix: "{work}/init"\n'
                      f'solver_mode: {"CPU" if gpu is None else "GPU"}\n')
    cmd = [str(caffe_bin), "train", f"--solver={solver}"] + \
        ([f"--gpu={gpu}"] if gpu is not None else [])
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, GLOG_logtostderr="1"))
    made = work / "init_iter_0.caffemodel"
    if proc.returncode != 0 or not made.is_file():
        tail = (proc.stdout + proc.stderr)[-1500:]
        raise RuntimeError(f"caffe train (max_iter 0) of {deploy} made no weights "
                           f"(exit {proc.returncode}):\n{tail}")
    made.replace(out)
    shutil.rmtree(work)
    return out


def fold_nets(caffe_bin, nets, out_dir, python, gpu="0", fold_tool=None):
    """BN folded into the convolutions of each deploy net by tools/fold_bn.py
    (DEPLOY WEIGHTS --out ...; run by `python`, which must import pycaffe
    if the tool needs it), on random weights from random_weights(). Returns
    {stem: folded prototxt}, each copied to out_dir/timed/<stem>.prototxt so
    that tools/benchmark.py names its column as for the unfolded net."""
    fold_tool = Path(fold_tool or REPO_ROOT / "tools" / "fold_bn.py")
    if not fold_tool.is_file():
        raise FileNotFoundError(f"{fold_tool} missing")
    out_dir = Path(out_dir)
    timed = out_dir / "timed"
    timed.mkdir(parents=True, exist_ok=True)
    folded = {}
    for net in nets:
        stem = Path(net).stem.removesuffix("_deploy")
        weights = random_weights(caffe_bin, net, out_dir / f"{stem}_random.caffemodel", gpu)
        target = out_dir / stem / f"{stem}_deploy.prototxt"
        target.parent.mkdir(exist_ok=True)
        proc = subprocess.run([str(python), str(fold_tool), str(net), str(weights),
                               "--out", str(target)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{fold_tool.name} {Path(net).name} failed "
                               f"(exit {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
        # --out names the folded prototxt; take what the tool wrote there.
        found = [target] if target.is_file() else sorted(target.parent.rglob("*.prototxt"))
        if not found:
            raise RuntimeError(f"{fold_tool.name} {Path(net).name} wrote no prototxt under "
                               f"{target.parent}")
        shutil.copy2(found[0], timed / f"{stem}_deploy.prototxt")
        folded[stem] = timed / f"{stem}_deploy.prototxt"
        weights.unlink()
    return folded


def environment(out_dir, bundle=None):
    """environment.json: the device and driver (nvidia-smi), the CUDA
    libraries' wheels, and the bundle's build record."""
    from importlib import metadata
    info = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "gpus": [],
            "wheels": {}}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=60)
        for line in smi.stdout.strip().splitlines():
            name, driver, memory = [x.strip() for x in line.split(",")]
            info["gpus"].append({"name": name, "driver": driver, "memory": memory})
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        info["nvidia_smi_error"] = str(exc)
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().startswith("nvidia-"):
            info["wheels"][name] = dist.version
    if bundle and (Path(bundle) / "build_info.json").is_file():
        info["build"] = json.loads((Path(bundle) / "build_info.json").read_text())
    Path(out_dir, "environment.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def gtest_results(xml_path):
    """{'tests', 'failures', 'suites': {suite prefix: [tests, failures]}}
    from gtest's XML report; the suites are grouped by name without the
    type index (CuDNNConvolutionLayerTest/0 and /1 together), and `cudnn`
    counts Caffe's own CuDNN* tests."""
    import xml.etree.ElementTree as ET
    root = ET.parse(xml_path).getroot()
    suites, cudnn = {}, [0, 0]
    for suite in root.iter("testsuite"):
        name = suite.get("name", "").split("/")[0]
        tests = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        entry = suites.setdefault(name, [0, 0])
        entry[0] += tests
        entry[1] += failed
        if name.startswith("CuDNN"):
            cudnn[0] += tests
            cudnn[1] += failed
    return {"tests": sum(t for t, _ in suites.values()),
            "failures": sum(f for _, f in suites.values()),
            "cudnn": {"tests": cudnn[0], "failures": cudnn[1]}, "suites": suites}


def summary(out_dir):
    """summary.json from the steps' step_*.json records; prints one line each."""
    out_dir = Path(out_dir)
    steps = [json.loads(p.read_text()) for p in sorted(out_dir.glob("step_*.json"))]
    counts = {}
    for s in steps:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
        print(f"{s['status']:>7}  {s['name']:<34} {s['seconds']:7.1f} s  {s.get('note', '')}")
    (out_dir / "summary.json").write_text(json.dumps({"steps": steps, "counts": counts},
                                                     indent=2) + "\n")
    print(f"{counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
          f"{counts.get('skipped', 0)} skipped")
    return 0 if not counts.get("failed") else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="generated data + caffe train of the motion solver")
    t.add_argument("--caffe", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--gpu", default="0", help="a GPU id, 'all' (NCCL), or 'cpu'")
    t.add_argument("--iters", type=int, default=20)
    t.add_argument("--iter-size", type=int, default=4)
    t.add_argument("--solver", default="motion",
                   help="'motion', 'static' (models/ucf101/<name>_solver.prototxt) or a path")
    t.add_argument("--frozen-bn", action="store_true",
                   help="keep partial BN as generated (a timing run: losses not judged)")
    w = sub.add_parser("weights", help="random weights of a deploy net (caffe train, max_iter 0)")
    w.add_argument("--caffe", required=True)
    w.add_argument("--deploy", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--gpu", help="a GPU id (default: the CPU)")
    e = sub.add_parser("environment", help="environment.json: device, driver, wheels, build")
    e.add_argument("--out", required=True)
    e.add_argument("--bundle")
    f = sub.add_parser("fold", help="tools/fold_bn.py on random weights of deploy nets")
    f.add_argument("--caffe", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--python", default=sys.executable, help="the Python that runs fold_bn.py")
    f.add_argument("--gpu", default="0")
    f.add_argument("--tool", help="the folding tool (default: tools/fold_bn.py)")
    f.add_argument("nets", nargs="+")
    g = sub.add_parser("gtests", help="gtests.json from gtest's XML report")
    g.add_argument("--xml", required=True)
    g.add_argument("--out", required=True)
    s = sub.add_parser("summary", help="summary.json of the steps")
    s.add_argument("--out", required=True)
    libs = sub.add_parser("libs", help="copy the libraries the binaries need (with stand-ins)")
    libs.add_argument("--out", required=True)
    libs.add_argument("binaries", nargs="+")
    args = p.parse_args(argv)
    if args.cmd == "libs":
        copied, stubbed = pack_libraries(args.binaries, args.out)
        print(f"{len(copied)} libraries copied, stand-ins for {', '.join(stubbed) or 'none'}")
        return 0
    if args.cmd == "train":
        gpu = None if args.gpu == "cpu" else args.gpu
        r = run_train(args.caffe, args.out, gpu, args.iters, args.iter_size, args.solver,
                      args.frozen_bn)
        speed = (f", {r['seconds_per_iteration']:.3f} s/iteration "
                 f"({r['seconds_per_pass']:.3f} s per pass of iter_size {r['iter_size']})"
                 if r["seconds_per_iteration"] else ", no iteration timing logged")
        print(f"caffe train {r['solver']} --gpu {args.gpu}: exit {r['exit_code']}, "
              f"{r['iterations_logged']} losses, first {r['losses'][:1]}, "
              f"last {r['losses'][-1:]}, {'finite' if r['finite'] else 'NOT finite'}, "
              f"{'falling' if r['falling'] else 'NOT falling'}{speed}")
        return 0 if r["ok"] else 1
    if args.cmd == "weights":
        try:
            print(random_weights(args.caffe, args.deploy, args.out, args.gpu))
        except RuntimeError as exc:
            print(f"gpu_check weights: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "fold":
        try:
            folded = fold_nets(args.caffe, args.nets, args.out, args.python,
                               None if args.gpu == "cpu" else args.gpu, args.tool)
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"gpu_check fold: {exc}", file=sys.stderr)
            return 1
        print("\n".join(str(p) for p in folded.values()))
        return 0
    if args.cmd == "environment":
        info = environment(args.out, args.bundle)
        print(", ".join(f"{g['name']} (driver {g['driver']})" for g in info["gpus"]) or
              "no GPU listed by nvidia-smi")
        return 0
    if args.cmd == "gtests":
        r = gtest_results(args.xml)
        Path(args.out, "gtests.json").write_text(json.dumps(r, indent=2) + "\n")
        print(f"{r['tests']} tests, {r['failures']} failed; Caffe's CuDNN* tests: "
              f"{r['cudnn']['tests']}, {r['cudnn']['failures']} failed")
        return 0 if r["failures"] == 0 else 1
    return summary(args.out)


if __name__ == "__main__":
    sys.exit(main())
