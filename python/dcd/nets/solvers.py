"""The paper's solver schedules (Sec. 4.1) as SolverParameter text. What
differs by data set (schedule, test and snapshot intervals, solver mode,
seed) is the Dataset's policy in dcd.nets.datasets, where the schedules are."""
import math

from caffe.proto import caffe_pb2

from dcd.nets.datasets import DATASETS

SPOT_CHECK_CLIPS = 2000  # Kinetics in-training test: a sample of val, not all 19,796
# The paper's "gradient clipping of 20" bounds the gradient of one 256-clip
# batch. Caffe's SGDSolver clips the gradient *summed* over iter_size passes
# (ClipGradients runs before Normalize), after NCCL averaged it over GPUs, so
# the solver's threshold is 20 x iter_size.
CLIP_PER_BATCH = 20


def iter_size(ds, cfg, gpus=1):
    """Passes per update so that batch_size x iter_size x GPUs is the
    schedule's effective batch, else the data set's (256 clips); 1 when the
    data set has none (the demo)."""
    if not ds.effective_batch:
        return 1
    batch = ds.schedule(cfg).effective_batch or ds.effective_batch
    size, rest = divmod(batch, cfg.batch_size * gpus)
    if rest or not size:
        raise ValueError(f"net {cfg.name!r}: batch_size {cfg.batch_size} x {gpus} GPU(s) does "
                         f"not divide the batch of {batch} clips")
    return size


def clip_threshold(iter_size_):
    return CLIP_PER_BATCH * iter_size_


def solver(dataset, cfg, net_path, split=1, test_batch_size=1, gpus=1):
    """SolverParameter for `cfg`; paths relative to the repository root.
    `gpus`: for `caffe train --gpu 0,1,...` (iter_size divided among them)."""
    ds = DATASETS[dataset]
    sched = ds.schedule(cfg)
    s = caffe_pb2.SolverParameter()
    s.net = net_path
    if ds.val_videos:
        s.test_iter.append(math.ceil(ds.val_videos[split - 1] / test_batch_size))
    else:
        s.test_iter.append(math.ceil(SPOT_CHECK_CLIPS / test_batch_size))
    s.test_interval = ds.test_interval or sched.max_iter
    s.test_initialization = False
    s.base_lr = sched.base_lr
    s.lr_policy = sched.lr_policy
    s.gamma = 0.1
    if sched.stepsize:
        s.stepsize = sched.stepsize
    s.stepvalue.extend(sched.stepvalue)
    s.max_iter = sched.max_iter
    s.iter_size = iter_size(ds, cfg, gpus)
    s.momentum = 0.9
    s.weight_decay = 5e-4
    s.clip_gradients = clip_threshold(s.iter_size)
    s.display = 20
    s.average_loss = 20
    s.snapshot = ds.snapshot or sched.max_iter
    tag = f"{dataset}_{cfg.name}" + (f"_split{split}" if ds.split_in_tag else "")
    s.snapshot_prefix = f"snapshots/{tag}"
    s.solver_mode = getattr(caffe_pb2.SolverParameter, ds.solver_mode)
    if ds.random_seed is not None:
        s.random_seed = ds.random_seed  # the demo's runs repeat exactly (fillers, data order, crops)
    return s
