#!/usr/bin/env python3
"""Figure 5 for a frame pair: the two frames, OpenCV optical flow (TV-L1 with
opencv-contrib, else Farneback), the displacement map (numpy cost volume +
soft assignment on patch features by default, or a deploy net's displacement
blob with --net/--weights/--layer), the RGB difference and that difference
warped by the flow and by the displacement map, as one PNG.

  visualize.py A.jpg B.jpg --out fig5.png
  visualize.py --video v.mp4 --index 10 --out fig5.png   (frames 10 and 11)
  visualize.py --video frames/<video_id> --index 10 --out fig5.png"""
import argparse
import sys

from dcd.layers import TEMPERATURE
from dcd.util.cli import tool_main


@tool_main("visualize")
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="two image files (frame t, frame t+1)")
    p.add_argument("--video", help="video file or frame folder (img_00001.jpg ...)")
    p.add_argument("--index", type=int, default=1, help="1-based frame t in --video")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--scale", type=int, default=4,
                   help="downsampling of the frames for the numpy cost volume (default 4)")
    p.add_argument("--max-displacement", type=int, default=4,
                   help="cost-volume half window, in downsampled pixels (default 4)")
    p.add_argument("--temperature", type=float, default=TEMPERATURE,
                   help="soft-argmax temperature of the numpy cost volume (default: the "
                        f"nets', {TEMPERATURE})")
    p.add_argument("--net", help="deploy prototxt: take the displacement map from it")
    p.add_argument("--weights", help="caffemodel for --net")
    p.add_argument("--layer", help="displacement blob/layer name in --net")
    p.add_argument("--gpu", type=int, nargs="?", const=0)
    args = p.parse_args(argv)

    from dcd.demo import figure5 as viz
    if bool(args.video) == bool(args.images) or (args.images and len(args.images) != 2):
        p.error("give two images, or --video with --index")
    if args.net and not args.layer:
        p.error("--net needs --layer (the displacement map blob)")
    try:
        a, b = viz.load_pair(*args.images) if args.images else viz.load_pair(args.video,
                                                                              index=args.index)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.net:
        disp = viz.displacement_from_net(a, b, args.net, args.weights, args.layer, args.gpu)
        out = viz.figure5(a, b, args.out, disp=disp, disp_label=f"displacement map ({args.layer})")
    else:
        out = viz.figure5(a, b, args.out, scale=args.scale,
                          max_displacement=args.max_displacement, temperature=args.temperature)
    print(f"wrote {args.out} (optical flow: {out['flow_method']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
