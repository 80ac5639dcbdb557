"""Run Caffe's command-line tool and read what it logs."""
import os
import re
import subprocess

from dcd.util.paths import caffe_binary

# "Iteration 20 (...), loss = 0.693" (Caffe >= 1.0 adds the timing in brackets)
# glibc prints a negative NaN as "-nan": the sign goes with nan/inf, not the number.
_TRAIN_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+]?(?:nan|inf)|[-+0-9.eE]+)")
# "    Test net output #0: accuracy = 0.95"
_TEST_OUTPUT = re.compile(r"Iteration (\d+), Testing net|Test net output #\d+: (\S+) = ([-+]?(?:nan|inf)|[-+0-9.eE]+)")

# SGDSolver::ClipGradients: "Gradient clipping: scaling down gradients (L2 norm 45.1 > 20) by scale factor 0.44"
_CLIP = re.compile(r"Gradient clipping: scaling down gradients \(L2 norm ([-+0-9.eE]+) > "
                   r"([-+0-9.eE]+)\) by scale factor ([-+0-9.eE]+)")


# glog's line prefix "I1125 14:00:00.123456 ..." (month, day, time; no year).
_STAMP = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d(?:\.\d+)?) ")
_NUM = r"([-+]?(?:nan|inf)|[-+0-9.eE]+)"
# SGDSolver's "Iteration 20, lr = 0.001" (every display interval).
_LR = re.compile(r"Iteration (\d+), lr = " + _NUM)
_TRAIN_OUTPUT = re.compile(r"Train net output #\d+: (\S+) = " + _NUM)
_TESTING = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
_TEST_VALUE = re.compile(r"Test net output #\d+: (\S+) = " + _NUM)


def _seconds(m):
    """Seconds since 2000-01-01 (a leap year, so 29 February parses); glog
    prints no year, and parse_log adds one when the date goes backwards."""
    from datetime import datetime
    month, day, hh, mm = (int(g) for g in m.groups()[:4])
    return (datetime(2000, month, day, hh, mm) - datetime(2000, 1, 1)).total_seconds() \
        + float(m.group(5))


def parse_log(log_text):
    """One pass over a `caffe train` log -> a list of rows, one per iteration
    that logged anything, in iteration order: {"iteration", "seconds" (since
    the log's first timestamped line), "loss", "lr", "train/<output>",
    "test/<output>" (test net #k > 0: "test<k>/<output>")}; a field a row did
    not log is absent. Lines without glog's prefix (GLOG_log_prefix=0) still
    parse, without seconds."""
    rows, t0, last_t = {}, None, None
    train_iter = test_iter = None
    test_prefix = "test"
    for line in log_text.splitlines():
        stamp = _STAMP.match(line)
        t = None
        if stamp:
            t = _seconds(stamp)
            t0 = t if t0 is None else t0
            if last_t is not None and t < last_t:       # a year's turn
                t0 -= 366 * 86400
            last_t = t

        def row(i):
            r = rows.setdefault(i, {"iteration": i})
            if t is not None:
                r.setdefault("seconds", round(t - t0, 6))
            return r
        if (m := _TRAIN_LOSS.search(line)):
            train_iter, test_iter = int(m.group(1)), None
            row(train_iter)["loss"] = float(m.group(2))
        elif (m := _LR.search(line)):
            row(int(m.group(1)))["lr"] = float(m.group(2))
        elif (m := _TRAIN_OUTPUT.search(line)) and train_iter is not None:
            row(train_iter)[f"train/{m.group(1)}"] = float(m.group(2))
        elif (m := _TESTING.search(line)):
            test_iter = int(m.group(1))
            test_prefix = "test" if m.group(2) == "0" else f"test{m.group(2)}"
            row(test_iter)
        elif (m := _TEST_VALUE.search(line)) and test_iter is not None:
            row(test_iter)[f"{test_prefix}/{m.group(1)}"] = float(m.group(2))
    return [rows[i] for i in sorted(rows)]


def parse_clipping(log_text):
    """[(L2 norm, threshold, scale factor)], one per update that Caffe clipped."""
    return [tuple(float(g) for g in m.groups()) for m in _CLIP.finditer(log_text)]


