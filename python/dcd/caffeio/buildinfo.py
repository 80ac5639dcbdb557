"""What the benchmarks ran on: the device's name and how the pycaffe in use
was built (CUDA, cuDNN, NCCL), read from its build folder's CMakeCache.txt."""
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

# Caffe's layers with a cuDNN implementation: LayerParameter field -> type.
ENGINE_PARAMS = {"convolution_param": ("Convolution",), "pooling_param": ("Pooling",),
                 "relu_param": ("ReLU",), "sigmoid_param": ("Sigmoid",),
                 "tanh_param": ("TanH",), "softmax_param": ("Softmax", "SoftmaxWithLoss"),
                 "lrn_param": ("LRN",)}


def _build_record(start):
    """The nearest build_info.json (a gpu_check bundle) or CMakeCache.txt
    at or above `start`."""
    for folder in [start, *start.parents]:
        for name in ("build_info.json", "CMakeCache.txt"):
            if (folder / name).is_file():
                return folder / name
    return None


def build_info_from_cache(cache):
    """{'build_dir', 'cuda', 'cudnn', 'nccl'} from a build's CMakeCache.txt."""
    values = {}
    for line in Path(cache).read_text(errors="replace").splitlines():
        if "=" in line and ":" in line.split("=")[0] and not line.startswith(("//", "#")):
            key, _, value = line.partition("=")
            values[key.split(":")[0]] = value.strip().upper() in ("ON", "TRUE", "1", "YES")
    cuda = not values.get("CPU_ONLY", False)
    return {"build_dir": str(Path(cache).parent), "cuda": cuda,
            "cudnn": cuda and values.get("USE_CUDNN", False),
            "nccl": cuda and values.get("USE_NCCL", False)}


def caffe_build():
    """{'pycaffe', 'build_dir', 'cuda', 'cudnn', 'nccl'} of the imported pycaffe
    (None where its build folder could not be found)."""
    import caffe
    pycaffe = Path(caffe.__file__).resolve().parent
    info = {"pycaffe": str(pycaffe), "build_dir": None, "cuda": None, "cudnn": None,
            "nccl": None}
    info.update(build_info_near(pycaffe))
    return info


def build_info_near(start):
    """The build switches of the build at or above `start` (a file or folder):
    its nearest build_info.json (tools/gpu_check.sh pack writes one) or
    CMakeCache.txt; {'cuda': None, 'cudnn': None, 'nccl': None} if neither."""
    record = _build_record(Path(start).resolve())
    if record is None:
        return {"cuda": None, "cudnn": None, "nccl": None}
    if record.name == "build_info.json":
        return json.loads(record.read_text())
    return build_info_from_cache(record)


def pycaffe_gpu_unavailable_reason(python=None, gpu=0):
    """None when the imported pycaffe is a CUDA build and can use GPU `gpu`,
    else one line saying why not. The GPU is tried in a child process: in a
    CUDA build without a usable GPU, Caffe aborts the process."""
    build = caffe_build()
    if build["cuda"] is False:
        return f"pycaffe ({build['pycaffe']}) is a CPU_ONLY build"
    code = ("import caffe; caffe.set_device(%d); caffe.set_mode_gpu(); "
            "caffe.Net" % gpu)
    proc = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, GLOG_minloglevel="2"))
    if proc.returncode != 0:
        lines = [x for x in (proc.stderr or proc.stdout).splitlines() if x.strip()]
        return f"pycaffe cannot use GPU {gpu}: {lines[-1] if lines else f'exit {proc.returncode}'}"
    return None


def gpu_name(gpu):
    """The GPU's name from nvidia-smi, else 'GPU <id>'."""
    smi = shutil.which("nvidia-smi")
    if smi:
        proc = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader", "-i", str(gpu)],
                              capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip().splitlines()[0]
    return f"GPU {gpu}"


def device_name(gpu):
    if gpu is not None:
        return gpu_name(gpu)
    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS")
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores" + \
        (f", {threads} threads" if threads else "") + ")"
