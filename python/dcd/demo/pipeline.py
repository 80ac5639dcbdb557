"""`make demo`: the disentangling shown end to end on generated video.

MovingPatterns clips (python/dcd/data/synthetic.py) go through the real data
tools (frames, UCF101-format lists, LMDB), the small DCD nets under
models/synthetic/ are trained with `caffe train`, scored with the TSN
protocol of tools/eval_net.py and fused as tools/eval_scores.py does, and
the demo prints a Table-6-style comparison with its expectations marked
held or not held. Every stage keeps its results, so a rerun reuses them.
"""
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from dcd.util.fileio import write_atomic
from dcd.util.paths import REPO_ROOT

NETS = ("static", "motion", "motion_frozen", "appchange", "appchange_rgbdiff", "full", "flow")
BRANCH_LABELS = {"static": "static appearance", "motion": "apparent motion",
                 "motion_frozen": "apparent motion, conv1 frozen (static net's)",
                 "appchange": "appearance change (warped diff.)",
                 "appchange_rgbdiff": "appearance change (RGB diff.)", "full": "joint model",
                 "flow": "optical flow (Farneback)"}
# The demo's optical flow: Farneback, 1 ms per 64x64 pair here against 66 ms
# for TV-L1's light preset (docs/DATA.md), so the flow rows fit the budget.
FLOW_METHOD = "farneback"
# Nets that start from another net's weights (caffe train --weights): the
# frozen-conv1 motion net takes the static net's conv1 (+ BN, Scale). The
# nets with a conv1 on RGB frames start it from an oriented filter bank, the
# demo's stand-in for the paper's ImageNet initialisation (initial_weights).
INIT_FROM = {"motion_frozen": "static"}
LONGEST_FIRST = ("static", "full")  # about 125 CPU seconds each; the others 15-65


@dataclass
class DemoConfig:
    root: Path = None               # holds data/synthetic/; caffe runs here (None: by seed)
    per_class: tuple = (48, 8, 16)  # train, val, test clips per class
    iterations: int = None          # None: the committed solvers' max_iter; else
                                    # that many at the default rate (_solver_for)
    num_snippets: int = 8           # TSN test protocol, centre crop, on 16-frame clips
    seed: int = 0
    progress: bool = True
    nets: tuple = NETS
    jobs: int = 2                   # caffe runs (and scoring workers) at once

    def __post_init__(self):
        # The stages reuse what a directory holds, so seeds must not share
        # one; the committed nets read data/synthetic/ under the directory
        # caffe runs in (root), so another seed gets a root of its own.
        if self.root is None:
            self.root = REPO_ROOT if self.seed == 0 else \
                REPO_ROOT / "data" / f"demo_seed{self.seed}"

    @property
    def data(self):
        return Path(self.root) / "data" / "synthetic"


@dataclass
class Row:
    label: str
    files: tuple
    accuracy: float = None


@dataclass
class Expectation:
    """One expectation: `value` compared with `limit` (op ">=" or "<="); a
    compound one also needs `also` (the other checks it repeats) to hold."""
    text: str
    held: bool
    name: str = ""
    value: float = None
    op: str = ">="
    limit: float = None


def _check(name, value, op, limit):
    if op not in (">=", "<="):
        raise ValueError(f"expectation {name!r}: op must be '>=' or '<=', got {op!r}")
    return value >= limit if op == ">=" else value <= limit


@dataclass
class DemoResult:
    rows: list = field(default_factory=list)
    factors: dict = field(default_factory=dict)   # net -> {factor: accuracy}
    displacement: dict = field(default_factory=dict)  # net -> end-point errors
    expectations: list = field(default_factory=list)
    figure: Path = None
    report: Path = None
    timings: dict = field(default_factory=dict)   # stage -> (wall, CPU seconds)

    def accuracy(self, label):
        return next(r.accuracy for r in self.rows if r.label == label)


def _say(cfg, message):
    if cfg.progress:
        print(message, flush=True)


# ------------------------------------------------------------------- data

def list_path(cfg, part, modality="rgb"):
    from dcd.data import filelists
    return filelists.list_path(cfg.data, "synthetic", part, 1, modality)


