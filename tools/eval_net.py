#!/usr/bin/env python3
"""Score the videos of a TSN file list with a deploy net, TSN's test protocol:
25 snippets per video (evenly spaced from frame 1; an L-frame snippet each
with --new_length L), 10 crops (4 corners, centre, mirrors) from 340x256
frames or one centre crop (--center_crop), BGR means 104,117,123. Raw scores
(snippets x crops x classes) go to an npz score file for tools/eval_scores.py.

The deploy net's input blob gives crop size, layout and modality: N x 3 x H x W
("snippet" layout, the L frames of a sample on L consecutive rows, N a
multiple of L), N x 3L x H x W ("stacked", frames along the channels),
N x 2L x H x W (TSN's flow stream: L stacked flow_x/flow_y pairs of
tools/extract_flow.py, mean 128, x inverted in mirrored crops; the list
counts flow pairs), or N x 5 x H x W (RGB frames with their TV-L1 flow, the
TV-L1 warping net). Interrupted runs continue from OUT.partial when run again.

  tools/eval_net.py models/ucf101/flow_deploy.prototxt snapshots/ucf101_flow_split1_iter_20000.caffemodel \
      --list data/ucf101/ucf101_flow_val_split_1.txt --root data/ucf101/frames_lmdb --new_length 5 \
      --out results/ucf101_flow_split1.npz --gpus 0"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
from dcd.util.cli import check_writable, tool_main  # noqa: E402


@tool_main("eval_net")
def main(argv=None):
    from dcd.data.flow import DEFAULT_BOUND
    from dcd.scoring import protocol
    from dcd.scoring.readers import MODALITIES
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("net", help="deploy prototxt")
    p.add_argument("weights", nargs="?", help="caffemodel (omit: random initialisation)")
    p.add_argument("--list", required=True, help="file list: video_id num_frames label")
    p.add_argument("--root", required=True,
                   help="frame (or flow) folder tree (<root>/<video_id>/img_00001.jpg) or LMDB")
    p.add_argument("--modality", choices=("auto",) + MODALITIES, default="auto",
                   help="what the net reads (default: told by its input blob)")
    p.add_argument("--flow_root", "--flow-root",
                   help="rgb_flow: the flow folder tree or LMDB, if not --root")
    p.add_argument("--flow_bound", "--flow-bound", type=float, default=DEFAULT_BOUND,
                   help="rgb_flow: extract_flow.py's --bound (default: %(default)s px)")
    p.add_argument("--backend", choices=("auto", "folder", "lmdb"), default="auto")
    p.add_argument("--out", required=True, help="score file to write (.npz)")
    p.add_argument("--num_snippets", "--num-snippets", type=int, default=protocol.NUM_SNIPPETS,
                   help="snippets per video (default: %(default)s)")
    p.add_argument("--new_length", "--new-length", type=int, default=1,
                   help="frames per snippet (default: %(default)s)")
    p.add_argument("--center_crop", "--center-crop", action="store_true",
                   help="one centre crop instead of 10")
    p.add_argument("--frame_size", "--frame-size", type=int, nargs=2,
                   default=protocol.FRAME_SIZE, metavar=("W", "H"),
                   help="frames are resized to this first (default: %d %d)" % protocol.FRAME_SIZE)
    p.add_argument("--score_blob", "--score-blob",
                   help="blob to record (default: the net's last output)")
    p.add_argument("--input_blob", "--input-blob", help="input blob (default: the first Input)")
    p.add_argument("--batch", type=int,
                   help="samples (crops of snippets) per forward: the deploy input is reshaped "
                        "to hold them (default: as many as it holds, usually 1); scores do not "
                        "change, e.g. 10 or 50 take 25 or 5 forwards per video instead of 250")
    p.add_argument("--read_threads", "--read-threads", type=int,
                   help="threads reading and decoding frames in each process (default: the "
                        "cores, at most 8, shared out over the processes)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes, each with its own net and frame reader, taken round "
                        "the --gpus ids (several on one GPU when there are more); two "
                        "processes read frames faster than two threads (docs/DATA.md) "
                        "(default: %(default)s)")
    p.add_argument("--gpus", type=int, nargs="*",
                   help="GPU ids; one process per id (default: CPU)")
    p.add_argument("--limit", type=int, help="score at most N more videos, then stop")
    p.add_argument("--allow-missing-weights", action="store_true",
                   help="score even if the caffemodel lacks learnable layers of the net "
                        "(they keep their random initialisation); refused by default")
    p.add_argument("--restart", action="store_true", help="discard OUT.partial and start over")
    p.add_argument("--overwrite", action="store_true", help="redo even if OUT exists")
    p.add_argument("--fold-bn", action="store_true",
                   help="score with BatchNorm folded into the convolutions (tools/fold_bn.py, "
                        "into a temporary folder; the same scores, faster)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    for flag in ("batch", "read_threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            p.error(f"--{flag} must be at least 1")

    if Path(args.out).exists() and not args.overwrite:
        print(f"{args.out} exists (complete); pass --overwrite to score again", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="fold_bn_") as folder:
        args.folded_from = (args.net, args.weights) if args.fold_bn else None
        if args.fold_bn:
            from dcd.nets.fold_bn import FoldError, fold_into
            try:
                args.net, args.weights = fold_into(folder, args.net, args.weights)
            except (FoldError, FileNotFoundError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        return _score(args)


def _score(args):
    from dcd.scoring.evaluate import EvalConfig, run_eval
    from dcd.scoring.readers import FrameReadError, default_read_threads
    from dcd.scoring.scorefile import ScoreFileError, partial_path
    cfg = EvalConfig(net=args.net, weights=args.weights, root=args.root, backend=args.backend,
                     num_snippets=args.num_snippets, new_length=args.new_length,
                     ten_crop=not args.center_crop, frame_size=tuple(args.frame_size),
                     score_blob=args.score_blob, input_blob=args.input_blob,
                     modality=None if args.modality == "auto" else args.modality,
                     flow_root=args.flow_root, flow_bound=args.flow_bound,
                     allow_missing_weights=args.allow_missing_weights,
                     folded_from=args.folded_from, batch=args.batch,
                     read_threads=args.read_threads or default_read_threads(
                         max(args.workers, len(args.gpus or []))))
    check_writable(args.out, "--out")
    try:
        s = run_eval(args.list, cfg, args.out, workers=args.workers, gpus=args.gpus,
                     limit=args.limit, restart=args.restart, progress=not args.no_progress)
    except FrameReadError as exc:
        print(f"error: {exc}; the videos scored so far are kept in {partial_path(args.out)} "
              "(fix the frames, then run again to continue)", file=sys.stderr)
        return 2
    except (ScoreFileError, ValueError, FileNotFoundError) as exc:  # EvalInputError too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if s.complete:
        print(f"wrote {s.out} ({s.resumed} resumed + {len(s.scored)} scored videos)")
        return 0
    return 3  # stopped early (--limit): not complete yet


if __name__ == "__main__":
    sys.exit(main())
