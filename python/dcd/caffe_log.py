"""Run Caffe's command-line tool and read what it logs."""
import os
import re
import subprocess

from dcd.paths import caffe_binary

# "Iteration 20 (...), loss = 0.693" (Caffe >= 1.0 adds the timing in brackets)
# glibc prints a negative NaN as "-nan": the sign goes with nan/inf, not the number.
_TRAIN_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+]?(?:nan|inf)|[-+0-9.eE]+)")
# "    Test net output #0: accuracy = 0.95"
_TEST_OUTPUT = re.compile(r"Iteration (\d+), Testing net|Test net output #\d+: (\S+) = ([-+]?(?:nan|inf)|[-+0-9.eE]+)")

# SGDSolver::ClipGradients: "Gradient clipping: scaling down gradients (L2 norm 45.1 > 20) by scale factor 0.44"
_CLIP = re.compile(r"Gradient clipping: scaling down gradients \(L2 norm ([-+0-9.eE]+) > "
                   r"([-+0-9.eE]+)\) by scale factor ([-+0-9.eE]+)")


def parse_clipping(log_text):
    """[(L2 norm, threshold, scale factor)], one per update that Caffe clipped."""
    return [tuple(float(g) for g in m.groups()) for m in _CLIP.finditer(log_text)]


def parse_train_losses(log_text):
    """[(iteration, loss)] from a `caffe train` log, in log order."""
    return [(int(m.group(1)), float(m.group(2))) for m in _TRAIN_LOSS.finditer(log_text)]


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
    """{iteration: {output name: value}} from the test phases of a `caffe train` log."""
    results, current = {}, None
    for m in _TEST_OUTPUT.finditer(log_text):
        if m.group(1) is not None:
            current = int(m.group(1))
            results[current] = {}
        elif current is not None:
            results[current][m.group(2)] = float(m.group(3))
    return results


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