def prepare_data(cfg):
    """Videos -> frames -> lists (train, val, test) -> LMDB, reusing what exists."""
    from dcd.data import filelists
    from dcd.data.filelists import build_file_lists, read_file_list, write_file_list
    from dcd.data.frames import extract_all, find_videos
    from dcd.data.lmdb_store import build_lmdb
    from dcd.data.synthetic import ClipSpec, write_dataset

    spec = ClipSpec()
    videos, splits = write_dataset(cfg.data / "source", cfg.per_class, cfg.seed, spec,
                                   progress=cfg.progress)
    frames = cfg.data / "frames"
    summary = extract_all(find_videos(videos), frames, workers=cfg.jobs, progress=cfg.progress,
                          width=spec.size, height=spec.size)
    if summary.failed:
        raise RuntimeError(f"frame extraction failed for {len(summary.failed)} videos: "
                           f"{summary.failed[:3]}")
    # UCF101 split 1 is train/test, split 2 train/val (dcd.data.synthetic.write_dataset).
    ucf = cfg.data / "lists_ucf101_format"
    build_file_lists("ucf101", frames, splits, ucf, splits=(1, 2))
    parts = {"train": filelists.list_path(ucf, "ucf101", "train", 1),
             "val": filelists.list_path(ucf, "ucf101", "val", 2),
             "test": filelists.list_path(ucf, "ucf101", "val", 1)}
    entries = []
    for part, source in parts.items():
        rows = read_file_list(source)
        write_file_list(list_path(cfg, part), rows)
        entries += rows
    build_lmdb(frames, entries, cfg.data / "frames_lmdb", progress=cfg.progress)
    if "flow" in cfg.nets:
        prepare_flow(cfg, frames, splits, parts)
    return frames


def prepare_flow(cfg, frames, splits, parts):
    """Optical flow of every clip (FLOW_METHOD, on the stored frames, as
    tools/extract_flow.py --from-frames), flow lists (pair counts) and the
    flow in the frames' LMDB, reusing what exists."""
    from dcd.data.filelists import build_file_lists, read_file_list, write_file_list
    from dcd.data.flow import extract_all_flow, find_frame_folders, flow_method
    from dcd.data.lmdb_store import build_lmdb

    flow = cfg.data / "flow"
    summary = extract_all_flow(find_frame_folders(frames), flow, from_frames=True, workers=cfg.jobs,
                               progress=cfg.progress, method=flow_method(FLOW_METHOD))
    if summary.failed:
        raise RuntimeError(f"flow extraction failed for {len(summary.failed)} videos: "
                           f"{summary.failed[:3]}")
    ucf = cfg.data / "lists_ucf101_format"
    build_file_lists("ucf101", flow, splits, ucf, splits=(1, 2), modality="flow")
    entries = []
    for part, source in parts.items():
        rows = read_file_list(source.with_name(source.name.replace("ucf101_", "ucf101_flow_")))
        write_file_list(list_path(cfg, part, "flow"), rows)
        entries += rows
    build_lmdb(flow, entries, cfg.data / "frames_lmdb", progress=cfg.progress, modality="flow")


# ---------------------------------------------------------------- training

def initial_weights(cfg, net):
    """data/synthetic/init/<net>.caffemodel: the net's conv1 on RGB frames
    from dcd.nets.init_weights.filter_bank_init, or None for a net without
    one (its conv1 reads differences or flow). Written on every run (it is
    cheap), so it never lags behind the code; training is keyed on its bytes."""
    from dcd.nets.init_weights import filter_bank_init
    out = cfg.data / "init" / f"{net}.caffemodel"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    return out if filter_bank_init("synthetic", net, out).copied else None


