#!/usr/bin/env python3
"""Accuracy of one score file, or of several fused by a weighted sum
(TSN's eval_scores.py): per file, scores are averaged over crops, then over
snippets; the fused score is sum_i w_i * score_i. Prints top-1, top-5 and mean
class accuracy (mean per-class recall from the confusion matrix, the figure
TSN and the paper report). Optional per-class CSV, confusion-matrix PNG and
JSON summary (read by tools/report.py). Each accuracy comes with a 95%
percentile-bootstrap interval over videos (seeded: --bootstrap, --seed).

--compare A.npz B.npz instead compares two score files over the same videos:
the difference B - A in top-1 and mean class accuracy with a paired
bootstrap interval, and McNemar's exact test on the videos only one of them
gets right. Files over other video sets are refused, naming the first
difference.

Score files of another class count, or that do not cover the same videos
(another list or split), are refused, naming the videos and files."""
import argparse
import sys

from dcd.util.cli import tool_main


def print_comparison(c):
    print(f"A {c['a']}\nB {c['b']}\nvideos {c['num_videos']} (the same in both)")
    for key, name in (("top1", "top-1"), ("mean_class_accuracy", "mean class accuracy")):
        r = c[key]
        lo, hi = (100 * x for x in r["ci"])
        print(f"{name}: A {100 * r['a']:.2f}%  B {100 * r['b']:.2f}%  B - A {100 * r['diff']:+.2f} "
              f"points (95% paired bootstrap CI {lo:+.2f} to {hi:+.2f})")
    m = c["mcnemar"]
    print(f"McNemar (top-1): {m['only_a']} video(s) right only in A, {m['only_b']} only in B, "
          f"{m['both_right']} both right, {m['both_wrong']} both wrong; exact two-sided "
          f"p = {m['p']:.4g}")
    print(f"({c['resamples']} resamples, seed {c['seed']})")


@tool_main("eval_scores")
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("score_files", nargs="*", help="npz files from tools/eval_net.py")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="compare two score files (B - A) over the same videos")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples over videos for the intervals (0: none; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--score_weights", "--score-weights", type=float, nargs="+",
                   help="one weight per file (default: all 1)")
    p.add_argument("--list", help="file list the scores must match (video ids and labels)")
    p.add_argument("--num_classes", "--num-classes", type=int,
                   help="refuse files with another class count")
    p.add_argument("--class_names", "--class-names", help="classInd.txt or one name per line")
    p.add_argument("--per_class_csv", "--per-class-csv", help="write per-class accuracy here")
    p.add_argument("--confusion_png", "--confusion-png", help="write the confusion matrix here")
    p.add_argument("--json", help="write the summary here (for tools/report.py)")
    p.add_argument("--paper_ref", "--paper-ref",
                   help="paper row this result reproduces, e.g. T6/r4 (see data/paper_tables.json)")
    args = p.parse_args(argv)
    if bool(args.compare) == bool(args.score_files):
        p.error("give score files, or --compare A.npz B.npz (not both)")
    if args.bootstrap < 0 or (args.compare and args.bootstrap == 0):
        p.error("--bootstrap needs a positive count of resamples")

    from dcd.data.filelists import FileListError, read_file_list
    from dcd.scoring import metrics
    from dcd.scoring.scorefile import ScoreFileError

    if args.compare:
        try:
            c = metrics.compare(*args.compare, resamples=args.bootstrap, seed=args.seed)
        except (ScoreFileError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print_comparison(c)
        if args.json:
            metrics.write_json(c, args.json)
        return 0

    try:
        entries = read_file_list(args.list) if args.list else None
        ev = metrics.evaluate(args.score_files, args.score_weights, args.num_classes, entries)
        s = ev.summary(resamples=args.bootstrap, seed=args.seed)
    except (ScoreFileError, FileListError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = metrics.read_class_names(args.class_names) if args.class_names else None
    if args.paper_ref:
        s["paper_ref"] = args.paper_ref
    for f, w in zip(ev.files, ev.weights):
        print(f"{w:g} x {f}")
    print(f"videos {s['num_videos']}, classes {s['num_classes']}")
    ci = s.get("ci", {})
    for key, name in (("top1", "top-1"), ("top5", "top-5"),
                      ("mean_class_accuracy", "mean class accuracy")):
        band = (f"  (95% CI {100 * ci[key][0]:.2f}-{100 * ci[key][1]:.2f})"
                if key in ci else "")
        print(f"{name} {100 * s[key]:.2f}%{band}")
    if ci:
        print(f"(percentile bootstrap over the {s['num_videos']} videos, "
              f"{args.bootstrap} resamples, seed {args.seed})")
    if args.per_class_csv:
        metrics.write_per_class_csv(ev, args.per_class_csv, names)
    if args.confusion_png:
        from dcd.util.plots import plot_confusion
        plot_confusion(ev, args.confusion_png, names)
    if args.json:
        metrics.write_json(s, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
