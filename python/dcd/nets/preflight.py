"""Check before `caffe train` that a solver's files exist, naming every one
that does not (Caffe would stop at the first, deep in its log)."""
from pathlib import Path

from google.protobuf import text_format


def _read(path, message):
    text_format.Merge(Path(path).read_text(), message)
    return message


def solver_inputs(solver_path, root="."):
    """[(what, path)] a solver needs: its net, the net's data sources and
    roots. Paths are resolved against `root` (the repository root)."""
    from caffe.proto import caffe_pb2
    root = Path(root)
    solver = _read(solver_path, caffe_pb2.SolverParameter())
    net_path = root / solver.net
    needs = [("net", net_path)]
    if solver.snapshot_prefix:
        # Caffe does not create the folder and fails only at the first snapshot.
        needs.append(("snapshot folder", (root / solver.snapshot_prefix).parent))
    if not net_path.is_file():
        return needs
    net = _read(net_path, caffe_pb2.NetParameter())
    for layer in net.layer:
        if layer.type == "VideoData":
            p = layer.video_data_param
            needs.append((f"file list of layer {layer.name!r}", root / p.source))
            what = "LMDB" if p.backend == caffe_pb2.VideoDataParameter.LMDB else "frames folder"
            needs.append((what, root / p.root_folder))
    return needs


def solver_warnings(solver_path):
    """Settings that train differently from the paper, one line each:
    clip_gradients must be 20 x iter_size (dcd.nets.solvers.CLIP_PER_BATCH:
    Caffe clips the gradient summed over iter_size passes)."""
    from caffe.proto import caffe_pb2
    from dcd.nets.solvers import CLIP_PER_BATCH, clip_threshold
    solver = _read(solver_path, caffe_pb2.SolverParameter())
    warnings = []
    want = clip_threshold(solver.iter_size)
    if solver.clip_gradients > 0 and abs(solver.clip_gradients - want) > 1e-3 * want:
        warnings.append(
            f"{solver_path}: clip_gradients {solver.clip_gradients:g} with iter_size "
            f"{solver.iter_size}: Caffe clips the gradient summed over iter_size passes, so the "
            f"paper's {CLIP_PER_BATCH} per batch is clip_gradients {want:g} "
            f"({CLIP_PER_BATCH} x iter_size)")
    return warnings


def check_solver(solver_path, root=".", weights=()):
    """Raise FileNotFoundError listing every missing input (weights included)."""
    solver_path = Path(solver_path)
    if not solver_path.is_file():
        raise FileNotFoundError(f"solver not found: {solver_path}")
    needs = solver_inputs(solver_path, root) + [("weights", Path(w)) for w in weights]
    missing = []
    for what, path in needs:
        line = f"{what}: {path}"
        if not path.exists() and line not in missing:
            missing.append(line)
    if missing:
        raise FileNotFoundError(f"{solver_path} cannot run, missing:\n  " + "\n  ".join(missing))
    from dcd.caffeio.netio import parse_caffemodel
    for w in weights:
        parse_caffemodel(w)  # CaffemodelError: empty or not a caffemodel (Caffe would abort)
    return needs