def _solver_for(cfg, net):
    """The committed solver with absolute net path and snapshot prefix (and
    a shorter schedule when cfg.iterations is set), as text."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    models = REPO_ROOT / "models" / "synthetic"
    s = caffe_pb2.SolverParameter()
    text_format.Merge((models / f"{net}_solver.prototxt").read_text(), s)
    s.net = str(models / f"{net}_train_val.prototxt")
    if cfg.iterations:
        # A short run (tests, trials): cfg.iterations at the data set's
        # default rate, and as far (rate x iterations) for a net with a
        # lower rate, so the static net runs twice as many at its half
        # rate. At 75 iterations of its own rate it learned nothing (tint
        # 50%); 75 at the default rate gave 71%, 150 at its rate 90%.
        from dcd.nets.datasets import DATASETS
        default_lr = DATASETS["synthetic"].schedules["default"].base_lr
        iterations = max(1, round(cfg.iterations * default_lr / s.base_lr))
        s.max_iter = iterations
        del s.stepvalue[:]
        s.stepvalue.append(iterations * 3 // 4)
        s.test_interval = s.snapshot = iterations
    s.snapshot_prefix = str(cfg.data / "snapshots" / f"synthetic_{net}")
    s.random_seed = s.random_seed + cfg.seed
    return s


def _cpu_seconds():
    """CPU time (user + sys) of this process and its finished children."""
    import resource
    return sum(getattr(resource.getrusage(who), f) for who in
               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))


def _caffe_env(cfg):
    """Threads for a caffe run. With several runs at once each gets one
    thread (runs, not layers, share the cores). OpenMP threads sleep when
    idle instead of spinning: spinning OpenMP threads (the DCD layers) and
    OpenBLAS threads (convolutions) took the cores from each other, and the
    cost-volume layer ran 10-30x slower (docs/ASSUMPTIONS.md, the demo)."""
    env = {"OMP_WAIT_POLICY": "PASSIVE"}
    if cfg.jobs > 1:
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


def train_all(cfg, nets, on_done=None):
    """train() for each net, cfg.jobs at a time, a net that starts from
    another's weights (INIT_FROM) after that one. Returns (weights, info)
    dicts; on_done(net, info) is called as each finishes."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    for net in nets:
        if INIT_FROM.get(net) and INIT_FROM[net] not in nets:
            raise ValueError(f"net {net} starts from {INIT_FROM[net]}'s weights: "
                             f"train {INIT_FROM[net]} too")
    weights, info, running = {}, {}, {}
    # The longest runs first, so that the short ones fill the other core.
    waiting = sorted(nets, key=lambda n: n not in LONGEST_FIRST)
    with ThreadPoolExecutor(max_workers=max(cfg.jobs, 1)) as pool:
        while waiting or running:
            for net in [n for n in waiting if INIT_FROM.get(n) in (None, *weights)]:
                waiting.remove(net)
                init = weights[INIT_FROM[net]] if net in INIT_FROM else initial_weights(cfg, net)
                running[pool.submit(train, cfg, net, init)] = net
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                net = running.pop(future)
                weights[net], info[net] = future.result()
                if on_done:
                    on_done(net, info[net])
    return {n: weights[n] for n in nets}, {n: info[n] for n in nets}


def train(cfg, net, init=None):
    """caffe train for one net (from the weights file `init` when given);
    returns (weights path, info: digest, seconds, cpu_seconds, losses).
    Skipped when weights from the same solver, net text and init exist."""
    from dcd.caffeio.caffe_log import caffe_train, parse_test_outputs, parse_train_losses

    solver = _solver_for(cfg, net)
    text = str(solver) + Path(solver.net).read_text()
    if init is not None:
        text += hashlib.sha1(Path(init).read_bytes()).hexdigest()
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    runs = cfg.data / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (cfg.data / "snapshots").mkdir(parents=True, exist_ok=True)
    weights = Path(f"{solver.snapshot_prefix}_iter_{solver.max_iter}.caffemodel")
    stamp = runs / f"{net}.done"
    if weights.exists() and stamp.exists() and json.loads(stamp.read_text())["digest"] == digest:
        return weights, json.loads(stamp.read_text())
    solver_path = runs / f"{net}_solver.prototxt"
    solver_path.write_text(str(solver))
    start, usage = time.time(), {}
    extra = [f"--weights={init}"] if init is not None else []
    log = caffe_train(solver_path, runs / f"{net}.log", extra, cwd=cfg.root, env=_caffe_env(cfg),
                      usage=usage)
    losses = parse_train_losses(log)
    tests = parse_test_outputs(log)
    info = {"digest": digest, "seconds": round(time.time() - start, 1),
            "cpu_seconds": round(usage["cpu_seconds"], 1),
            "first_loss": losses[0][1] if losses else None,
            "last_loss": losses[-1][1] if losses else None,
            "val": tests[max(tests)] if tests else {}}
    stamp.write_text(json.dumps(info))
    return weights, info


# ----------------------------------------------------------------- scoring

