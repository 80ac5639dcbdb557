"""Pieces of tools/gpu_check.sh that are easier in Python: the generated
training data and the short `caffe train` run of the UCF101 motion solver,
and the summary of all steps. Nothing here imports caffe (the device's
Python cannot import the pycaffe built here); it needs numpy, scipy and
OpenCV.

    python -m dcd.gpu_check libs --out DIR BINARY...   (tools/gpu_check.sh pack)
    python -m dcd.gpu_check train --caffe BIN --out DIR [--gpu 0|all] [--iters 20]
    python -m dcd.gpu_check summary --out DIR
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

from dcd.paths import REPO_ROOT

MOTION_SOLVER = REPO_ROOT / "models" / "ucf101" / "motion_solver.prototxt"

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
    from dcd.synthetic import ClipSpec, make_clip

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
                frame = cv2.resize(frame, (340, 256), interpolation=cv2.INTER_LINEAR)
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


def check_solver(solver, data_root, list_file, out_dir, iters=20, iter_size=4, cpu=False):
    """The solver and its train_val with the data layers on `list_file`
    (FOLDER backend), `iters` iterations, every loss printed, no snapshots or
    tests, BatchNorm on batch statistics (random weights); returns the new
    solver's path. Everything else (net, lr, momentum, clipping) stays as
    generated."""
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
    text = re.sub(r"^# Generated by .*\n", f"# {solver.name} rewritten by dcd.gpu_check for a "
                  "short check run.\n", text, count=1, flags=re.M)
    if cpu:
        text = re.sub(r"^solver_mode: .*$", "solver_mode: CPU", text, flags=re.M)
    out_solver = out_dir / solver.name
    out_solver.write_text(text)
    return out_solver


def run_train(caffe_bin, out_dir, gpu="0", iters=20, iter_size=4, solver=MOTION_SOLVER):
    """Generates data, runs `caffe train` and judges the losses: finite, and
    the mean of the last 5 below the mean of the first 5."""
    from dcd.caffe_log import parse_train_losses

    out_dir = Path(out_dir)
    work = out_dir / "train_work"
    work.mkdir(parents=True, exist_ok=True)
    list_file = make_train_data(work / "frames")
    new_solver = check_solver(solver, work / "frames", list_file, work, iters, iter_size,
                              cpu=gpu is None)
    log_path = out_dir / f"train_gpu_{gpu}.log"
    cmd = [str(caffe_bin), "train", f"--solver={new_solver}"] + \
        ([f"--gpu={gpu}"] if gpu is not None else [])
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                              env=dict(os.environ, GLOG_logtostderr="1"))
    seconds = time.time() - start
    losses = [loss for _, loss in parse_train_losses(log_path.read_text(errors="replace"))]
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    k = min(5, len(losses) // 2)
    falling = finite and k > 0 and sum(losses[-k:]) / k < sum(losses[:k]) / k
    ok = proc.returncode == 0 and len(losses) >= iters and finite and falling
    result = {"command": " ".join(cmd), "exit_code": proc.returncode, "seconds": seconds,
              "iterations_logged": len(losses), "losses": losses, "finite": finite,
              "falling": falling, "iter_size": iter_size, "ok": ok, "log": log_path.name}
    (out_dir / f"train_gpu_{gpu}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


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
        r = run_train(args.caffe, args.out, gpu, args.iters, args.iter_size)
        print(f"caffe train --gpu {args.gpu}: exit {r['exit_code']}, {r['iterations_logged']} "
              f"losses, first {r['losses'][:1]}, last {r['losses'][-1:]}, "
              f"{'finite' if r['finite'] else 'NOT finite'}, "
              f"{'falling' if r['falling'] else 'NOT falling'}")
        return 0 if r["ok"] else 1
    return summary(args.out)


if __name__ == "__main__":
    sys.exit(main())