def parse_train_losses(log_text):
    """[(iteration, loss)] from a `caffe train` log, in iteration order."""
    return [(r["iteration"], r["loss"]) for r in parse_log(log_text) if "loss" in r]


# Solver::Step's timing: "Iteration 20 (1.9 iter/s, 10.5s/20 iters), loss = ..."
_SPEED = re.compile(r"Iteration (\d+) \(([-+0-9.eE]+) iter/s, ([-+0-9.eE]+)s/(\d+) iters\)")


def parse_iteration_speed(log_text):
    """[(iteration, seconds per iteration)] from the timing that `caffe train`
    prints with each displayed loss (each value covers the iterations since
    the previous display; the first one includes the start-up)."""
    out = []
    for m in _SPEED.finditer(log_text):
        seconds, iters = float(m.group(3)), int(m.group(4))
        if iters > 0:
            out.append((int(m.group(1)), seconds / iters))
    return out


def parse_test_outputs(log_text):
    """{iteration: {output name: value}} from the test phases (test net #0)."""
    out = {}
    for r in parse_log(log_text):
        values = {k[5:]: v for k, v in r.items() if k.startswith("test/")}
        if values:
            out[r["iteration"]] = values
    return out


def read_logs(paths):
    """{path: rows} for Caffe training logs; a log with no iteration in it is
    refused naming the file (nothing is written before every log parsed)."""
    runs = {}
    for path in paths:
        try:
            text = open(path, errors="replace").read()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
        rows = parse_log(text)
        if not rows:
            raise ValueError(f"{path}: no training iterations found (not a `caffe train` log?)")
        runs[str(path)] = rows
    return runs


def write_csv(rows, path):
    """One row per iteration; columns iteration, seconds, lr, loss, then the
    train/ and test/ outputs in the order first seen; empty where not logged."""
    import csv
    cols = ["iteration", "seconds", "lr", "loss"]
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols, restval="")
        w.writeheader()
        w.writerows(rows)


def plot_runs(runs, path, labels=None):
    """PNG: training loss (and test losses, dashed) and test accuracies
    against iteration, every run on the same two panels."""
    from dcd.util.plots import pyplot, quiet_matplotlib

    @quiet_matplotlib
    def draw():
        plt = pyplot()
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        any_acc = False
        for n, (name, rows) in enumerate(runs.items()):
            label = labels[n] if labels else name
            color = colors[n % len(colors)]
            pts = [(r["iteration"], r["loss"]) for r in rows if "loss" in r]
            if pts:
                ax_loss.plot(*zip(*pts), color=color, label=f"{label} train")
            keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith("test")]
            for k in keys:
                pts = [(r["iteration"], r[k]) for r in rows if k in r]
                if "loss" in k:
                    ax_loss.plot(*zip(*pts), "--o", ms=3, color=color, label=f"{label} {k}")
                elif "acc" in k:
                    any_acc = True
                    ax_acc.plot(*zip(*pts), "-o", ms=3, color=color, label=f"{label} {k}")
        ax_loss.set(xlabel="iteration", ylabel="loss", title="loss")
        ax_acc.set(xlabel="iteration", ylabel="accuracy", title="test accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        if not any_acc:
            ax_acc.text(0.5, 0.5, "no test accuracy in the log(s)", ha="center",
                        transform=ax_acc.transAxes)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    draw()


def caffe_train(solver, log_path, extra_args=(), cwd=None, env=None, usage=None):
    """Run `caffe train --solver=<solver>`, logging to log_path; returns the log text.

    `env`: extra environment variables. `usage`, a dict, receives the run's
    CPU seconds (user + sys) as "cpu_seconds". Raises RuntimeError with the
    log's tail when Caffe fails.
    """
    cmd = [str(caffe_binary()), "train", f"--solver={solver}", *extra_args]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env={**_logging_env(), **(env or {})})
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if usage is not None:
        usage["cpu_seconds"] = rusage.ru_utime + rusage.ru_stime
    text = open(log_path).read()
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    return text


def _logging_env():
    env = dict(os.environ)
    env.setdefault("GLOG_logtostderr", "1")
    # The log is parsed for losses: INFO lines must be there even when the
    # calling process silenced Caffe for itself.
    env["GLOG_minloglevel"] = "0"
    return env