def score(cfg, net, weights):
    """TSN test protocol (eval_net) on the test list -> a score file."""
    from dcd.nets.catalogue import get_config
    from dcd.scoring.evaluate import EvalConfig, run_eval

    out = cfg.data / "scores" / f"{net}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = out.with_suffix(".weights")
    if out.exists() and stamp.exists() and stamp.read_text() == str(weights.stat().st_mtime_ns):
        return out
    net_cfg = get_config("synthetic", net)
    ecfg = EvalConfig(net=str(REPO_ROOT / "models" / "synthetic" / f"{net}_deploy.prototxt"),
                      weights=str(weights), root=str(cfg.data / "frames_lmdb"),
                      num_snippets=cfg.num_snippets, new_length=net_cfg.frames, ten_crop=False,
                      frame_size=(64, 64))
    modality = "flow" if net_cfg.modality == "FLOW" else "rgb"
    run_eval(list_path(cfg, "test", modality), ecfg, out, workers=cfg.jobs, restart=True,
             progress=cfg.progress, log=lambda m: _say(cfg, m))
    stamp.write_text(str(weights.stat().st_mtime_ns))
    return out


TABLE = (  # label, score files fused with equal weights
    ("static appearance", ("static",)),
    ("apparent motion", ("motion",)),
    ("appearance change (warped diff.)", ("appchange",)),
    ("appearance change (RGB diff.)", ("appchange_rgbdiff",)),
    ("static + motion", ("static", "motion")),
    ("static + appearance change", ("static", "appchange")),
    ("motion + appearance change", ("motion", "appchange")),
    ("static + motion + RGB diff.", ("static", "motion", "appchange_rgbdiff")),
    ("all three fused", ("static", "motion", "appchange")),
    ("joint model (one net)", ("full",)),
    ("optical flow", ("flow",)),
    ("static + optical flow", ("static", "flow")),
    ("static + optical flow + RGB diff.", ("static", "flow", "appchange_rgbdiff")),
    ("static + optical flow + warped diff.", ("static", "flow", "appchange")),
)
CHANCE = 1 / 8


def fused_rows(scores):
    from dcd.scoring.metrics import evaluate
    rows = []
    for label, nets in TABLE:
        if not all(n in scores for n in nets):
            continue
        summary = evaluate([scores[n] for n in nets]).summary()
        rows.append(Row(label, nets, summary["mean_class_accuracy"]))
    return rows


def factor_accuracy(score_file):
    """How well a net's predictions get each factor (background, direction,
    flicker) right, whatever it does with the others: which components of
    dynamics the net actually reads."""
    from dcd.scoring.metrics import evaluate
    from dcd.data.synthetic import factors
    e = evaluate([score_file])
    got = [factors(int(p)) for p in e.predictions]
    want = [factors(int(label)) for label in e.labels]
    names = ("background", "direction", "flicker")
    return {name: sum(g[i] == w[i] for g, w in zip(got, want)) / len(want)
            for i, name in enumerate(names)}


def expectations(result):
    """What the demo is expected to show, checked as it comes out (never tuned): each
    branch captures its component (per-factor accuracies, chance 50%), the
    branches are complementary (class accuracies), and the joint net's
    displacement map is a motion estimate (against the generator's truth).
    Each carries its value and limit, so that several seeds can be compared
    (worst_and_mean)."""
    acc, f = result.accuracy, result.factors
    singles = ["static appearance", "apparent motion", "appearance change (warped diff.)"]
    fused = acc("all three fused")
    joint_acc = acc("joint model (one net)")
    direction = {n: f[n]["direction"] for n in ("motion", "static", "appchange",
                                                 "appchange_rgbdiff")}
    best_single = max(acc(s) for s in singles)
    checks = [  # (name, text, value, op, limit, extra condition)
        ("direction: apparent motion", f"direction: apparent motion >= 90% "
         f"({direction['motion']:.0%})", direction["motion"], ">=", 0.90, True),
        ("direction: static appearance", f"direction: static appearance <= 65% "
         f"({direction['static']:.0%})", direction["static"], "<=", 0.65, True),
        ("direction: warped difference", f"direction: warped difference <= 65% "
         f"({direction['appchange']:.0%}; apparent motion is reached only through the "
         f"displacement map)", direction["appchange"], "<=", 0.65, True),
        ("background tint: static appearance", f"background tint: static appearance >= 90% "
         f"({f['static']['background']:.0%})", f["static"]["background"], ">=", 0.90, True),
        ("flicker: warped difference", f"flicker: warped difference >= 90% "
         f"({f['appchange']['flicker']:.0%})", f["appchange"]["flicker"], ">=", 0.90, True),
        ("direction: stacked RGB difference", f"direction: stacked RGB difference >= 75% "
         f"({direction['appchange_rgbdiff']:.0%}) while the warped difference stays <= 65% "
         f"({direction['appchange']:.0%})", direction["appchange_rgbdiff"], ">=", 0.75,
         _check("", direction["appchange"], "<=", 0.65)),
        ("all three fused", f"all three fused >= 90% ({fused:.1%})", fused, ">=", 0.90, True),
        ("joint model", f"joint model >= 90% ({joint_acc:.1%})", joint_acc, ">=", 0.90, True),
        ("all three fused - best single branch", "all three fused >= every single branch ("
         + f"{fused:.1%} vs " + ", ".join(f"{acc(s):.1%}" for s in singles) + ")",
         fused - best_single, ">=", 0.0, True),
    ]
    joint = result.displacement.get("full")
    if joint:
        checks += [
            ("joint displacement map: object end-point error (px)",
             f"joint displacement map: object end-point error <= 0.5 px "
             f"({joint['object_epe']:.2f} px)", joint["object_epe"], "<=", 0.5, True),
            ("joint displacement map: background mean |V| (px)",
             f"joint displacement map: background mean |V| <= 0.25 px "
             f"({joint['background_v']:.2f} px)", joint["background_v"], "<=", 0.25, True),
        ]
    return [Expectation(text, bool(_check(name, value, op, limit) and extra), name, value, op,
                        limit)
            for name, text, value, op, limit, extra in checks]


