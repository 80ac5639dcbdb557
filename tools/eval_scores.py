#!/usr/bin/env python3
"""Accuracy of one score file, or of several fused by a weighted sum
(TSN's eval_scores.py): per file, scores are averaged over crops, then over
snippets; the fused score is sum_i w_i * score_i. Prints top-1, top-5 and mean
class accuracy (mean per-class recall from the confusion matrix, the figure
TSN and the paper report). Optional per-class CSV, confusion-matrix PNG and
JSON summary (read by tools/report.py).

Score files of another class count, or that do not cover the same videos
(another list or split), are refused, naming the videos and files."""
import argparse
import sys
from dcd.cli import tool_main  # noqa: E402



@tool_main("eval_scores")
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("score_files", nargs="+", help="npz files from tools/eval_net.py")
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

    from dcd.data.filelists import FileListError, read_file_list
    from dcd.scoring import metrics
    from dcd.scoring.scorefile import ScoreFileError

    try:
        entries = read_file_list(args.list) if args.list else None
        ev = metrics.evaluate(args.score_files, args.score_weights, args.num_classes, entries)
    except (ScoreFileError, FileListError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = metrics.read_class_names(args.class_names) if args.class_names else None
    s = ev.summary()
    if args.paper_ref:
        s["paper_ref"] = args.paper_ref
    for f, w in zip(ev.files, ev.weights):
        print(f"{w:g} x {f}")
    print(f"videos {s['num_videos']}, classes {s['num_classes']}")
    print(f"top-1 {100 * s['top1']:.2f}%  top-5 {100 * s['top5']:.2f}%  "
          f"mean class accuracy {100 * s['mean_class_accuracy']:.2f}%")
    if args.per_class_csv:
        metrics.write_per_class_csv(ev, args.per_class_csv, names)
    if args.confusion_png:
        from dcd.plots import plot_confusion
        plot_confusion(ev, args.confusion_png, names)
    if args.json:
        metrics.write_json(s, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
