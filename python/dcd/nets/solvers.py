"""The paper's solver schedules (Sec. 4.1) as SolverParameter text."""
import math

from caffe.proto import caffe_pb2

EFFECTIVE_BATCH = 256  # clips per update: batch_size x iter_size x GPUs
SPOT_CHECK_CLIPS = 2000  # Kinetics in-training test: a sample of val, not all 19,796


# The demo's small nets on MovingPatterns (our choice, not the paper's): one
# batch per update, a short run on the CPU.
SYNTHETIC_ITERATIONS = 400


def schedule(dataset, cfg):
    """(base_lr, lr_policy fields, max_iter) from Sec. 4.1."""
    if dataset == "synthetic":
        steps = [SYNTHETIC_ITERATIONS * 3 // 4]
        return 0.01, dict(lr_policy="multistep", stepvalue=steps), SYNTHETIC_ITERATIONS
    if dataset == "kinetics":
        return 0.01, dict(lr_policy="step", stepsize=40000), 110000
    if cfg.branches == ("static",):
        return 0.001, dict(lr_policy="step", stepsize=1500), 4500
    # Motion, appearance change and (our choice) the full model.
    return 0.005, dict(lr_policy="multistep", stepvalue=[10000, 16000]), 18000


def solver(dataset, cfg, net_path, split=1, test_batch_size=1, gpus=1):
    """SolverParameter for `cfg`; paths relative to the repository root."""
    from dcd.nets.dcd import DATASETS
    ds = DATASETS[dataset]
    base_lr, policy, max_iter = schedule(dataset, cfg)
    s = caffe_pb2.SolverParameter()
    s.net = net_path
    if ds.val_videos:
        s.test_iter.append(math.ceil(ds.val_videos[split - 1] / test_batch_size))
    else:
        s.test_iter.append(math.ceil(SPOT_CHECK_CLIPS / test_batch_size))
    s.test_interval = {"ucf101": 500, "kinetics": 5000}.get(dataset, max_iter)
    s.test_initialization = False
    s.base_lr = base_lr
    s.lr_policy = policy["lr_policy"]
    s.gamma = 0.1
    if "stepsize" in policy:
        s.stepsize = policy["stepsize"]
    s.stepvalue.extend(policy.get("stepvalue", []))
    s.max_iter = max_iter
    if dataset == "synthetic":
        s.iter_size = 1
    else:
        s.iter_size = EFFECTIVE_BATCH // (cfg.batch_size * gpus)
        assert s.iter_size * cfg.batch_size * gpus == EFFECTIVE_BATCH
    s.momentum = 0.9
    s.weight_decay = 5e-4
    s.clip_gradients = 20
    s.display = 20
    s.average_loss = 20
    s.snapshot = {"ucf101": 500, "kinetics": 5000}.get(dataset, max_iter)
    tag = f"{dataset}_{cfg.name}" + (f"_split{split}" if dataset == "ucf101" else "")
    s.snapshot_prefix = f"snapshots/{tag}"
    s.solver_mode = (caffe_pb2.SolverParameter.CPU if dataset == "synthetic"
                     else caffe_pb2.SolverParameter.GPU)
    if dataset == "synthetic":
        s.random_seed = 1  # the demo's runs repeat exactly (fillers, data order, crops)
    return s