def worst_and_mean(runs):
    """Across runs (lists of Expectation, one list per seed, same order):
    [(name, op, limit, worst value, mean value, runs held, runs)]; the worst
    is the minimum for a '>=' limit, the maximum for '<='."""
    if not runs:
        return []
    names = [e.name for e in runs[0]]
    for i, run_ in enumerate(runs[1:], 1):
        if [e.name for e in run_] != names:
            raise ValueError(f"run {i} checks other expectations than run 0: "
                             f"{[e.name for e in run_]} vs {names}")
    rows = []
    for k, first in enumerate(runs[0]):
        values = [run_[k].value for run_ in runs]
        worst = min(values) if first.op == ">=" else max(values)
        rows.append((first.name, first.op, first.limit, worst, sum(values) / len(values),
                     sum(run_[k].held for run_ in runs), len(runs)))
    return rows


def format_seed_table(seeds, runs):
    """Markdown: each expectation's limit, worst and mean across the seeds,
    the seeds where it held, and each seed's value."""
    lines = ["| expectation | limit | worst | mean | held | " + " | ".join(
        f"seed {s}" for s in seeds) + " |", "| --- | ---: | ---: | ---: | ---: |"
        + " ---: |" * len(seeds)]
    fmt = lambda name, v: f"{v:.2f}" if "px" in name else f"{v:.1%}"  # noqa: E731
    for k, (name, op, limit, worst, mean, held, n) in enumerate(worst_and_mean(runs)):
        lines.append(f"| {name} | {op} {fmt(name, limit)} | {fmt(name, worst)} | "
                     f"{fmt(name, mean)} | {held}/{n} | "
                     + " | ".join(fmt(name, run_[k].value) for run_ in runs) + " |")
    return "\n".join(lines)


def format_table(result, train_info):
    lines = ["| components | mean class accuracy |", "| --- | ---: |",
             f"| chance (8 classes) | {CHANCE:.1%} |"]
    lines += [f"| {r.label} | {r.accuracy:.1%} |" for r in result.rows]
    lines += ["", "Which factor each net gets right (chance 50%):", "",
              "| net | background | direction | flicker |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {BRANCH_LABELS[net]} | " + " | ".join(f"{v:.0%}" for v in acc.values()) + " |"
              for net, acc in result.factors.items()]
    lines += ["", "| net | training wall / CPU user+sys | loss first -> last | val accuracy |",
              "| --- | ---: | ---: | ---: |"]
    for net, info in train_info.items():
        val = info.get("val", {}).get("accuracy")
        cpu = info.get("cpu_seconds")
        lines.append(f"| {net} | {info['seconds']:.0f} s / {'-' if cpu is None else f'{cpu:.0f}'} s"
                     f" | {info['first_loss']:.3f} -> "
                     f"{info['last_loss']:.3f} | {'' if val is None else f'{val:.1%}'} |")
    return "\n".join(lines)


# ------------------------------------------------- displacement map vs truth

def displacement_errors(deploy, weights, clips=48, seed=0, steps=(3, 7, 11),
                        layer="motion/displacement"):
    """A deploy net's displacement map against MovingPatterns' ground truth:
    generated clips (every class in turn, seeds apart from the data set's),
    centre crops at the net's input size, the map of each snippet's first
    pair. Returns object end-point error, mean displacement along the true
    direction on the object, and mean |V| on the static background (pixels)."""
    import numpy as np
    from dcd.demo.studies import moving_pattern_clips, motion_errors, upsample_displacement
    from dcd.data.synthetic import ClipSpec
    from dcd.demo.figure5 import load_deploy, net_displacement
    net = load_deploy(deploy, weights)
    rows, _, crop, _ = net.blobs[net.inputs[0]].data.shape
    off = (ClipSpec().size - crop) // 2
    inner = (slice(off, off + crop), slice(off, off + crop))
    v, v_true, obj, bg = [], [], [], []
    for clip, t, vt, o, b in moving_pattern_clips(clips, seed, steps, stream=11):
        v.append(upsample_displacement(
            net_displacement(net, clip[t:t + rows, inner[0], inner[1]], layer)[:1],
            (crop, crop))[0])
        v_true.append(vt[:, inner[0], inner[1]]), obj.append(o[inner]), bg.append(b[inner])
    return motion_errors(*map(np.stack, (v, v_true, obj, bg)))


def displacement_table(cfg, weights, nets=("motion", "motion_frozen", "full")):
    """displacement_errors for the nets that have a displacement map, kept in
    data/synthetic/displacement.json per weights file (reused on a rerun)."""
    out = cfg.data / "displacement.json"
    known = json.loads(out.read_text()) if out.exists() else {}
    table = {}
    for net in nets:
        if net not in weights:
            continue
        key = f"{weights[net]}@{weights[net].stat().st_mtime_ns}"
        if known.get(net, {}).get("weights") != key:
            deploy = REPO_ROOT / "models" / "synthetic" / f"{net}_deploy.prototxt"
            known[net] = dict(displacement_errors(deploy, weights[net], seed=cfg.seed),
                              weights=key)
        table[net] = {k: v for k, v in known[net].items() if k != "weights"}
    write_atomic(out, json.dumps(known, indent=1))
    return table


def format_displacement_table(table):
    lines = ["| net | object end-point error (px) | background mean abs V (px) |",
             "| --- | ---: | ---: |"]
    lines += [f"| {BRANCH_LABELS[net]} | {e['object_epe']:.2f} | {e['background_v']:.2f} |"
              for net, e in table.items()]
    return "\n".join(lines)


def figure(cfg, weights, net="full"):
    """Figure 5 for one test clip that moves and flickers, with the trained
    joint net's displacement map."""
    import cv2
    from dcd.data.filelists import read_file_list
    from dcd.data.frames import FRAME_PATTERN
    from dcd.demo.figure5 import displacement_from_net, figure5

    entry = next(e for e in read_file_list(list_path(cfg, "test")) if "Flicker" in e.video_id)
    frames = cfg.data / "frames" / entry.video_id
    a, b = (cv2.imread(str(frames / FRAME_PATTERN.format(i))) for i in (6, 7))
    deploy = REPO_ROOT / "models" / "synthetic" / f"{net}_deploy.prototxt"
    disp = displacement_from_net(a, b, deploy, weights, "motion/displacement")
    out = cfg.data / "figure5.png"
    figure5(a, b, out, disp=disp, disp_label=f"displacement map ({BRANCH_LABELS[net]})")
    return out


def training_curves(cfg):
    """The nets' loss and accuracy curves (tools/plot_log.py's plot) as
    report lines; none when no training log parses."""
    from dcd.caffeio.caffe_log import plot_runs, read_logs
    logs = sorted((cfg.data / "runs").glob("*.log"))
    try:
        runs = read_logs(logs) if logs else None
    except ValueError as exc:           # e.g. a run cut short before its first iteration
        return ["", f"(no training curves: {exc})"]
    if not runs:
        return []
    plot_runs(runs, cfg.data / "training_curves.png", [p.stem for p in logs])
    return ["", "## Training curves", "",
            "From `caffe train`'s logs in `runs/` (`tools/plot_log.py runs/*.log` also "
            "writes them as CSV):", "", "![training curves](training_curves.png)"]


def report(cfg, scores, table_md, checks):
    from dcd.paper.report import build_report
    from dcd.scoring.metrics import evaluate
    mapping = {"T6/r1": ("static", "flow"), "T6/r2": ("static", "flow", "appchange_rgbdiff"),
               "T6/r3": ("static", "flow", "appchange"),
               "T6/r4": ("static", "motion"), "T6/r5": ("static", "motion", "appchange_rgbdiff"),
               "T6/r6": ("static", "motion", "appchange")}
    summaries = [(key, evaluate([scores[n] for n in nets]).summary(), "demo: " + "+".join(nets))
                 for key, nets in mapping.items() if all(n in scores for n in nets)]
    text = ["# MovingPatterns demo", "",
            "Generated clips, 8 classes = background x direction x flicker "
            "(python/dcd/data/synthetic.py); small DCD nets (models/synthetic/).", "",
            table_md, "", "Expectations:", ""]
    text += [f"- [{'held' if c.held else 'NOT HELD'}] {c.text}" for c in checks]
    text += ["", build_report(summaries, title="Paper tables with the demo's fusions in Table 6 "
                              "(synthetic data: compare the pattern, not the values)")]
    text += training_curves(cfg)
    out = cfg.data / "report.md"
    out.write_text("\n".join(text))
    return out


class _Stage:
    """Wall and CPU (user + sys, this process and its children) seconds of a stage."""

    def __init__(self, timings, name):
        self.timings, self.name = timings, name

    def __enter__(self):
        self.wall, self.cpu = time.time(), _cpu_seconds()

    def __exit__(self, *exc):
        self.timings[self.name] = (time.time() - self.wall, _cpu_seconds() - self.cpu)


def format_timings(timings):
    lines = ["| stage | wall (s) | CPU user+sys (s) |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {wall:.0f} | {cpu:.0f} |" for name, (wall, cpu) in timings.items()]
    wall, cpu = (sum(t[i] for t in timings.values()) for i in (0, 1))
    return "\n".join(lines + [f"| total | {wall:.0f} | {cpu:.0f} |"])


def run(cfg):
    """All stages; returns a DemoResult (figure and report when all nets ran)."""
    start = time.time()
    timings = {}
    _say(cfg, f"[1/6] MovingPatterns data in {cfg.data}")
    with _Stage(timings, "data"):
        prepare_data(cfg)
    scores = {}
    _say(cfg, f"[2/6] training {', '.join(cfg.nets)} with caffe train, {cfg.jobs} at a time")

    def trained(net, info):
        _say(cfg, f"      {net}: {info['seconds']:.0f} s ({info.get('cpu_seconds', 0):.0f} s CPU), "
                  f"loss {info['first_loss']:.3f} -> {info['last_loss']:.3f}")
    with _Stage(timings, "training"):
        weights, train_info = train_all(cfg, cfg.nets, trained)
    with _Stage(timings, "scoring"):
        for net in cfg.nets:
            _say(cfg, f"[3/6] scoring {net} on the test split (TSN protocol)")
            scores[net] = score(cfg, net, weights[net])
    result = DemoResult(rows=fused_rows(scores),
                        factors={net: factor_accuracy(scores[net]) for net in cfg.nets})
    _say(cfg, "[4/6] displacement maps against the generator's ground truth")
    with _Stage(timings, "displacement maps"):
        result.displacement = displacement_table(cfg, weights)
    table_md = format_table(result, train_info)
    if result.displacement:
        table_md += "\n\nDisplacement maps on generated test clips (48 clips x 3 pairs, " \
                    "speed 2 px/frame):\n\n" + format_displacement_table(result.displacement)
    if set(NETS) <= set(cfg.nets):
        result.expectations = expectations(result)
        _say(cfg, "[5/6] Figure 5 for a test clip")
        with _Stage(timings, "figure"):
            result.figure = figure(cfg, weights["full"])
    timings_md = format_timings(timings)
    if result.expectations:
        _say(cfg, "[6/6] report")
        result.report = report(cfg, scores, table_md + "\n\nThis run's stages (a stage "
                               "reused from an earlier run takes ~0 s):\n\n" + timings_md,
                               result.expectations)
    _say(cfg, "\n" + table_md + "\n\n" + timings_md + "\n")
    for c in result.expectations:
        _say(cfg, f"[{'held' if c.held else 'NOT HELD'}] {c.text}")
    _say(cfg, f"demo finished in {time.time() - start:.0f} s")
    result.timings = timings
    return result
